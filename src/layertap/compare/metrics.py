"""How far apart two versions' outputs for the same rows are: the numbers behind a verdict (numpy only).

Each output is read as one vector per row (every dimension after the batch flattened). For two versions:

- `max_abs_difference`, and the same over the larger magnitude of the old output (`relative_difference`),
  against the dtype's tolerance (`layertap.exporter.verify.tolerance_for`, the one verification uses):
  within it, the outputs are `identical` (the same weights, or another TensorFlow's numerics);
- `mean_cosine`: the mean over rows of the cosine similarity between a row's old and new vector (it pairs
  dimension i with dimension i, so it only exists when the shapes agree);
- `neighbour_overlap`: for each row, its k nearest rows (cosine similarity, itself excluded) in the old
  outputs and in the new ones; the mean fraction they share. It says whether a search over stored old
  vectors still returns the right rows for new queries' neighbours. With n rows, two unrelated rankings
  already share k/(n-1) on average, so the number only means something when n is well above k:
  `rows_needed(k)` (10k + 1) keeps that chance level at 10% at most;
- `cka`: linear centred kernel alignment (Kornblith et al., 2019, "Similarity of Neural Network
  Representations Revisited"), 1 for spaces that differ by a rotation and scale, near 0 for unrelated
  ones. It compares the rows' Gram matrices, so it needs no paired dimensions and works across shapes.

Both Gram matrices (n x n) are computed once and serve the neighbours and CKA: for n rows of D values the
metrics cost O(n^2 D), beside the inference that produced the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from layertap._json import json_fields
from layertap.errors import UsageError
from layertap.exporter.verify import tolerance_for

__all__ = [
    "CHANGED",
    "COMPATIBLE",
    "IDENTICAL",
    "VERDICTS",
    "OutputComparison",
    "Thresholds",
    "compare_outputs",
    "rows_needed",
    "worst",
]

IDENTICAL = "identical"
COMPATIBLE = "compatible"
CHANGED = "changed"
VERDICTS = (IDENTICAL, COMPATIBLE, CHANGED)


@dataclass(frozen=True)
class Thresholds:
    """What `compatible` requires: mean cosine >= `cosine` and mean overlap of the `k` nearest
    neighbours >= `neighbours`."""

    cosine: float = 0.99
    neighbours: float = 0.9
    k: int = 10

    def __post_init__(self) -> None:
        if not -1.0 <= self.cosine <= 1.0:
            raise UsageError(f"the cosine threshold must be within [-1, 1]; got {self.cosine}")
        if not 0.0 <= self.neighbours <= 1.0:
            raise UsageError(f"the neighbour-overlap threshold must be within [0, 1]; got {self.neighbours}")
        if self.k < 1:
            raise UsageError(f"the number of neighbours must be at least 1; got {self.k}")


def rows_needed(k: int) -> int:
    """Rows for which two unrelated k-neighbour rankings share at most 10% by chance (k/(n-1) <= 0.1)."""
    return 10 * k + 1


@dataclass(frozen=True)
class OutputComparison:
    """One output alias of one signature, old against new, over the same rows."""

    alias: str
    verdict: str
    reason: str
    rows: int
    old: tuple[tuple[int, ...], str]
    new: tuple[tuple[int, ...], str]
    max_abs_difference: float | None = None
    relative_difference: float | None = None
    tolerance: float | None = None
    mean_cosine: float | None = None
    neighbour_overlap: float | None = None
    neighbours: int | None = None
    cka: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (measured floats rounded to 6 significant digits)."""
        result = json_fields(self, old=_spec_json(self.old), new=_spec_json(self.new))
        result.update((name, _round(getattr(self, name))) for name in _MEASURED)
        return result


# The measurements rounded in JSON (`tolerance` is a setting, kept as given).
_MEASURED = ("max_abs_difference", "relative_difference", "mean_cosine", "neighbour_overlap", "cka")


def _spec_json(spec: tuple[tuple[int, ...], str]) -> dict[str, Any]:
    return {"shape": list(spec[0]), "dtype": spec[1]}


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.6g}")


def worst(verdicts: list[str]) -> str:
    """The least compatible of `verdicts` (identical < compatible < changed); identical when empty."""
    return max(verdicts, key=VERDICTS.index, default=IDENTICAL)


def _is_float(array: np.ndarray) -> bool:
    return array.dtype.kind in "fc" or array.dtype.name == "bfloat16"


