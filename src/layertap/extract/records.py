"""What flows through an extraction: records not yet read, the input they must fit, rejects.

A source yields `Pending` records in a fixed order (sorted files, then rows): the order is what makes
a resumed job skip exactly the records already written. Reading and decoding happen in `Pending.load`,
off the source's iteration, so skipping a million records on resume decodes none of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from layertap.errors import InvalidInputError

__all__ = ["InputSpec", "Pending", "Reject", "conform"]


@dataclass(frozen=True)
class InputSpec:
    """The one input every chosen signature takes.

    Attributes:
        alias: the input's alias in the signatures.
        shape: one example's shape (no batch dimension); None where any size is accepted.
        dtype: numpy dtype of the input; `object` for strings.
    """

    alias: str
    shape: tuple[int | None, ...]
    dtype: np.dtype[Any]

    @property
    def is_string(self) -> bool:
        return self.dtype == np.dtype(object)

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{'string' if self.is_string else self.dtype.name}[{dims}]"


@dataclass(frozen=True)
class Pending:
    """A record named by `id` whose value `load(spec)` reads and decodes (raising on a bad record)."""

    id: str
    load: Callable[[InputSpec], Any]


@dataclass(frozen=True)
class Reject:
    """A record left out, and why (the reason names what was received and what is accepted)."""

    id: str
    reason: str


def conform(value: Any, spec: InputSpec) -> Any:
    """`value` as one example of `spec`: cast to its dtype and, when only the layout differs (a flat
    list of exactly as many numbers as the shape holds), reshaped to it.

    Raises:
        InvalidInputError: the value cannot be that example (wrong size, wrong rank, not a number).
    """
    if spec.is_string:
        if isinstance(value, bytes | str):
            return value
        array = np.asarray(value)
        if array.shape == () and array.dtype.kind in "USO":
            return array.item()
        raise InvalidInputError(f"expected one string for input {spec.alias!r}, got {_describe(value)}")
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise ValueError(array.dtype)
        cast = array.astype(spec.dtype, copy=False)
    except (ValueError, TypeError) as error:
        raise InvalidInputError(
            f"expected numbers for input {spec.alias!r} ({spec.describe()}), got {_describe(value)}"
        ) from error
    if _fits(cast.shape, spec.shape):
        return cast
    if None not in spec.shape and cast.size == math.prod(d or 0 for d in spec.shape):
        return cast.reshape(spec.shape)
    raise InvalidInputError(
        f"input {spec.alias!r} takes {spec.describe()}, got shape {tuple(cast.shape)} ({cast.size} values)"
    )


def _fits(shape: tuple[int, ...], wanted: tuple[int | None, ...]) -> bool:
    return len(shape) == len(wanted) and all(w is None or w == s for s, w in zip(shape, wanted, strict=True))


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array {value.dtype.name}{list(value.shape)}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
