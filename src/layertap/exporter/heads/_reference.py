"""Each head op in numpy: verification's reference (the registry's `numpy` column).

Written independently of `_tensorflow` (the only thing shared is the avgpool bin rule, which is part of
the op's definition). Every op but a cast computes in float64 and returns to the dtype it received.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from layertap.exporter.heads._tensorflow import L2_EPSILON, bins

__all__ = ["avgpool", "cast_to", "dims", "first", "gap", "gmp", "l2", "last", "mean"]

_Reference = Callable[[np.ndarray, np.ndarray | None, int | str | None], np.ndarray]


def _in_float64(compute: _Reference) -> _Reference:
    """`compute` run on a float64 copy of a floating input; its result cast back to the input's dtype."""

    def wrapped(value: np.ndarray, mask: np.ndarray | None, argument: int | str | None) -> np.ndarray:
        floating = value.dtype.kind == "f" or value.dtype.name == "bfloat16"
        wide = value.astype(np.float64) if floating else value
        return np.asarray(compute(wide, mask, argument)).astype(value.dtype)

    wrapped.__doc__ = compute.__doc__
    return wrapped


@_in_float64
def gap(wide: np.ndarray, mask: np.ndarray | None, argument: int | str | None) -> np.ndarray:
    return np.asarray(wide.mean(axis=tuple(range(1, wide.ndim - 1))))


@_in_float64
def gmp(wide: np.ndarray, mask: np.ndarray | None, argument: int | str | None) -> np.ndarray:
    return np.asarray(wide.max(axis=tuple(range(1, wide.ndim - 1))))


@_in_float64
def mean(wide: np.ndarray, mask: np.ndarray | None, argument: int | str | None) -> np.ndarray:
    if mask is None:
        return np.asarray(wide.mean(axis=1))
    weights = mask.astype(np.float64)
    totals = np.einsum("btf,bt->bf", wide, weights)
    return np.asarray(totals / np.maximum(weights.sum(axis=1), 1.0)[:, None])


@_in_float64
def first(wide: np.ndarray, mask: np.ndarray | None, argument: int | str | None) -> np.ndarray:
    return wide[:, 0]


@_in_float64
def last(wide: np.ndarray, mask: np.ndarray | None, argument: int | str | None) -> np.ndarray:
    if mask is None:
        return wide[:, -1]
    result = np.zeros((wide.shape[0], wide.shape[2]), dtype=wide.dtype)
    for row in range(wide.shape[0]):
        valid = np.flatnonzero(mask[row])
        if valid.size:
            result[row] = wide[row, valid[-1]]
    return result


@_in_float64
def avgpool(wide: np.ndarray, mask: np.ndarray | None, argument: int | str | None) -> np.ndarray:
    k = int(argument or 1)
    result = np.empty((wide.shape[0], k, k, wide.shape[3]), dtype=np.float64)
    for i, (h0, h1) in enumerate(bins(wide.shape[1], k)):
        for j, (w0, w1) in enumerate(bins(wide.shape[2], k)):
            result[:, i, j, :] = wide[:, h0:h1, w0:w1, :].mean(axis=(1, 2))
    return result


@_in_float64
def dims(wide: np.ndarray, mask: np.ndarray | None, argument: int | str | None) -> np.ndarray:
    return wide[..., : int(argument or 1)]


@_in_float64
def l2(wide: np.ndarray, mask: np.ndarray | None, argument: int | str | None) -> np.ndarray:
    norms = np.sqrt(np.sum(wide * wide, axis=-1, keepdims=True))
    return np.asarray(wide / np.maximum(norms, L2_EPSILON))


def _numpy_dtype(name: str) -> np.dtype[Any]:
    if name == "bfloat16":
        import ml_dtypes

        bfloat16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
        return bfloat16
    return np.dtype(name)


def cast_to(target: str) -> _Reference:
    """The cast to dtype `target`, from the input as it is (not through float64)."""

    def cast(value: np.ndarray, mask: np.ndarray | None, argument: int | str | None) -> np.ndarray:
        return value.astype(_numpy_dtype(target))

    return cast
