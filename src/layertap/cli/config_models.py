"""`layertap config models ...`: show and edit models.config, one model at a time."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from layertap import config as cfg
from layertap.cli import EXIT_OK, EXIT_USAGE
from layertap.config.gate import GateDecision
from layertap.config.status import fetch_version_states
from layertap.errors import ConfigError, UsageError
from layertap.proto import serving_pb2 as pb
from layertap.storage.uri import ObjectLocation, parse_location, require_backend
from layertap.version_folder import ASSETS_EXTRA

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
            "--config",
            type=_config_location,
            default=DEFAULT_DIR / "models.config",
            help="the models.config to edit: a local file or gs://BUCKET/PATH (written back only if no other "
            "editor wrote it meanwhile)",
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


def _config_location(text: str) -> Path | ObjectLocation:
    """--config: a local file, or a models.config on gs:// (what TF Serving's --model_config_file reads)."""
    try:
        location = parse_location(text)
        if isinstance(location, ObjectLocation):
            if location.scheme != "gs" or not location.key:
                raise ConfigError(
                    f"--config {text}: TF Serving reads --model_config_file from a local file or "
                    "gs://BUCKET/PATH only"
                )
            require_backend(location)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return location


def _load_models(args: argparse.Namespace, *, create: bool = False) -> pb.ModelServerConfig:
    if isinstance(args.config, ObjectLocation):
        # Kept on args: _save_models writes back only over the generation read here.
        from layertap.storage.config_file import RemoteText

        args.remote_config = RemoteText.read(args.config)
        if args.remote_config.text is None:
            if create:
                return pb.ModelServerConfig()
            raise ConfigError(f"{args.config} does not exist")
        return cfg.parse_model_server_config(args.remote_config.text, str(args.config))
    path: Path = args.config
    if create and not path.exists():
        return pb.ModelServerConfig()
    return cfg.read_model_server_config(path)


def _save_models(args: argparse.Namespace, config: pb.ModelServerConfig) -> int:
    if args.dry_run:
        sys.stdout.write(cfg.format_model_server_config(config))
    elif isinstance(args.config, ObjectLocation):
        token = args.remote_config.write(cfg.format_model_server_config(config))
        print(f"wrote {args.config} (generation {token})", file=sys.stderr)
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
    location = parse_location(entry.base_path)
    if isinstance(location, ObjectLocation):
        with tempfile.TemporaryDirectory(prefix="layertap-label-") as mirror:
            return _run_label_remote(args, config, entry, location, Path(mirror))
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
        return _begin_move(args, config, on_disk)
    if args.server:
        _require_available(args)
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
    return _apply_label(args, config, decision, on_disk)


def _begin_move(args: argparse.Namespace, config: pb.ModelServerConfig, on_disk: set[int]) -> int:
    """Step 1 of a label move, for a local or an object-store repository alike."""
    updated = cfg.begin_label_move(config, args.name, args.label, args.version, versions_on_disk=on_disk)
    print(
        f"step 1 of 2: version {args.version} is now served beside the labelled versions; once "
        f"GET /v1/models/{args.name} shows it AVAILABLE, run with --step 2",
        file=sys.stderr,
    )
    return _save_models(args, updated)


def _require_available(args: argparse.Namespace) -> None:
    states = fetch_version_states(args.server, args.name)
    state = states.get(args.version, "not loaded")
    if state != "AVAILABLE":
        raise ConfigError(
            f"version {args.version} of model {args.name!r} is {state} on {args.server} (states: "
            f"{states}); TF Serving would refuse the label. Wait, or run --step 1 first"
        )


def _apply_label(
    args: argparse.Namespace, config: pb.ModelServerConfig, decision: GateDecision, on_disk: set[int]
) -> int:
    """Report the gate's decision; if allowed, move the label (plain set or step 2) and save."""
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
            decision=decision,
            retire_unlabelled=args.retire_unlabelled,
        )
    else:
        updated = cfg.set_label(
            config, args.name, args.label, args.version, versions_on_disk=on_disk, decision=decision
        )
    return _save_models(args, updated)


def _run_label_remote(
    args: argparse.Namespace,
    config: pb.ModelServerConfig,
    entry: pb.ModelConfig,
    location: ObjectLocation,
    mirror: Path,
) -> int:
    """`label` for a model whose base path is on gs:// (or s3://): versions and manifests read from the store.

    A version counts once it is published (its claim says so, or it holds saved_model.pb if another tool
    uploaded it); the gate reads the two manifests from a local mirror of their assets.extra/.
    """
    from layertap.storage.publish import RemoteRepository

    repository = RemoteRepository.at(location)
    complete = set(repository.complete_versions())
    if args.version in repository.versions() and args.version not in complete:
        raise ConfigError(
            f"model {args.name!r}: version {args.version} in {location} is not completely published yet; "
            "TF Serving could not load it, so it cannot carry a label"
        )
    if args.step == 1:
        return _begin_move(args, config, complete)
    if args.server:
        _require_available(args)
    old = entry.version_labels.get(args.label)
    for version in {old, args.version} - {None}:
        repository.download(int(version), mirror / str(version), f"{ASSETS_EXTRA}/")

    def compare(old_dir: Path, new_dir: Path) -> dict[str, tuple[str, str]]:
        for directory in (old_dir, new_dir):  # the whole versions, only when no recorded verdict answers
            repository.download(int(directory.name), directory)
        return _compare_now(old_dir, new_dir)

    decision = cfg.decide_label_move(
        args.name,
        args.label,
        old,
        args.version,
        base_path=mirror,
        accept_new_space=args.accept_new_space,
        compare=compare,
    )
    return _apply_label(args, config, decision, complete)


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
