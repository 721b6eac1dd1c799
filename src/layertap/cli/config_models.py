"""`layertap config models ...`: show and edit models.config, one model at a time."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from layertap import config as cfg
from layertap.cli import EXIT_OK, EXIT_USAGE
from layertap.config.status import fetch_version_states
from layertap.errors import ConfigError
from layertap.proto import serving_pb2 as pb

__all__ = ["DEFAULT_DIR", "add_models_parser", "add_mount_flag", "parse_mounts"]

DEFAULT_DIR = Path("serving_config")


def add_models_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare `layertap config models show|set|remove|policy|label|unlabel`."""
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
    label.add_argument(
        "--accept-new-space",
        action="store_true",
        help="move the label even when the new version's outputs are in another embedding space "
        "(signatures `changed` against the labelled version; see `layertap compare`)",
    )
    label.add_argument("--json", action="store_true", help="print the gate's decision as JSON on stdout")
    add_mount_flag(label)
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


def add_mount_flag(parser: argparse.ArgumentParser) -> None:
    """Declare `--mount HOST:CONTAINER` (repeatable)."""
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
    host_path = cfg.resolve_base_path(entry.base_path, parse_mounts(args.mount))
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
    # The label moves now (plain set, or step 2): the gate judges the new version against the labelled one.
    decision = cfg.decide_label_move(
        args.name,
        args.label,
        entry.version_labels.get(args.label),
        args.version,
        base_path=Path(host_path),
        accept_new_space=args.accept_new_space,
        compare=_compare_now,
    )
    if args.json:
        print(json.dumps(decision.to_json(), indent=2))
    print(f"gate: {decision.message}", file=sys.stderr)
    if not decision.allowed:
        return EXIT_USAGE  # refused: the config file is not touched
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


def _compare_now(old: Path, new: Path) -> dict[str, tuple[str, str]]:
    """Verdicts for the old version's signatures, computed now (TensorFlow runs both versions)."""
    from layertap.cli.framework import require_extras

    require_extras(["tf"])
    from layertap.cli.tflogs import quiet_tensorflow

    quiet_tensorflow(verbose=False)
    from layertap.compare import compare_versions, open_version

    print(f"gate: no recorded verdict; comparing {old} with {new} now", file=sys.stderr)
    comparison = compare_versions(open_version(old), open_version(new))
    return {
        key: (signature.verdict, signature.reason)
        for key, signature in comparison.signatures.items()
        if signature.only_in != "new"
    }


def _run_unlabel(args: argparse.Namespace) -> int:
    return _save_models(args, cfg.remove_label(_load_models(args), args.name, args.label))


def parse_mounts(specs: list[str]) -> dict[str, str]:
    """`--mount` values as host -> container paths.

    Raises:
        ConfigError: a value is not HOST:CONTAINER with an absolute container path.
    """
    mounts = {}
    for spec in specs:
        host, sep, container = spec.rpartition(":")
        if not sep or not host or not container.startswith("/"):
            raise ConfigError(f"--mount takes HOST:CONTAINER with an absolute CONTAINER path; got {spec!r}")
        mounts[host] = container
    return mounts
