"""How every `layertap` command handles mistakes: one framework, so every command behaves alike.

- Arguments are checked by argparse before anything loads; a bad one is ONE line on stderr
  (`layertap export: error: ...`, with a pointer to `--help`) and exit 2.
- Errors raised by the library become one line and the exit code of their class (`exit_code_for`).
- With `--json`, a failure also prints one JSON object on stdout:
  `{"error": {"exit_code": 2, "meaning": "bad input", "type": "UsageError", "message": "..."}}`.
- A missing optional dependency (TensorFlow on a client-only install, matplotlib for `--plot`) names
  the extra that brings it, e.g. `pip install 'layertap[tf]'`.
- A closed stdout (`layertap ... --json | head`) ends quietly, without BrokenPipeError.
- An unexpected exception is one line too; `-v` adds the traceback.

A new command only needs a module with `add_arguments(parser, name)` and `run(args) -> int`, listed
in `layertap.cli.COMMANDS`; a module whose command needs TensorFlow sets `EXTRAS = ("tf",)`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NoReturn

from layertap._text import strip_escapes
from layertap.errors import LayertapError, ServingError, UsageError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_MEANINGS",
    "EXIT_OK",
    "EXIT_SERVING",
    "EXIT_USAGE",
    "EXTRA_MODULES",
    "CommandParser",
    "MissingExtraError",
    "exit_code_for",
    "non_negative_int",
    "positive_int",
    "require_extras",
    "run_guarded",
    "strip_escapes",
    "wants_json",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_SERVING = 3
EXIT_MEANINGS = {
    EXIT_OK: "success",
    EXIT_FAILURE: "the operation failed",
    EXIT_USAGE: "bad input or refused request",
    EXIT_SERVING: "the server refused the request or could not be reached",
}
# The exit status a shell reports for a process that wrote into a closed pipe (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141

# extra -> the top-level modules it installs (what `find_spec` must find for a command to run). Every
# module of an extra is listed, so a missing one, whoever imports it, is named with the extra that brings
# it (a client-only install once ended `layertap serve` with "internal error: ModuleNotFoundError:
# prometheus_client").
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "tf": (
        "tensorflow",
        "keras",
        "h5py",
        "grpc_health",
        "grpc_reflection",
        "uvicorn",
        "prometheus_client",
    ),
    "plot": ("matplotlib",),
    "jax": ("jax",),
    "extract": ("pyarrow",),
    "beam": ("apache_beam",),
}


class MissingExtraError(LayertapError):
    """A command needs an optional dependency that is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"{module} is not installed; install it with: pip install 'layertap[{extra}]'")
        self.module = module
        self.extra = extra


def exit_code_for(error: BaseException) -> int:
    """The exit code of an error: 2 bad input, 3 the server refused or is unreachable, 1 otherwise."""
    if isinstance(error, UsageError):
        return EXIT_USAGE
    if isinstance(error, ServingError):
        return EXIT_SERVING
    return EXIT_FAILURE


def require_extras(extras: Iterable[str]) -> None:
    """Raise MissingExtraError naming the extra, before a command imports what it lacks."""
    for extra in extras:
        for module in EXTRA_MODULES[extra]:
            if not _installed(module):
                raise MissingExtraError(module, extra)


def _installed(module: str) -> bool:
    if module in sys.modules:  # None there means "blocked": importing it raises ImportError
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def _extra_of(module_name: str | None) -> str | None:
    top = (module_name or "").partition(".")[0]
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and a JSON object with `--json`), exit 2."""

    def __init__(self, *args: Any, json_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_errors = json_errors

    def error(self, message: str) -> NoReturn:
        """Report a bad argument in one line and exit 2 (argparse's contract: never returns)."""
        _report(
            self.prog,
            UsageError(f"{message} (see '{self.prog} --help')"),
            json_errors=self.json_errors,
            verbose=False,
        )
        raise SystemExit(EXIT_USAGE)


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    return _bounded_int(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _bounded_int(text, 0, "an integer >= 0")


def _bounded_int(text: str, low: int, accepted: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {accepted}")
    return value


def run_guarded(prog: str, body: Callable[[], int], *, json_errors: bool, verbose: bool) -> int:
    """Run a command's body and turn whatever it raises into one line and an exit code."""
    try:
        with _closed_stdout_is_quiet():
            return int(body())
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    except ModuleNotFoundError as error:
        extra = _extra_of(error.name)
        if extra is None:
            return _report(prog, error, json_errors=json_errors, verbose=verbose)
        return _report(
            prog, MissingExtraError(error.name or "?", extra), json_errors=json_errors, verbose=verbose
        )
    except Exception as error:
        return _report(prog, error, json_errors=json_errors, verbose=verbose)


@contextlib.contextmanager
def _closed_stdout_is_quiet() -> Iterator[None]:
    """On a closed pipe, point stdout at /dev/null so the interpreter's final flush is silent too."""
    try:
        yield
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        raise


def _report(prog: str, error: BaseException, *, json_errors: bool, verbose: bool) -> int:
    code = exit_code_for(error)
    known = isinstance(error, LayertapError)
    message = " ".join(str(error).split()) or type(error).__name__
    message = strip_escapes(message)
    if verbose and not known:
        traceback.print_exception(error, file=sys.stderr)
    if known:
        label = "error" if code != EXIT_FAILURE else "failed"
        line = f"{prog}: {label}: {message}"
    else:
        hint = "" if verbose else " (run with -v for the traceback)"
        line = f"{prog}: internal error: {type(error).__name__}: {message}{hint}"
    print(line, file=sys.stderr, flush=True)
    if json_errors:
        payload = {
            "error": {
                "exit_code": code,
                "meaning": EXIT_MEANINGS[code],
                "type": type(error).__name__,
                "message": message,
            }
        }
        with contextlib.suppress(BrokenPipeError):
            print(json.dumps(payload), flush=True)
    return code


def wants_json(argv: Sequence[str]) -> bool:
    """Whether `--json` was asked for (known before parsing, so argument errors honour it too)."""
    return "--json" in argv
