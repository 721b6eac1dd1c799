"""How the commands print shapes: the batch axis as `batch`, other open axes as `?`."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["shape_text"]


def shape_text(shape: Sequence[int | None]) -> str:
    """`(None, None, 16)` -> `(batch, ?, 16)`: only the first axis is the batch."""
    dims = [
        "batch" if axis == 0 and dim is None else "?" if dim is None else str(dim)
        for axis, dim in enumerate(shape)
    ]
    return "(" + ", ".join(dims) + (",)" if len(dims) == 1 else ")")
