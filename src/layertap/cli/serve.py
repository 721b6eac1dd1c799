"""`layertap serve`: TF Serving's flags in, a running local model server out."""

from __future__ import annotations

import argparse

from layertap import __version__

__all__ = ["EXTRAS", "add_arguments", "run"]

EXTRAS = ("tf",)


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """TF Serving's flags (`--port=8500 --model_name=m --model_base_path=/models/m`), same spelling."""
    from layertap.server.flags import add_flags

    # TF Serving matches flag names exactly; a prefix must not silently pick a flag.
    parser.allow_abbrev = False
    parser.epilog = (
        "Listens on 127.0.0.1 unless --bind_address says otherwise (e.g. --bind_address=0.0.0.0). "
        "TF Serving flags that layertap serve does not implement are refused by name."
    )
    add_flags(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT; returns 0 after a clean drain."""
    if args.version:
        import tensorflow as tf

        print(f"TensorFlow ModelServer: layertap {__version__}\nTensorFlow Library: {tf.__version__}")
        return 0
    from layertap.server.app import serve
    from layertap.server.flags import options_from_args

    return serve(options_from_args(args))
