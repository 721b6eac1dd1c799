"""Parsing and planning heads: ops read from text, checked against the shapes they receive, applied.

Every op's definition is in `layertap.exporter.heads.registry`; this module holds what is common to all:
the `NAME=SPEC:OP[,OP...]` syntax, the check of each op against the output it receives (with the ops
that would fit, when one does not), the mask that stays in force while the time axis lasts, and running
a list of ops in TensorFlow (`apply_tf`) or in numpy (`apply_numpy`, the reference).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from layertap.errors import UsageError
from layertap.exporter.heads.registry import HEAD_OPS, Shape, help_text
from layertap.names import is_tensorflow_name, tensorflow_name

# The public names are listed once, in the package's __all__ (layertap.exporter.heads).


@dataclass(frozen=True)
class HeadOp:
    """One op of a head: its name and argument (`avgpool=2` -> ("avgpool", 2); `mean=padding_mask`
    -> ("mean", "padding_mask"), the model input holding the mask)."""

    name: str
    argument: int | str | None = None

    def __str__(self) -> str:
        return self.name if self.argument is None else f"{self.name}={self.argument}"


@dataclass(frozen=True)
class Head:
    """A planned head: the ops, what they output, and where the layer's mask is (if used).

    Attributes:
        ops: the ops, in order.
        shape: the output shape, batch as None.
        dtype: the output dtype name.
        mask_index: index of the layer's Keras mask among the sub-model's outputs, when an op uses it.
    """

    ops: tuple[HeadOp, ...]
    shape: Shape
    dtype: str
    mask_index: int | None = None

    @property
    def mask_input(self) -> str | None:
        """The model input a `mean=INPUT` / `last=INPUT` op takes its mask from, if any."""
        named = {op.argument for op in self.ops if isinstance(op.argument, str)}
        return named.pop() if len(named) == 1 else None

    @property
    def uses_mask(self) -> bool:
        """An op reads the layer's Keras mask while the time axis is still there."""
        return any(HEAD_OPS[op.name].masked and _mask_alive(self.ops, i) for i, op in enumerate(self.ops))


OPS: Mapping[str, str] = {name: definition.does for name, definition in HEAD_OPS.items()}


def parse_ops(ops: Sequence[str] | str) -> tuple[HeadOp, ...]:
    """`["gap", "float16"]` or `"avgpool=2,l2"` -> HeadOps.

    Raises:
        UsageError: no ops, an unknown op (the known ones are listed), or a bad argument.
    """
    texts = ops.split(",") if isinstance(ops, str) else list(ops)
    parsed: list[HeadOp] = []
    for raw in texts:
        text = str(raw).strip()
        name, has_argument, argument = text.partition("=")
        op = HEAD_OPS.get(name)
        if op is None:
            raise UsageError(f"unknown head op {text!r}; known ops: {help_text()}")
        if op.argument is not None:
            if not has_argument or not argument.isdigit() or int(argument) < 1:
                raise UsageError(f"head op {text!r} needs a positive integer argument, e.g. {name}=2")
            parsed.append(HeadOp(name, int(argument)))
        elif op.masked and has_argument:
            if not argument or argument.isdigit():
                raise UsageError(
                    f"head op {text!r}: {name}=INPUT names the model input holding the mask, "
                    f"e.g. {name}=padding_mask"
                )
            parsed.append(HeadOp(name, argument))
        elif has_argument:
            raise UsageError(f"head op {name!r} takes no argument (got {text!r}); known ops: {help_text()}")
        else:
            parsed.append(HeadOp(name))
    if not parsed:
        raise UsageError(f"a head needs at least one op; known ops: {help_text()}")
    return tuple(parsed)


def parse_head(text: str) -> tuple[str, str, tuple[HeadOp, ...]]:
    """`NAME=SPEC:OP[,OP...]` (the CLI's `--head`) -> (NAME, SPEC, ops).

    The spec ends at the LAST colon, so a layer path may itself hold `/` and `@`.
    """
    name, separator, rest = text.partition("=")
    spec, colon, ops = rest.rpartition(":")
    if not separator or not name.strip() or not colon or not spec.strip() or not ops.strip():
        raise UsageError(
            f"invalid head {text!r}: expected NAME=SPEC:OP[,OP...], e.g. pooled=conv2_block1_out:gap,float16"
        )
    check_head_name(name.strip())
    return name.strip(), spec.strip(), parse_ops(ops)