def compare_outputs(alias: str, old: np.ndarray, new: np.ndarray, thresholds: Thresholds) -> OutputComparison:
    """Compare one output's old and new values for the same rows (batch first) and give the verdict."""
    rows = int(old.shape[0]) if old.ndim else 1
    base: dict[str, Any] = {
        "alias": alias,
        "rows": rows,
        "old": (tuple(int(d) for d in old.shape), str(old.dtype)),
        "new": (tuple(int(d) for d in new.shape), str(new.dtype)),
    }
    if not (_is_float(old) and _is_float(new)):
        same = old.shape == new.shape and old.dtype == new.dtype and np.array_equal(old, new)
        reason = "equal values" if same else "non-float outputs differ (they must match exactly)"
        return OutputComparison(verdict=IDENTICAL if same else CHANGED, reason=reason, **base)
    old_rows = _as_rows(old)
    new_rows = _as_rows(new)
    old_gram, new_gram = _gram(old_rows), _gram(new_rows)
    cka = _linear_cka(old_gram, new_gram)
    if old.shape != new.shape or old.dtype != new.dtype:
        what = "shape" if old.shape != new.shape else "dtype"
        return OutputComparison(
            verdict=CHANGED,
            reason=f"{what} changed: {_describe(old)} -> {_describe(new)}",
            cka=cka,
            **base,
        )
    tolerance = tolerance_for(old.dtype)
    # What `layertap.exporter.verify.relative_error` computes, in the rows' own precision: a float64 copy
    # of two large activations would cost more than the comparison itself.
    difference = float(np.max(np.abs(new_rows - old_rows), initial=0.0))
    scale = float(np.max(np.abs(old_rows), initial=0.0))
    relative = difference / scale if scale > 0 else difference
    cosine = _mean_cosine(old_rows, new_rows, old_gram, new_gram)
    k = min(thresholds.k, rows - 1)
    overlap = _neighbour_overlap(old_gram, new_gram, k) if k >= 1 else None
    numbers: dict[str, Any] = {
        "max_abs_difference": difference,
        "relative_difference": relative,
        "tolerance": tolerance,
        "mean_cosine": cosine,
        "neighbour_overlap": overlap,
        "neighbours": k if k >= 1 else None,
        "cka": cka,
    }
    if relative <= tolerance:
        reason = f"max difference {relative:.3g} of the output's scale <= {tolerance:g}"
        return OutputComparison(verdict=IDENTICAL, reason=reason, **numbers, **base)
    problems = []
    if cosine < thresholds.cosine:
        problems.append(f"mean cosine {cosine:.4f} < {thresholds.cosine:g}")
    if overlap is not None and overlap < thresholds.neighbours:
        problems.append(f"{k}-neighbour overlap {overlap:.4f} < {thresholds.neighbours:g}")
    if problems:
        return OutputComparison(verdict=CHANGED, reason="; ".join(problems), **numbers, **base)
    agree = f"mean cosine {cosine:.4f} >= {thresholds.cosine:g}"
    if overlap is not None:
        agree += f", {k}-neighbour overlap {overlap:.4f} >= {thresholds.neighbours:g}"
    return OutputComparison(verdict=COMPATIBLE, reason=agree, **numbers, **base)


def _describe(array: np.ndarray) -> str:
    dims = ", ".join(str(d) for d in array.shape[1:])
    return f"{array.dtype}[?, {dims}]" if array.ndim > 1 else f"{array.dtype}[?]"


def _as_rows(array: np.ndarray) -> np.ndarray:
    """(rows, values): a view of float32/float64 outputs; half precision widened to float32."""
    rows = array.shape[0] if array.ndim else 1
    flat = np.asarray(array).reshape(rows, -1)
    if flat.dtype.kind == "c":
        return flat.real.astype(np.float64)
    return flat if flat.dtype in (np.float32, np.float64) else flat.astype(np.float32)


def _gram(rows: np.ndarray) -> np.ndarray:
    """The rows' inner products (n x n), in float64. For float32 rows the products run in float32 BLAS,
    the O(n^2 D) part of the metrics: rankings and CKA need no more precision."""
    gram: np.ndarray = (rows @ rows.T).astype(np.float64)
    return gram


def _mean_cosine(old: np.ndarray, new: np.ndarray, old_gram: np.ndarray, new_gram: np.ndarray) -> float:
    dot = np.sum(old * new, axis=1, dtype=np.float64)
    old_norms = np.sqrt(np.clip(np.diag(old_gram), 0.0, None))
    new_norms = np.sqrt(np.clip(np.diag(new_gram), 0.0, None))
    norms = old_norms * new_norms
    both_zero = (old_norms == 0) & (new_norms == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    # Two zero vectors are the same point; one zero vector against another is no similarity at all.
    cosine = np.where(both_zero, 1.0, cosine)
    return float(np.mean(cosine)) if cosine.size else 1.0


def _neighbours(gram: np.ndarray, k: int) -> np.ndarray:
    """Each row's k most cosine-similar other rows (indices, unordered)."""
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    safe = np.where(norms > 0, norms, 1.0)
    cosine = gram / safe[:, None] / safe[None, :]
    np.fill_diagonal(cosine, -np.inf)
    order: np.ndarray = np.argpartition(-cosine, k - 1, axis=1)[:, :k]
    return order


def _neighbour_overlap(old_gram: np.ndarray, new_gram: np.ndarray, k: int) -> float:
    old_sets, new_sets = _neighbours(old_gram, k), _neighbours(new_gram, k)
    shared = [len(np.intersect1d(a, b, assume_unique=True)) for a, b in zip(old_sets, new_sets, strict=True)]
    return float(np.mean(shared)) / k


def _linear_cka(old_gram: np.ndarray, new_gram: np.ndarray) -> float | None:
    """Linear CKA from the two Gram matrices (None with fewer than 2 rows, or a constant output)."""
    n = old_gram.shape[0]
    if n < 2 or new_gram.shape[0] != n:
        return None
    centre = np.eye(n) - 1.0 / n
    old_c, new_c = centre @ old_gram @ centre, centre @ new_gram @ centre
    denominator = float(np.linalg.norm(old_c) * np.linalg.norm(new_c))
    if denominator == 0.0:
        return None
    return float(np.sum(old_c * new_c) / denominator)
