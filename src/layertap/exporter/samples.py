"""Sample inputs for a signature: used by verification and by the warmup records."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["UNKNOWN_DIM", "sample_inputs"]

# A dimension the model leaves open (other than the batch), e.g. a sequence length, gets this size.
UNKNOWN_DIM = 8
# Integer inputs are usually token ids, segment ids or masks: 0 and 1 are valid for any of them
# (a BERT segment embedding has only 2 rows).
_INT_HIGH = 2


def sample_inputs(
    specs: Sequence[tuple[str, tuple[int | None, ...], str]], *, batch: int, seed: int
) -> dict[str, np.ndarray]:
    """Random inputs, one per (alias, shape, dtype) spec, with `batch` as the first dimension."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for alias, shape, dtype_name in specs:
        shape_now = (batch, *(UNKNOWN_DIM if dim is None else dim for dim in shape[1:]))
        dtype = np.dtype(dtype_name) if dtype_name != "string" else np.dtype(object)
        if dtype.kind == "f":
            arrays[alias] = rng.standard_normal(shape_now).astype(dtype)
        elif dtype.kind in "iu":
            arrays[alias] = rng.integers(0, _INT_HIGH, size=shape_now).astype(dtype)
        elif dtype.kind == "b":
            arrays[alias] = rng.integers(0, 2, size=shape_now).astype(bool)
        else:
            arrays[alias] = np.full(shape_now, b"layertap", dtype=object)
    return arrays
