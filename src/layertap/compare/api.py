"""`compare_versions`: run the same rows through every signature two versions share, and judge each one."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layertap._json import json_fields
from layertap.compare.metrics import (
    CHANGED,
    OutputComparison,
    Thresholds,
    compare_outputs,
    rows_needed,
    worst,
)
from layertap.compare.versions import SignatureSpec, Version
from layertap.errors import InvalidInputError, LayertapError, UsageError

__all__ = ["DEFAULT_ROWS", "Comparison", "SignatureComparison", "compare_versions", "probe_inputs"]

logger = logging.getLogger(__name__)

# Probe rows when no inputs are given: enough for the 10-neighbour metric (rows_needed(10) = 101)
# with room to spare, few enough to run in seconds on a small model.
DEFAULT_ROWS = 256


@dataclass(frozen=True)
class SignatureComparison:
    """One signature's verdict: the worst of its outputs', or `changed` when only one side has it."""

    key: str
    verdict: str
    reason: str
    old_space: str | None
    new_space: str | None
    outputs: tuple[OutputComparison, ...] = ()
    only_in: str | None = None  # "old" or "new" for a signature one version lacks

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the key is the dict's key in `Comparison.to_json`)."""
        return json_fields(
            self, skip=("key",), outputs={output.alias: output.to_json() for output in self.outputs}
        )


@dataclass(frozen=True)
class Comparison:
    """Every signature of two versions, judged on the same rows."""

    old: str
    new: str
    old_version: int | None
    new_version: int | None
    rows: int
    thresholds: Thresholds
    signatures: dict[str, SignatureComparison]
    warnings: tuple[str, ...] = field(default=())

    @property
    def shared(self) -> list[str]:
        """Keys of the signatures both versions have."""
        return [key for key, sig in self.signatures.items() if sig.only_in is None]

    @property
    def changed(self) -> list[str]:
        """Keys of shared signatures whose verdict is `changed` (they decide `layertap compare`'s exit)."""
        return [key for key in self.shared if self.signatures[key].verdict == CHANGED]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the `layertap compare --json` output, and the manifest's record)."""
        return {
            "old": {"location": self.old, "version": self.old_version},
            "new": {"location": self.new, "version": self.new_version},
            "rows": self.rows,
            "thresholds": {
                "cosine": self.thresholds.cosine,
                "neighbours": self.thresholds.neighbours,
                "k": self.thresholds.k,
            },
            "signatures": {key: sig.to_json() for key, sig in self.signatures.items()},
            "changed": self.changed,
            "warnings": list(self.warnings),
        }


def probe_inputs(signatures: Mapping[str, SignatureSpec], *, rows: int, seed: int) -> dict[str, np.ndarray]:
    """Random rows for every input alias of `signatures` (the verification sampler; one draw for all)."""
    from layertap.exporter.samples import sample_inputs

    specs: dict[str, tuple[str, tuple[int | None, ...], str]] = {}
    for signature in signatures.values():
        for alias, (shape, dtype) in signature.inputs.items():
            specs.setdefault(alias, (alias, tuple(shape), dtype))
    return sample_inputs(list(specs.values()), batch=rows, seed=seed)


