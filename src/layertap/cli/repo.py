"""`layertap repo`: a model folder on gs:// or s3:// without TensorFlow: push a built version, repair, list.

layertap repo push VERSION_DIR gs://BUCKET/PREFIX/NAME   upload an already-built version (claims a number)
layertap repo repair gs://BUCKET/PREFIX/NAME             settle versions abandoned by dead publishers
layertap repo list gs://BUCKET/PREFIX/NAME               versions and claims, as TF Serving would see them
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from layertap.cli.export import readers_note_for, transfer_printer
from layertap.cli.framework import non_negative_int
from layertap.errors import UsageError

__all__ = ["add_arguments", "run"]


def _model_uri(text: str) -> str:
    from layertap.storage.uri import ObjectLocation, parse_location, require_backend

    try:
        location = parse_location(text)
        if not isinstance(location, ObjectLocation):
            raise UsageError(
                f"{text!r} is a local path; `layertap repo` works on gs://BUCKET/PREFIX/NAME or "
                "s3://BUCKET/PREFIX/NAME (local versions are published atomically by `layertap export`)"
            )
        if not location.key:
            raise UsageError(f"{text!r} names a bucket but no model folder: expected {text}/PREFIX/NAME")
        require_backend(location)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """Sub-commands push, repair and list."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    push = actions.add_parser("push", help="upload an already-built SavedModel version directory")
    push.add_argument(
        "directory", type=Path, metavar="VERSION_DIR", help="a directory holding saved_model.pb"
    )
    push.add_argument("model", type=_model_uri, metavar="gs://B/P/NAME", help="the model folder")
    push.add_argument("--version", type=non_negative_int, default=None, help="default: the next free number")
    push.add_argument(
        "--lease-seconds",
        type=_positive_seconds,
        default=None,
        help="how long a claim outlives its publisher's last renewal before a repair may take it "
        "(default 60)",
    )
    push.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    for name, help_text in (
        ("repair", "settle versions left by dead publishers: complete ones kept, partial ones deleted"),
        ("list", "the versions and claims of a model folder"),
    ):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("model", type=_model_uri, metavar="gs://B/P/NAME", help="the model folder")
        sub.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _repository(model: str, **options: Any) -> Any:
    from layertap.storage.publish import RemoteRepository
    from layertap.storage.uri import ObjectLocation, parse_location

    location = parse_location(model)
    assert isinstance(location, ObjectLocation)  # checked by _model_uri
    return RemoteRepository.at(location, **options)


def run(args: argparse.Namespace) -> int:
    def report(message: str) -> None:
        print(f"layertap repo: {message}", file=sys.stderr, flush=True)

    if args.action == "push":
        from layertap.storage.claims import DEFAULT_LEASE_SECONDS

        interactive = sys.stderr.isatty() and not args.json
        repository = _repository(
            args.model,
            report=report,
            transfer=transfer_printer() if interactive else None,
            lease_seconds=args.lease_seconds or DEFAULT_LEASE_SECONDS,
        )
        result = repository.publish(args.directory, args.version)
        if args.json:
            print(json.dumps({**result.__dict__, "repaired": [a.__dict__ for a in result.repaired]}))
            return 0
        print(f"published {result.uri} ({result.files} files, {result.bytes} bytes)")
        note = readers_note_for(args.model)
        if note:
            print(f"  {note}")
        return 0
    repository = _repository(args.model, report=report)
    if args.action == "repair":
        actions = repository.repair()
        if args.json:
            print(json.dumps([action.__dict__ for action in actions]))
        elif not actions:
            print(f"nothing to repair in {repository.uri}")
        for action in actions:
            print(f"version {action.version}: {action.action} ({action.deleted} objects deleted)")
        return 0
    from layertap.storage.claims import read_claims

    claims = read_claims(repository.store, repository.prefix)
    versions = repository.versions()
    rows = [
        {"version": v, "visible": v in versions, "claim": claims[v].state if v in claims else None}
        for v in sorted(set(versions) | set(claims))
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        print(f"{row['version']}\t{'visible' if row['visible'] else '-'}\t{row['claim'] or 'no claim'}")
    return 0
