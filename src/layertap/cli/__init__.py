"""The `layertap` command. It only parses arguments and calls the library.

Each subcommand lives in its own module with `add_arguments(parser, name)` and `run(args) -> int`,
and is imported only when invoked, so `layertap predict` never pays for TensorFlow. A module whose
command needs TensorFlow declares `EXTRAS = ("tf",)`: the command then checks it is installed, runs
Keras on the TensorFlow backend and keeps TensorFlow's start-up logs quiet (shown with `-v`). A module
may declare `DESCRIPTION`, the paragraph its `--help` shows (the one-line help otherwise).

Exit codes (scripts rely on them): 0 success; 1 the operation failed (export, verification, a
missing extra, an unexpected error); 2 bad input or a refused request (unknown layer, bad flag,
invalid config); 3 the server answered with an error or could not be reached. How errors are
reported (one line, `--json` error objects, closed pipes) lives in `layertap.cli.framework`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from layertap import __version__
from layertap.cli.framework import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_SERVING,
    EXIT_USAGE,
    CommandParser,
    require_extras,
    run_guarded,
    wants_json,
)

__all__ = ["COMMANDS", "EXIT_FAILURE", "EXIT_OK", "EXIT_SERVING", "EXIT_USAGE", "main"]

# name -> (module under layertap.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("export", "export layers of a Keras model as one multi-signature SavedModel version"),
    "inspect": ("inspect", "list a Keras model's layers with shapes, parameters and compute share"),
    "layers": ("query", "list the layer signatures a served model offers"),
    "predict": ("query", "ask a served model for layer outputs"),
    "serve": ("serve", "run a local server that speaks TensorFlow Serving's gRPC API"),
    "config": ("config", "generate and check TensorFlow Serving config files"),
    "compat": ("compat", "check that a TF Serving release would load a SavedModel version (no TensorFlow)"),
    "validate": ("validate", "rehearse loading and serving a SavedModel version as TF Serving would"),
    "compare": ("compare", "compare two versions' layer outputs: identical, compatible or changed space"),
    "repo": ("repo", "push, repair or list model versions on gs:// or s3:// (no TensorFlow)"),
    "extract": ("extract", "run a dataset through layers of a model version into Parquet (or .npy) features"),
}

_VERBOSE_FLAGS = ("-v", "--verbose")


def _build_parser(command: str | None, *, json_errors: bool) -> argparse.ArgumentParser:
    parser = CommandParser(prog="layertap", description=__doc__.splitlines()[0], json_errors=json_errors)
    parser.add_argument("--version", action="version", version=f"layertap {__version__}")
    parser.add_argument(
        *_VERBOSE_FLAGS, action="store_true", help="show debug logs, TensorFlow's logs and tracebacks"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text, json_errors=json_errors)
        # Only the invoked command's module is imported (and with it, maybe, TensorFlow).
        if name == command:
            module = importlib.import_module(f"layertap.cli.{module_name}")
            sub.description = getattr(module, "DESCRIPTION", help_text)
            module.add_arguments(sub, name)
            # `layertap export -v` as well as `layertap -v export`, unless the command uses -v itself.
            if not any(flag in sub._option_string_actions for flag in _VERBOSE_FLAGS):
                sub.add_argument(*_VERBOSE_FLAGS, action="store_true", default=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `layertap` command line; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in args_list if not arg.startswith("-")), None)
    known = command if command in COMMANDS else None
    json_errors = wants_json(args_list)
    prog = f"layertap {known}" if known else "layertap"

    def body() -> int:
        # Parsing checks every argument before anything loads; a bad one exits 2 here.
        args = _build_parser(known, json_errors=json_errors).parse_args(args_list)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        module = importlib.import_module(f"layertap.cli.{COMMANDS[args.command][0]}")
        extras: tuple[str, ...] = getattr(module, "EXTRAS", ())
        require_extras(extras)
        if "tf" in extras:
            # The exporter and the server run Keras on TensorFlow, whatever the user's environment
            # says; it must be set before Keras is imported.
            os.environ["KERAS_BACKEND"] = "tensorflow"
            from layertap.cli.tflogs import quiet_tensorflow

            quiet_tensorflow(verbose=args.verbose)
        return int(module.run(args))

    verbose = any(flag in args_list for flag in _VERBOSE_FLAGS)
    return run_guarded(prog, body, json_errors=json_errors, verbose=verbose)