def compare_versions(
    old: Version,
    new: Version,
    *,
    inputs: np.ndarray | Mapping[str, np.ndarray] | None = None,
    rows: int = DEFAULT_ROWS,
    seed: int = 0,
    thresholds: Thresholds | None = None,
) -> Comparison:
    """Compare `old` and `new` signature by signature on the same rows.

    Args:
        old, new: the versions (`layertap.compare.open_version`, or `ServedVersion`).
        inputs: the rows: one array (every signature takes the same single input) or arrays by input
            alias; default `rows` random rows drawn for the NEW version's inputs with `seed`, as the
            exporter's verification draws them.
        thresholds: what `compatible` requires (default: mean cosine >= 0.99, 10-neighbour overlap >= 0.9).

    Raises:
        UsageError: no rows, rows of different lengths, or inputs a signature cannot take.
    """
    thresholds = thresholds or Thresholds()
    old_signatures, new_signatures = old.signatures(), new.signatures()
    shared = [key for key in new_signatures if key in old_signatures]
    probe = _rows(inputs, {key: new_signatures[key] for key in shared}, rows=rows, seed=seed)
    count = len(next(iter(probe.values()))) if probe else 0
    warnings = []
    if count < rows_needed(thresholds.k):
        warnings.append(
            f"only {count} rows: two unrelated rankings of {thresholds.k} neighbours already share "
            f"{thresholds.k / max(count - 1, 1):.0%} of them by chance; give at least "
            f"{rows_needed(thresholds.k)} rows for the neighbour overlap to mean something"
        )
    judged: dict[str, SignatureComparison] = {}
    for key in sorted(set(old_signatures) | set(new_signatures)):
        before, after = old_signatures.get(key), new_signatures.get(key)
        if before is None or after is None:
            side = "old" if after is None else "new"
            judged[key] = SignatureComparison(
                key,
                CHANGED,
                f"only the {side} version has this signature",
                old_space=before.space if before else None,
                new_space=after.space if after else None,
                only_in=side,
            )
            continue
        judged[key] = _judge(
            key, old=old, new=new, before=before, after=after, probe=probe, thresholds=thresholds
        )
    return Comparison(
        old=old.description,
        new=new.description,
        old_version=old.number,
        new_version=new.number,
        rows=count,
        thresholds=thresholds,
        signatures=judged,
        warnings=tuple(warnings),
    )


def _judge(
    key: str,
    *,
    old: Version,
    new: Version,
    before: SignatureSpec,
    after: SignatureSpec,
    probe: Mapping[str, np.ndarray],
    thresholds: Thresholds,
) -> SignatureComparison:
    spaces: dict[str, Any] = {"old_space": before.space, "new_space": after.space}
    if set(before.inputs) != set(after.inputs):
        reason = f"inputs changed: {sorted(before.inputs)} -> {sorted(after.inputs)}"
        return SignatureComparison(key, CHANGED, reason, **spaces)
    feeds = {alias: probe[alias] for alias in after.inputs}
    old_outputs = _run(old, key, feeds)
    new_outputs = _run(new, key, feeds)
    outputs = [
        compare_outputs(alias, old_outputs[alias], new_outputs[alias], thresholds)
        for alias in sorted(set(old_outputs) & set(new_outputs))
    ]
    verdict = worst([output.verdict for output in outputs])
    reasons = [f"{output.alias}: {output.reason}" for output in outputs if output.verdict == verdict]
    if set(old_outputs) != set(new_outputs):
        verdict = CHANGED
        reasons = [f"outputs changed: {sorted(old_outputs)} -> {sorted(new_outputs)}"]
    if len(outputs) == 1 and verdict == outputs[0].verdict:
        reasons = [outputs[0].reason]
    return SignatureComparison(key, verdict, "; ".join(reasons), outputs=tuple(outputs), **spaces)


def _run(version: Version, key: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    try:
        return version.run(key, feeds)
    except LayertapError:
        raise
    except Exception as error:  # TensorFlow's own errors carry the reason in their text
        raise UsageError(
            f"signature {key!r} of {version.description} could not run the probe rows: {error}"
        ) from error


def _rows(
    inputs: np.ndarray | Mapping[str, np.ndarray] | None,
    signatures: Mapping[str, SignatureSpec],
    *,
    rows: int,
    seed: int,
) -> dict[str, np.ndarray]:
    needed = sorted({alias for signature in signatures.values() for alias in signature.inputs})
    if inputs is None:
        if rows < 1:
            raise UsageError(f"the number of probe rows must be at least 1; got {rows}")
        return probe_inputs(signatures, rows=rows, seed=seed)
    if isinstance(inputs, np.ndarray):
        if len(needed) != 1:
            raise InvalidInputError(
                f"one array was given, but the signatures take the inputs {needed}; give arrays by input "
                "alias (an .npz file)"
            )
        inputs = {needed[0]: inputs}
    missing = [alias for alias in needed if alias not in inputs]
    if missing:
        raise InvalidInputError(
            f"the inputs lack {missing}; the compared signatures take {needed}, got {sorted(inputs)}"
        )
    lengths = {alias: len(inputs[alias]) for alias in needed}
    if len(set(lengths.values())) > 1 or 0 in lengths.values():
        raise InvalidInputError(f"every input needs the same, non-zero number of rows; got {lengths}")
    return {alias: np.asarray(inputs[alias]) for alias in needed}
