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

from layertap import config as cfg
from layertap.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from layertap.config.status import fetch_version_states
from layertap.errors import ConfigError
from layertap.proto import serving_pb2 as pb

__all__ = ["add_arguments", "run"]

DEFAULT_DIR = Path("serving_config")


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """Declare `layertap config`'s sub-subcommands."""
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    _add_models(actions)
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


# ---------------------------------------------------------------- models


def _add_models(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = actions.add_parser("models", help="show or edit models.config")
    models_actions = models.add_subparsers(dest="models_action", metavar="ACTION", required=True)

    def sub(
        name: str, help_text: str, handler: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        parser = models_actions.add_parser(name, help=help_text, description=help_text)
        parser.add_argument(
            "--config", type=Path, default=DEFAULT_DIR / "models.config", help="the models.config to edit"
        )
        parser.set_defaults(handler=handler)
        return parser

    show = sub("show", "print the models, policies and labels (--json for scripts)", _run_models_show)
    show.add_argument("--json", action="store_true")

    set_ = sub(
        "set", "add a model, or update its base path (and policy); other models are untouched", _run_set
    )
    set_.add_argument("name")
    set_.add_argument(
        "--base-path", required=True, help="directory of numbered versions, as the server sees it"
    )
    _add_policy_flags(set_, required=False)
    _add_output_flags(set_)

    remove = sub("remove", "remove a model (TF Serving unloads it on its next config read)", _run_remove)
    remove.add_argument("name")
    _add_output_flags(remove)

    policy = sub("policy", "set a model's version policy", _run_policy)
    policy.add_argument("name")
    _add_policy_flags(policy, required=True)
    _add_output_flags(policy)

    label = sub(
        "label",
        "point a version label at a version; --step 1 then --step 2 to move it to a version not yet served",
        _run_label,
    )
    label.add_argument("name")
    label.add_argument("label")
    label.add_argument("version", type=int)
    label.add_argument(
        "--step",
        type=int,
        choices=(1, 2),
        help="1: serve VERSION beside the labelled ones, label unchanged; 2: move the label (once AVAILABLE)",
    )
    label.add_argument(
        "--retire-unlabelled", action="store_true", help="with --step 2: stop serving versions no label names"
    )
    label.add_argument(
        "--server",
        metavar="URL",
        help="REST URL (http://host:8501); refuse step 2 until VERSION is AVAILABLE",
    )
    _add_mount_flag(label)
    _add_output_flags(label)

    unlabel = sub("unlabel", "remove a version label", _run_unlabel)
    unlabel.add_argument("name")
    unlabel.add_argument("label")
    _add_output_flags(unlabel)


def _add_policy_flags(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--latest", type=int, metavar="N", help="serve the N highest versions on disk")
    group.add_argument("--all", action="store_true", help="serve every version on disk")
    group.add_argument("--specific", type=int, nargs="+", metavar="V", help="serve exactly these versions")


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print the new file instead of writing it")


def _add_mount_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mount",
        action="append",
        default=[],
        metavar="HOST:CONTAINER",
        help="read base paths under CONTAINER from HOST, like `docker run -v` (repeatable)",
    )


def _policy_from(args: argparse.Namespace) -> pb.ServableVersionPolicy | None:
    if args.latest is not None:
        return cfg.latest_versions(args.latest)
    if args.all:
        return cfg.all_versions()
    if args.specific:
        return cfg.specific_versions(args.specific)
    return None


def _load_models(args: argparse.Namespace, *, create: bool = False) -> pb.ModelServerConfig:
    path: Path = args.config
    if create and not path.exists():
        return pb.ModelServerConfig()
    return cfg.read_model_server_config(path)


def _save_models(args: argparse.Namespace, config: pb.ModelServerConfig) -> int:
    if args.dry_run:
        sys.stdout.write(cfg.format_model_server_config(config))
    else:
        cfg.write_model_server_config(args.config, config)
        print(f"wrote {args.config}", file=sys.stderr)
    return EXIT_OK


def _run_models_show(args: argparse.Namespace) -> int:
    config = _load_models(args)
    entries = config.model_config_list.config
    if args.json:
        rows = [
            {
                "name": entry.name,
                "base_path": entry.base_path,
                "policy": cfg.describe_policy(entry.model_version_policy),
                "labels": dict(sorted(entry.version_labels.items())),
            }
            for entry in entries
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for entry in entries:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(entry.version_labels.items())) or "-"
        policy = cfg.describe_policy(entry.model_version_policy)
        print(f"{entry.name}\t{entry.base_path}\t{policy}\tlabels: {labels}")
    return EXIT_OK


def _run_set(args: argparse.Namespace) -> int:
    config = cfg.set_model(
        _load_models(args, create=True), args.name, args.base_path, policy=_policy_from(args)
    )
    return _save_models(args, config)


def _run_remove(args: argparse.Namespace) -> int:
    return _save_models(args, cfg.remove_model(_load_models(args), args.name))


def _run_policy(args: argparse.Namespace) -> int:
    policy = _policy_from(args)
    assert policy is not None  # the flag group is required
    return _save_models(args, cfg.set_version_policy(_load_models(args), args.name, policy))


def _run_label(args: argparse.Namespace) -> int:
    config = _load_models(args)
    entry = cfg.find_model(config, args.name)
    host_path = cfg.resolve_base_path(entry.base_path, _mounts(args.mount))
    if not Path(host_path).is_dir():
        raise ConfigError(
            f"model {args.name!r}: base_path {entry.base_path} is not a directory on this machine; "
            "labels are checked against the versions on disk: pass --mount HOST:CONTAINER"
        )
    versions = cfg.list_versions(host_path)
    found = versions.get(args.version)
    if found is not None and not found.complete:
        raise ConfigError(
            f"model {args.name!r}: version {args.version} is incomplete (missing {', '.join(found.missing)} "
            f"in {found.path}); TF Serving could not load it, so it cannot carry a label"
        )
    on_disk = {v.version for v in versions.values() if v.complete}
    if args.step == 1:
        updated = cfg.begin_label_move(config, args.name, args.label, args.version, versions_on_disk=on_disk)
        print(
            f"step 1 of 2: version {args.version} is now served beside the labelled versions; once "
            f"GET /v1/models/{args.name} shows it AVAILABLE, run with --step 2",
            file=sys.stderr,
        )
        return _save_models(args, updated)
    if args.server:
        states = fetch_version_states(args.server, args.name)
        state = states.get(args.version, "not loaded")
        if state != "AVAILABLE":
            raise ConfigError(
                f"version {args.version} of model {args.name!r} is {state} on {args.server} (states: "
                f"{states}); TF Serving would refuse the label. Wait, or run --step 1 first"
            )
    if args.step == 2:
        updated = cfg.finish_label_move(
            config,
            args.name,
            args.label,
            args.version,
            versions_on_disk=on_disk,
            retire_unlabelled=args.retire_unlabelled,
        )
    else:
        updated = cfg.set_label(config, args.name, args.label, args.version, versions_on_disk=on_disk)
    return _save_models(args, updated)


def _run_unlabel(args: argparse.Namespace) -> int:
    return _save_models(args, cfg.remove_label(_load_models(args), args.name, args.label))


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
        "--gpu-defaults", action="store_true", help="start from the GPU defaults (see README)"
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
    text = cfg.format_batching_config(settings)
    if str(args.out) == "-":
        sys.stdout.write(text)
    else:
        cfg.write_batching_config(args.out, settings)
        print(f"wrote {args.out} ({_describe_batching(settings)})", file=sys.stderr)
    return EXIT_OK


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
    config = cfg.monitoring_config(args.path, enable=not args.disable)
    if str(args.out) == "-":
        sys.stdout.write(cfg.format_monitoring_config(config))
    else:
        cfg.write_monitoring_config(args.out, config)
        print(f"wrote {args.out}", file=sys.stderr)
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
    _add_mount_flag(parser)
    parser.add_argument(
        "--signature",
        action="append",
        default=[],
        metavar="[MODEL:]NAME",
        help="a signature clients call; must exist in every served version (repeatable)",
    )
    parser.add_argument(
        "--image-tensorflow",
        default=cfg.IMAGE_TENSORFLOW_VERSION,
        help=f"the server's TensorFlow version (default: the pinned image's, {cfg.IMAGE_TENSORFLOW_VERSION})",
    )
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
        mounts=_mounts(args.mount),
        signatures=signatures,
        image_tensorflow_version=args.image_tensorflow,
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


def _mounts(specs: list[str]) -> dict[str, str]:
    mounts = {}
    for spec in specs:
        host, sep, container = spec.rpartition(":")
        if not sep or not host or not container.startswith("/"):
            raise ConfigError(f"--mount takes HOST:CONTAINER with an absolute CONTAINER path; got {spec!r}")
        mounts[host] = container
    return mounts


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false; got {text!r}")
