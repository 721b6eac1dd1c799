"""`layertap compat VERSION_DIR --server X.Y.Z`: will that TF Serving release load this export?"""

from __future__ import annotations

import argparse
import json

from layertap.config import compat, servers

__all__ = ["DESCRIPTION", "add_arguments", "run"]

#: What `layertap compat --help` says under the usage line.
DESCRIPTION = (
    "Check a SavedModel version against a TF Serving release's op registry, without TensorFlow. "
    "Exit 0 when that server would load it, 2 when not; each problem on a line."
)


def add_server_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """`--server X.Y.Z`, a TF Serving release with a profile (shared by compat, validate and export)."""
    parser.add_argument(
        "--server",
        default=compat.SERVING_VERSION,
        metavar="X.Y.Z",
        help=f"{help_text} (default: the pinned image's, {compat.SERVING_VERSION}; known: "
        f"{', '.join(servers.SERVER_RELEASES)})",
    )


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """Arguments of `layertap compat`."""
    parser.add_argument("version_dir", metavar="VERSION_DIR", help="a SavedModel version directory")
    add_server_argument(parser, "the TF Serving release to check against")
    parser.add_argument(
        "--rest", action="store_true", help="clients use REST: dtypes REST cannot return are errors"
    )
    parser.add_argument(
        "--strict", action="store_true", help="warnings fail too (ignored attrs, custom ops, REST dtypes)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Print each problem, then the verdict; exit 2 when the server would not load the version."""
    report = compat.check_compat(args.version_dir, args.server, rest=args.rest)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for problem in report.problems:
            print(problem)
        verdict = "compatible" if report.compatible else "NOT compatible"
        print(
            f"{report.path}: {verdict} with TF Serving {report.server} (TensorFlow "
            f"{report.server_tensorflow}); exported with TensorFlow {report.exported_with or 'unknown'}, "
            f"{len(report.problems)} problem(s)"
        )
    failed = not report.compatible or (args.strict and bool(report.problems))
    return 2 if failed else 0
