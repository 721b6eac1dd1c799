"""The promotion gate: a label moves to a version only when its outputs live in the same space.

Stored embeddings are searched with new queries long after they were computed; a version whose outputs
have the same shape and dtype but another meaning breaks every search without an error. So before a label
moves from the version it names to another, every signature of the labelled version is judged against the
new one (`layertap.compare`): `identical` and `compatible` pass; `changed`, or a signature the new
version lacks, refuses the move unless the user accepts the new space.

The verdicts come from the cheapest source that answers, without TensorFlow where possible:

1. the space ids in both manifests: equal ids for every signature mean the same computation (identical);
2. the verdicts the new version recorded at export (`export --compare-with`) against a version whose
   space ids are those of the labelled version now (that version, or a re-export of it);
3. a comparison run now (`compare`, given by the caller; it needs TensorFlow).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layertap._json import json_fields
from layertap.errors import ConfigError
from layertap.version_folder import read_manifest

__all__ = ["GateDecision", "Verdicts", "decide_label_move"]

# signature key -> (verdict, reason)
Verdicts = Mapping[str, tuple[str, str]]
_CHANGED = "changed"


@dataclass(frozen=True)
class GateDecision:
    """Whether `label` may move from `old_version` to `new_version`, and why.

    Attributes:
        source: where the verdicts came from: "new label" (nothing to compare), "same version",
            "space ids", "recorded at export", "compared now".
        blocking: signature -> why it blocks (changed, or missing in the new version).
    """

    model: str
    label: str
    old_version: int | None
    new_version: int
    allowed: bool
    accepted_new_space: bool
    source: str
    verdicts: dict[str, tuple[str, str]] = field(default_factory=dict)
    blocking: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """One paragraph for people."""
        move = (
            f"label {self.label!r} of model {self.model!r}: version {self.old_version} -> {self.new_version}"
        )
        if self.old_version is None:
            return f"label {self.label!r} of model {self.model!r} is new: nothing to compare"
        if not self.blocking:
            counts = ", ".join(
                f"{sum(1 for v, _ in self.verdicts.values() if v == verdict)} {verdict}"
                for verdict in ("identical", "compatible")
            )
            return f"{move}: allowed ({counts}; {self.source})"
        reasons = "; ".join(f"{key}: {why}" for key, why in sorted(self.blocking.items()))
        if self.allowed:
            return f"{move}: allowed with --accept-new-space although the space changed ({reasons})"
        return (
            f"{move}: refused, the embedding space changed ({self.source}): {reasons}. Vectors stored from "
            f"version {self.old_version} would be searched with vectors of another space; re-embed them, or "
            "pass --accept-new-space to move the label anyway"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (`layertap config models label --json`)."""
        return json_fields(
            self,
            verdicts={key: {"verdict": v, "reason": r} for key, (v, r) in sorted(self.verdicts.items())},
            blocking=dict(sorted(self.blocking.items())),
            message=self.message,
        )


def decide_label_move(
    model: str,
    label: str,
    old_version: int | None,
    new_version: int,
    *,
    base_path: Path,
    accept_new_space: bool = False,
    compare: Callable[[Path, Path], Verdicts] | None = None,
) -> GateDecision:
    """Judge moving `label` from `old_version` (None: the label is new) to `new_version` of the model
    whose versions are under `base_path`.

    Args:
        compare: runs the comparison of two version directories when neither the space ids nor a
            recorded verdict answer (e.g. `layertap.compare`): (verdict, reason) for each signature
            of the OLD version; None refuses in that case.

    Raises:
        ConfigError: no source of verdicts answers (no manifests, nothing recorded, no `compare`).
    """
    decision: dict[str, Any] = {
        "model": model,
        "label": label,
        "old_version": old_version,
        "new_version": new_version,
    }
    if old_version is None or old_version == new_version:
        source = "new label" if old_version is None else "same version"
        return GateDecision(**decision, allowed=True, accepted_new_space=False, source=source)
    old_dir, new_dir = base_path / str(old_version), base_path / str(new_version)
    old_manifest, new_manifest = read_manifest(old_dir), read_manifest(new_dir)
    old_spaces, new_spaces = _spaces(old_manifest), _spaces(new_manifest)
    verdicts: Verdicts | None = None
    source = ""
    if old_spaces and new_spaces and all(new_spaces.get(key) == space for key, space in old_spaces.items()):
        source = "space ids"
        verdicts = {key: ("identical", "same embedding-space id") for key in old_spaces}
    if verdicts is None:
        verdicts = _recorded(new_manifest, old_spaces)
        source = "recorded at export"
    if verdicts is None:
        if compare is None:
            raise ConfigError(
                f"model {model!r}: no verdict for versions {old_version} -> {new_version} (their manifests' "
                f"space ids differ or are missing, and version {new_version} recorded no comparison with "
                f"version {old_version}); run `layertap compare {old_dir} {new_dir}`, or export with "
                f"--compare-with {old_version}"
            )
        verdicts = compare(old_dir, new_dir)
        source = "compared now"
    keys = set(old_spaces) if old_spaces else set(verdicts)
    blocking = {
        key: verdicts[key][1] if key in verdicts else f"version {new_version} has no such signature"
        for key in sorted(keys)
        if key not in verdicts or verdicts[key][0] == _CHANGED
    }
    return GateDecision(
        **decision,
        allowed=not blocking or accept_new_space,
        accepted_new_space=bool(blocking) and accept_new_space,
        source=source,
        verdicts=dict(verdicts),
        blocking=blocking,
    )


def _spaces(manifest: Mapping[str, Any] | None) -> dict[str, str]:
    """Space id per signature from a manifest; empty when any signature lacks one (an older export)."""
    signatures = (manifest or {}).get("signatures")
    if not isinstance(signatures, Mapping) or not signatures:
        return {}
    spaces = {key: entry.get("space") for key, entry in signatures.items() if isinstance(entry, Mapping)}
    if any(not isinstance(space, str) for space in spaces.values()):
        return {}
    return {key: str(space) for key, space in spaces.items()}


def _recorded(manifest: Mapping[str, Any] | None, old_spaces: Mapping[str, str]) -> Verdicts | None:
    """The verdicts the new version recorded at export against a version with exactly `old_spaces`."""
    record = (manifest or {}).get("comparison")
    signatures = record.get("signatures") if isinstance(record, Mapping) else None
    if not isinstance(signatures, Mapping):
        return None
    recorded_old = {key: entry.get("old_space") for key, entry in signatures.items()}
    # The record answers for any version computing what the compared one did: every signature in the
    # same space. So a version directory replaced since the export (same number, other weights) voids
    # it, and a re-export of the compared version (another number, same ids) is answered by it.
    if not old_spaces or any(recorded_old.get(key) != space for key, space in old_spaces.items()):
        return None
    return {
        key: (str(entry["verdict"]), str(entry["reason"]))
        for key, entry in signatures.items()
        if entry.get("only_in") != "new"  # a signature the new version adds blocks nothing
    }
