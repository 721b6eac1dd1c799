"""Version labels, under TF Serving's rule that a label may only point at a version already AVAILABLE.

TF Serving applies a new config's labels before it loads the new config's versions, and refuses the whole
config (FAILED_PRECONDITION "Request to assign label to version N of model M, which is not currently
available for inference") when a label names a version that is not loaded yet. So moving a label to a new
version takes two config pushes:

1. `begin_label_move`: serve the new version next to the old one (`specific` policy), label unchanged.
2. once the new version is AVAILABLE (`GET /v1/models/M`), `finish_label_move`: point the label at it.

A label for a version that is not on disk is refused outright: the server could never make it available.

Moving a label that already names another version is a promotion: clients reading by label start getting
the new version's outputs, which may live in another embedding space (see `layertap.config.gate`). So
`set_label` and `finish_label_move` take the gate's `GateDecision` for that move and refuse without one, or
with one that refused it: no code path moves a label unjudged.
"""

from __future__ import annotations

from collections.abc import Collection

from layertap.config.gate import GateDecision
from layertap.config.models import find_model, specific_versions
from layertap.config.repository import aspired_versions
from layertap.errors import ConfigError
from layertap.proto import serving_pb2 as pb

__all__ = ["begin_label_move", "finish_label_move", "remove_label", "set_label"]


def set_label(
    config: pb.ModelServerConfig,
    model: str,
    label: str,
    version: int,
    *,
    versions_on_disk: Collection[int],
    decision: GateDecision | None = None,
) -> pb.ModelServerConfig:
    """Return a copy of `config` with `label` pointing at `version`, which the config already serves.

    Use this for a new label on a version that is loaded now, or to move a label to a version the current
    config already serves (step 2 of a move). To label a version the config does not serve yet, use
    `begin_label_move` first.

    Args:
        decision: when the label names another version now, the promotion gate's verdict on this move
            (`decide_label_move(model, label, <labelled version>, version, ...)`); not needed for a new
            label or one that stays put.

    Raises:
        ConfigError: `version` is not on disk, or the config's policy does not serve it (TF Serving would
            refuse the label: the version cannot be AVAILABLE); or the label moves without an allowing
            `decision` for exactly this move.
    """
    _check_label_name(label)
    updated = _copy(config)
    entry = find_model(updated, model)
    _require_on_disk(model, version, versions_on_disk)
    served = aspired_versions(entry.model_version_policy, versions_on_disk)
    if version not in served:
        raise ConfigError(
            f"model {model!r}: version {version} is on disk but the config does not serve it (serves "
            f"{served}); TF Serving only labels an AVAILABLE version. Run the two-step move: first "
            f"`begin_label_move` (CLI: `layertap config models label {model} {label} {version} --step 1`), "
            "then, once the version is AVAILABLE, set the label"
        )
    current = entry.version_labels.get(label)
    if current is not None and current != version:
        _require_allowed(decision, model, label, current, version)
    entry.version_labels[label] = version
    return updated


def remove_label(config: pb.ModelServerConfig, model: str, label: str) -> pb.ModelServerConfig:
    """Return a copy of `config` without `label` on `model`.

    Raises:
        ConfigError: no such model or label.
    """
    updated = _copy(config)
    entry = find_model(updated, model)
    if label not in entry.version_labels:
        raise ConfigError(
            f"model {model!r} has no label {label!r}; labels: {dict(sorted(entry.version_labels.items()))}"
        )
    del entry.version_labels[label]
    return updated


def begin_label_move(
    config: pb.ModelServerConfig,
    model: str,
    label: str,
    new_version: int,
    *,
    versions_on_disk: Collection[int],
) -> pb.ModelServerConfig:
    """Step 1 of moving `label` to `new_version`: serve it beside every labelled version, label unchanged.

    The policy becomes `specific` with the versions the current policy serves that carry a label, plus
    (for a `specific` policy) every version it already named, plus `new_version`. Nothing labelled unloads,
    so requests by label keep working while the new version loads.

    Raises:
        ConfigError: `new_version` is not on disk.
    """
    _check_label_name(label)
    updated = _copy(config)
    entry = find_model(updated, model)
    _require_on_disk(model, new_version, versions_on_disk)
    keep = set(entry.version_labels.values()) | {new_version}
    policy = entry.model_version_policy
    if policy.WhichOneof("policy_choice") == "specific":
        keep |= set(policy.specific.versions)
    else:
        # Keep what is loaded now, so a `latest` or `all` policy does not unload a version mid-move.
        keep |= set(aspired_versions(policy, set(versions_on_disk) - {new_version}))
    entry.model_version_policy.CopyFrom(specific_versions(keep))
    return updated


def finish_label_move(
    config: pb.ModelServerConfig,
    model: str,
    label: str,
    new_version: int,
    *,
    versions_on_disk: Collection[int],
    decision: GateDecision | None = None,
    retire_unlabelled: bool = False,
) -> pb.ModelServerConfig:
    """Step 2: point `label` at `new_version`, which step 1 made the config serve.

    Push this only once the server reports `new_version` AVAILABLE. With `retire_unlabelled`, versions that
    no label points at any more are dropped from the `specific` policy (TF Serving unloads them); without it
    they stay loaded, so the label can be moved back instantly.

    `decision` is the promotion gate's verdict on the move, as for `set_label`.

    Raises:
        ConfigError: `new_version` is not on disk or not served by the config (step 1 was not pushed), or
            the gate's decision is missing or refused the move.
    """
    updated = set_label(
        config, model, label, new_version, versions_on_disk=versions_on_disk, decision=decision
    )
    if retire_unlabelled:
        entry = find_model(updated, model)
        entry.model_version_policy.CopyFrom(specific_versions(set(entry.version_labels.values())))
    return updated


def _require_allowed(
    decision: GateDecision | None, model: str, label: str, current: int, version: int
) -> None:
    move = f"moving label {label!r} of model {model!r} from version {current} to {version}"
    if decision is None:
        raise ConfigError(
            f"{move} needs the promotion gate's decision: pass decision=decide_label_move({model!r}, "
            f"{label!r}, {current}, {version}, base_path=...) (with accept_new_space=True to accept a "
            "changed embedding space); the CLI `layertap config models label` does this"
        )
    judged = (decision.model, decision.label, decision.old_version, decision.new_version)
    if judged != (model, label, current, version):
        raise ConfigError(
            f"{move}: the gate's decision given is for another move (model {decision.model!r}, label "
            f"{decision.label!r}, {decision.old_version} -> {decision.new_version})"
        )
    if not decision.allowed:
        raise ConfigError(f"{move} was refused by the promotion gate: {decision.message}")


def _check_label_name(label: str) -> None:
    # REST addresses labels as /v1/models/M/labels/<label>: keep them path-safe.
    if not label or not all(char.isalnum() or char in "-_." for char in label):
        raise ConfigError(
            f"a label must be non-empty and use letters, digits, '-', '_' or '.'; got {label!r}"
        )


def _require_on_disk(model: str, version: int, versions_on_disk: Collection[int]) -> None:
    if version not in versions_on_disk:
        raise ConfigError(
            f"model {model!r}: version {version} is not on disk (versions present: "
            f"{sorted(versions_on_disk) or 'none'}); a label can only point at a version TF Serving can load"
        )


def _copy(config: pb.ModelServerConfig) -> pb.ModelServerConfig:
    copied = pb.ModelServerConfig()
    copied.CopyFrom(config)
    return copied
