"""`layertap config`: generate, edit and check TensorFlow Serving's config files.

    layertap config models show|set|remove|policy|label|unlabel ...   edit models.config, one model at a time
    layertap config batching [--gpu-defaults] [--max-batch-size N ...] write or check batching.config
    layertap config monitoring [--path P | --disable]                 write monitoring.config
    layertap config ssl --key K.pem --cert C.pem [--ca CA.pem]         write ssl.config (gRPC TLS)
    layertap config check [--mount HOST:CONTAINER] [--signature ...]   config against the repository on disk
    layertap config demo [--out DIR] [--check]                         the demo files of serving_config/

Files are written atomically (TF Serving may be polling them). Exit codes: 0 ok, 2 invalid config or input
(including `check` errors), 1 `demo --check` found stale files, 3 the server's REST status failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from layertap import config as cfg
from layertap.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from layertap.cli.compat import add_server_argument
from layertap.cli.config_models import DEFAULT_DIR, add_models_parser, add_mount_flag, parse_mounts
from layertap.errors import ConfigError

V = TypeVar("V")

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """Declare `layertap config`'s sub-subcommands."""
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    add_models_parser(actions)
    _add_batching(actions)
    _add_monitoring(actions)
    _add_ssl(actions)
    _add_check(actions)
    demo = actions.add_parser("demo", help="write (or --check) the demo model's serving_config/ files")
    demo.add_argument("--out", type=Path, default=DEFAULT_DIR, help="directory (default: serving_config)")
    demo.add_argument("--check", action="store_true", help="only compare; exit 1 when a file differs")
    demo.set_defaults(handler=_run_demo)


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; returns the exit code."""
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


# ---------------------------------------------------------------- batching and monitoring


_BATCHING_INTS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")


def _add_batching(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "batching",
        help="write batching.config (every TF Serving field), or --check an existing one",
        description="Start from --gpu-defaults (or the file given with --from) and override single fields.",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_DIR / "batching.config", help="file to write; - = stdout"
    )
    parser.add_argument("--check", type=Path, metavar="FILE", help="only parse and validate FILE")
    parser.add_argument("--from", dest="source", type=Path, metavar="FILE", help="start from this file")
    parser.add_argument(
        "--gpu-defaults", action="store_true", help="start from the GPU defaults (see docs/serving-config.md)"
    )
    parser.add_argument("--cores", type=int, default=4, help="CPU cores of the GPU host, for --gpu-defaults")
    for name in _BATCHING_INTS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, dest=name)
    parser.add_argument("--thread-pool-name")
    parser.add_argument("--allowed-batch-sizes", type=int, nargs="*", metavar="N")
    parser.add_argument("--pad-variable-length-inputs", type=_parse_bool, metavar="true|false")
    parser.add_argument("--enable-large-batch-splitting", type=_parse_bool, metavar="true|false")
    parser.add_argument("--max-execution-batch-size", type=int)
    parser.set_defaults(handler=_run_batching)


def _run_batching(args: argparse.Namespace) -> int:
    if args.check is not None:
        settings = cfg.read_batching_config(args.check)
        print(f"{args.check}: valid ({_describe_batching(settings)})")
        return EXIT_OK
    if args.source is not None:
        settings = cfg.read_batching_config(args.source)
    elif args.gpu_defaults:
        settings = cfg.gpu_batching_defaults(args.cores)
    else:
        settings = cfg.BatchingSettings()
    changes: dict[str, object] = {
        name: getattr(args, name)
        for name in (*_BATCHING_INTS, "thread_pool_name", "pad_variable_length_inputs")
        if getattr(args, name) is not None
    }
    for name in ("enable_large_batch_splitting", "max_execution_batch_size"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.allowed_batch_sizes is not None:
        changes["allowed_batch_sizes"] = tuple(args.allowed_batch_sizes)
    settings = settings.replace(**changes)
    _emit(cfg.BATCHING_CONFIG, settings, args.out, f" ({_describe_batching(settings)})")
    return EXIT_OK


def _emit(kind: cfg.ConfigFile[V, Any], value: V, out: Path, note: str = "") -> None:
    """Print the file (`--out -`) or write it, saying on stderr what was written."""
    if str(out) == "-":
        sys.stdout.write(kind.format(value))
        return
    kind.write(out, value)
    print(f"wrote {out}{note}", file=sys.stderr)


def _describe_batching(settings: cfg.BatchingSettings) -> str:
    return (
        f"max_batch_size={settings.max_batch_size}, allowed_batch_sizes={list(settings.allowed_batch_sizes)}"
    )


def _add_monitoring(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "monitoring", help="write monitoring.config (Prometheus metrics on the REST port)"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_DIR / "monitoring.config", help="file; - = stdout"
    )
    parser.add_argument(
        "--path", default=cfg.PROMETHEUS_PATH, help=f"metrics path (default {cfg.PROMETHEUS_PATH})"
    )
    parser.add_argument("--disable", action="store_true", help="write the config with Prometheus disabled")
    parser.set_defaults(handler=_run_monitoring)


def _run_monitoring(args: argparse.Namespace) -> int:
    _emit(cfg.MONITORING_CONFIG, cfg.monitoring_config(args.path, enable=not args.disable), args.out)
    return EXIT_OK


def _add_ssl(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "ssl",
        help="write ssl.config for --ssl_config_file (gRPC over TLS) from PEM files",
        description="TF Serving's SSLConfig embeds the PEM text; the file is readable by its owner only.",
    )
    parser.add_argument("--key", type=Path, required=True, help="the server's private key (PEM)")
    parser.add_argument("--cert", type=Path, required=True, help="the server's certificate chain (PEM)")
    parser.add_argument("--ca", type=Path, help="CA certificate(s) that sign client certificates (PEM)")
    parser.add_argument(
        "--client-verify", action="store_true", help="require client certificates (mutual TLS)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("ssl.config"), help="file to write (default ssl.config)"
    )
    parser.set_defaults(handler=_run_ssl)


def _run_ssl(args: argparse.Namespace) -> int:
    def pem(path: Path | None) -> str:
        if path is None:
            return ""
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read PEM file {str(path)!r}: {error}") from error

    config = cfg.ssl_config(
        pem(args.key), pem(args.cert), custom_ca=pem(args.ca), client_verify=args.client_verify
    )
    cfg.write_ssl_config(args.out, config)
    print(f"wrote {args.out} (mode 0600)", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- check and demo


def _add_check(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "check",
        help="check the config files against the model repository on disk",
        description="Exit 0 when TF Serving would serve the config as written (warnings allowed), 2 if not.",
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_DIR / "models.config")
    parser.add_argument("--batching", type=Path, help="also validate this batching.config")
    parser.add_argument("--monitoring", type=Path, help="also validate this monitoring.config")
    add_mount_flag(parser)
    parser.add_argument(
        "--signature",
        action="append",
        default=[],
        metavar="[MODEL:]NAME",
        help="a signature clients call; must exist in every served version (repeatable)",
    )
    add_server_argument(parser, "the TF Serving release that serves the config; checks its op registry")
    # Before op-registry profiles the server was named by its TensorFlow; releases share the numbering.
    parser.add_argument("--image-tensorflow", dest="server", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--strict", action="store_true", help="fail on warnings too (for CI)")
    parser.set_defaults(handler=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    config = cfg.read_model_server_config(args.config)
    if args.batching is not None:
        cfg.read_batching_config(args.batching)
    if args.monitoring is not None:
        cfg.read_monitoring_config(args.monitoring)
    signatures: dict[str, set[str]] = {}
    for spec in args.signature:
        model, _, name = spec.rpartition(":")
        signatures.setdefault(model or "*", set()).add(name)
    report = cfg.check_serving_config(
        config,
        mounts=parse_mounts(args.mount),
        signatures=signatures,
        server=args.server,
    )
    if args.json:
        body = {
            "ok": report.ok,
            "served": {name: list(versions) for name, versions in report.served.items()},
            "findings": [{"level": f.level, "model": f.model, "message": f.message} for f in report.findings],
        }
        print(json.dumps(body, indent=2))
    else:
        for finding in report.findings:
            print(finding, file=sys.stderr)
        for name, versions in report.served.items():
            print(f"{name}: serves versions {list(versions)}")
        summary = f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)"
        verdict = "FAILED" if not report.ok or (args.strict and report.warnings) else "ok"
        print(f"{args.config}: {verdict}, {summary}", file=sys.stderr)
    failed = not report.ok or (args.strict and bool(report.warnings))
    return EXIT_USAGE if failed else EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    directory: Path = args.out
    if not args.check:
        for path in cfg.write_demo_files(directory):
            print(f"wrote {path}", file=sys.stderr)
        return EXIT_OK
    stale = []
    for name, text in cfg.demo_files().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path))
    for path_text in stale:
        print(
            f"stale: {path_text} (regenerate with `layertap config demo --out {directory}`)", file=sys.stderr
        )
    return EXIT_FAILURE if stale else EXIT_OK


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false; got {text!r}")