def check_head_name(name: str) -> None:
    """Refuse a head name TensorFlow would refuse as a signature key (`layertap.names`' rule).

    Unlike a layer name, which the model fixes, the user chooses a head's name: a clear refusal
    with a valid suggestion beats an escaped key nobody typed.
    """
    if not is_tensorflow_name(name):
        raise UsageError(
            f"invalid head name {name!r}: it becomes the signature key and output alias, which "
            "TensorFlow accepts only as letters, digits and _ . / > - (not starting with _ / - >); "
            f"e.g. {tensorflow_name(name)!r}"
        )


def fitting_ops(shape: Shape, dtype: str) -> list[str]:
    """The ops that accept an output of `shape` and `dtype` as their input (arguments as K/N)."""
    fitting = []
    for op in HEAD_OPS.values():
        argument = 1 if op.argument is not None else None
        if op.fits(shape, dtype, argument):
            fitting.append(op.spelling)
    return fitting


def plan_head(name: str, layer: str, shape: Shape, dtype: str, ops: Sequence[HeadOp]) -> Head:
    """Check every op against the shape it receives, and compute the head's output.

    Args:
        name: the head's name (for messages).
        layer: the layer key it reads (for messages).
        shape, dtype: the layer output's shape (batch None) and dtype.
        ops: the ops in order.

    Raises:
        UsageError: an op does not fit what it receives: names the shape and the ops that fit.
    """
    current, current_dtype = tuple(shape), dtype
    named = {op.argument for op in ops if isinstance(op.argument, str)}
    if len(named) > 1:
        raise UsageError(f"head {name!r}: its ops name {len(named)} mask inputs ({sorted(named)}); use one")
    for position, op in enumerate(ops):
        definition = HEAD_OPS[op.name]
        size = op.argument if isinstance(op.argument, int) else None
        if not definition.fits(current, current_dtype, size):
            after = f" after {','.join(str(o) for o in ops[:position])}" if position else ""
            fitting = fitting_ops(current, current_dtype)
            raise UsageError(
                f"head {name!r}: op {str(op)!r} does not fit {layer!r}{after}, whose output is "
                f"{_shape_text(current)} {current_dtype}; {op.name} needs {definition.accepts}. "
                f"Ops that fit this output: {', '.join(fitting) if fitting else 'none'}"
            )
        current = definition.shape(current, size)
        current_dtype = definition.dtype(current_dtype)
    return Head(ops=tuple(ops), shape=current, dtype=current_dtype)


def _mask_alive(ops: Sequence[HeadOp], position: int) -> bool:
    return all(HEAD_OPS[op.name].keeps_time for op in ops[:position])


def keras_mask(tensor: Any) -> Any | None:
    """The Keras mask a symbolic layer output carries over (batch, time), or None."""
    mask = getattr(tensor, "_keras_mask", None)
    if mask is None or len(mask.shape) != 2 or len(tensor.shape) < 3:
        return None
    return mask


def bytes_per_example(shape: Shape, dtype: str) -> int | None:
    """Bytes of one example (everything but the batch axis); None when a dimension is open."""
    rest = shape[1:]
    if any(dim is None for dim in rest):
        return None
    itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    return int(math.prod(d for d in rest if d is not None)) * itemsize


def _shape_text(shape: Shape) -> str:
    return (
        "("
        + ", ".join("batch" if i == 0 else ("None" if d is None else str(d)) for i, d in enumerate(shape))
        + ")"
    )


def apply_tf(value: Any, mask: Any | None, ops: Sequence[HeadOp]) -> Any:
    """The ops in TensorFlow, inside the signature's function."""
    for position, op in enumerate(ops):
        live_mask = mask if mask is not None and _mask_alive(ops, position) else None
        value = HEAD_OPS[op.name].tensorflow(value, live_mask, op.argument)
    return value


def apply_numpy(value: np.ndarray, mask: np.ndarray | None, ops: Sequence[HeadOp]) -> np.ndarray:
    """The same ops in numpy, written independently of `apply_tf`: verification's reference.

    Each op computes in float64 and returns to the dtype it received (or casts, for a cast op).
    """
    for position, op in enumerate(ops):
        live_mask = mask if mask is not None and _mask_alive(ops, position) else None
        value = HEAD_OPS[op.name].numpy(value, live_mask, op.argument)
    return value
