"""The `layertap` command. It only parses arguments and calls the library.

Each subcommand lives in its own module with `add_arguments(parser)` and `run(args) -> int`, and is
imported only when invoked, so `layertap predict` never pays for TensorFlow.

Exit codes (scripts rely on them): 0 success; 1 internal failure (export, verification, unexpected
error); 2 bad input (unknown layer, bad flag, invalid config); 3 the server answered with an error
or could not be reached.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from layertap import __version__
from layertap.errors import LayertapError, ServingError, UsageError

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_SERVING", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_SERVING = 3

# name -> (module under layertap.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("export", "export layers of a Keras model as one multi-signature SavedModel version"),
    "inspect": ("inspect", "list a Keras model's layers with shapes, parameters and compute share"),
    "layers": ("query", "list the layer signatures a served model offers"),
    "predict": ("query", "ask a served model for layer outputs"),
    "serve": ("serve", "run a local server that speaks TensorFlow Serving's gRPC API"),
    "config": ("config", "generate and check TensorFlow Serving config files"),
}


def _build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="layertap", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"layertap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        # Only the invoked command's module is imported (and with it, maybe, TensorFlow).
        if name == command:
            module = importlib.import_module(f"layertap.cli.{module_name}")
            module.add_arguments(sub, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `layertap` command line; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in args_list if not arg.startswith("-")), None)
    parser = _build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(args_list)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    module = importlib.import_module(f"layertap.cli.{COMMANDS[args.command][0]}")
    try:
        return int(module.run(args))
    except UsageError as error:
        print(f"layertap {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ServingError as error:
        print(f"layertap {args.command}: error: {error}", file=sys.stderr)
        return EXIT_SERVING
    except LayertapError as error:
        print(f"layertap {args.command}: failed: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
