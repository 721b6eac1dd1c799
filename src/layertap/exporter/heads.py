"""Heads: small reductions applied to a layer's output inside its signature, on the server.

A head is a layer spec followed by ops, applied in order: `conv2_block1_out:gap,float16` is the
global average of that feature map, cast to half. The batch dimension is always kept (TF Serving's
batching needs dim 0 = batch on every output: tensorflow_serving/batching/batching_session.cc).

Ops:
    gap         mean over every axis between the batch and the last (spatial, or time)
    gmp         max over the same axes
    mean        mean over time of a (batch, time, features) output, honouring the Keras mask the
                layer output carries (padded tokens of an `Embedding(mask_zero=True)` do not count)
    mean=INPUT  the same, with the mask taken from the model input INPUT, (batch, time), non-zero =
                a real token: what a BERT-style backbone's `padding_mask` input is
    first       the first time step (a CLS token)
    last        the last unmasked time step (the sentence vector of a causal / recurrent model);
                `last=INPUT` takes the mask from a model input, as `mean=INPUT` does
    avgpool=K   average pooling of a (batch, H, W, C) map to a K x K grid (adaptive bins: bin i
                spans floor(i*H/K) .. ceil((i+1)*H/K), so any H >= K works)
    dims=N      keep the first N features of the last axis (Matryoshka-style embedding truncation;
                follow it with `l2`)
    l2          L2-normalise the last axis (x / max(|x|, 1e-6))
    float16, bfloat16   cast

`last`, `dims` and `mean=INPUT` are there because they are what an embeddings user asks for next: causal and
recurrent encoders summarise a sequence in its last real token, not its first, Matryoshka-trained
embedding models are meant to be cut to fewer dimensions before normalising, and transformer
backbones take their padding as an input rather than as a Keras mask.

Every op is implemented twice, on purpose: `apply_tf` is what the signature computes, `apply_numpy`
is the independent reference verification compares it with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from layertap.errors import UsageError
from layertap.names import is_tensorflow_name, tensorflow_name

__all__ = [
    "OPS",
    "Head",
    "HeadOp",
    "apply_numpy",
    "apply_tf",
    "bytes_per_example",
    "check_head_name",
    "fitting_ops",
    "keras_mask",
    "parse_head",
    "parse_ops",
    "plan_head",
]

Shape = tuple[int | None, ...]

# L2 normalisation divides by max(norm, this): an all-zero vector stays zero instead of NaN.
L2_EPSILON = 1e-6
_FLOATS = ("float16", "bfloat16", "float32", "float64")


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
        return any(_OP_TABLE[op.name].masked and _mask_alive(self.ops, i) for i, op in enumerate(self.ops))


@dataclass(frozen=True)
class _Op:
    summary: str
    needs: str  # what the input must be, for error messages
    fits: Callable[[Shape, str, int | None], bool]
    shape: Callable[[Shape, int | None], Shape]
    dtype: Callable[[str], str] = lambda dtype: dtype
    takes_argument: bool = False
    masked: bool = False  # uses the layer's Keras mask when there is one, or a model input's
    keeps_time: bool = False  # the (batch, time, ...) layout survives, so a mask still applies


def _floating(dtype: str) -> bool:
    return dtype in _FLOATS


def _pooled(shape: Shape, _: int | None) -> Shape:
    return (shape[0], shape[-1])


def _avgpool_fits(shape: Shape, dtype: str, k: int | None) -> bool:
    return (
        _floating(dtype)
        and len(shape) == 4
        and k is not None
        and all(dim is not None and dim >= k >= 1 for dim in shape[1:3])
    )


def _dims_fits(shape: Shape, dtype: str, n: int | None) -> bool:
    last = shape[-1]
    return len(shape) >= 2 and n is not None and last is not None and 1 <= n <= last


_OP_TABLE: dict[str, _Op] = {
    "gap": _Op(
        "global average over the axes between batch and last",
        "rank >= 3, floating",
        lambda s, d, _: len(s) >= 3 and _floating(d),
        _pooled,
    ),
    "gmp": _Op(
        "global max over the axes between batch and last", "rank >= 3", lambda s, d, _: len(s) >= 3, _pooled
    ),
    "mean": _Op(
        "mean over time, honouring the layer's Keras mask",
        "(batch, time, features), floating",
        lambda s, d, _: len(s) == 3 and _floating(d),
        _pooled,
        masked=True,
    ),
    "first": _Op(
        "the first time step (CLS token)", "(batch, time, features)", lambda s, d, _: len(s) == 3, _pooled
    ),
    "last": _Op(
        "the last unmasked time step",
        "(batch, time, features)",
        lambda s, d, _: len(s) == 3,
        _pooled,
        masked=True,
    ),
    "avgpool": _Op(
        "average pooling to a K x K grid",
        "(batch, H, W, C) with H, W >= K, floating",
        _avgpool_fits,
        lambda s, k: (s[0], k, k, s[-1]),
        takes_argument=True,
    ),
    "dims": _Op(
        "the first N features of the last axis",
        "rank >= 2 with at least N features",
        _dims_fits,
        lambda s, n: (*s[:-1], n),
        takes_argument=True,
        keeps_time=True,
    ),
    "l2": _Op(
        "L2-normalise the last axis",
        "rank >= 2, floating",
        lambda s, d, _: len(s) >= 2 and _floating(d),
        lambda s, _: s,
        keeps_time=True,
    ),
    "float16": _Op(
        "cast to float16",
        "floating",
        lambda s, d, _: _floating(d),
        lambda s, _: s,
        dtype=lambda _: "float16",
        keeps_time=True,
    ),
    "bfloat16": _Op(
        "cast to bfloat16",
        "floating",
        lambda s, d, _: _floating(d),
        lambda s, _: s,
        dtype=lambda _: "bfloat16",
        keeps_time=True,
    ),
}

OPS: Mapping[str, str] = {name: op.summary for name, op in _OP_TABLE.items()}


def _known() -> str:
    return ", ".join(_spelling(name) for name in OPS)


def _spelling(name: str) -> str:
    if name == "avgpool":
        return "avgpool=K"
    if name == "dims":
        return "dims=N"
    return f"{name}[=MASK_INPUT]" if _OP_TABLE[name].masked else name


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
        op = _OP_TABLE.get(name)
        if op is None:
            raise UsageError(f"unknown head op {text!r}; known ops: {_known()}")
        if op.takes_argument:
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
            raise UsageError(f"head op {name!r} takes no argument (got {text!r}); known ops: {_known()}")
        else:
            parsed.append(HeadOp(name))
    if not parsed:
        raise UsageError(f"a head needs at least one op; known ops: {_known()}")
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
    for name, op in _OP_TABLE.items():
        argument = 1 if op.takes_argument else None
        if op.fits(shape, dtype, argument):
            fitting.append(_spelling(name))
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
        definition = _OP_TABLE[op.name]
        size = op.argument if isinstance(op.argument, int) else None
        if not definition.fits(current, current_dtype, size):
            after = f" after {','.join(str(o) for o in ops[:position])}" if position else ""
            fitting = fitting_ops(current, current_dtype)
            raise UsageError(
                f"head {name!r}: op {str(op)!r} does not fit {layer!r}{after}, whose output is "
                f"{_shape_text(current)} {current_dtype}; {op.name} needs {definition.needs}. "
                f"Ops that fit this output: {', '.join(fitting) if fitting else 'none'}"
            )
        current = definition.shape(current, size)
        current_dtype = definition.dtype(current_dtype)
    return Head(ops=tuple(ops), shape=current, dtype=current_dtype)


def _mask_alive(ops: Sequence[HeadOp], position: int) -> bool:
    return all(_OP_TABLE[op.name].keeps_time for op in ops[:position])


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


def _bins(size: int, k: int) -> list[tuple[int, int]]:
    return [((i * size) // k, -((-(i + 1) * size) // k)) for i in range(k)]


def apply_tf(value: Any, mask: Any | None, ops: Sequence[HeadOp]) -> Any:
    """The ops in TensorFlow, inside the signature's function."""
    import tensorflow as tf

    for position, op in enumerate(ops):
        live_mask = mask if mask is not None and _mask_alive(ops, position) else None
        rank = len(value.shape)
        if op.name in ("gap", "gmp"):
            reduce = tf.reduce_mean if op.name == "gap" else tf.reduce_max
            value = reduce(value, axis=list(range(1, rank - 1)))
        elif op.name == "mean":
            if live_mask is None:
                value = tf.reduce_mean(value, axis=1)
            else:
                weights = tf.cast(live_mask, value.dtype)[:, :, None]
                counts = tf.maximum(tf.reduce_sum(weights, axis=1), tf.cast(1, value.dtype))
                value = tf.reduce_sum(value * weights, axis=1) / counts
        elif op.name == "first":
            value = value[:, 0]
        elif op.name == "last":
            if live_mask is None:
                value = value[:, -1]
            else:
                valid = tf.cast(live_mask, tf.int32)
                steps = tf.shape(valid)[1]
                # Position of the last True: steps-1 minus the first True of the reversed mask.
                index = steps - 1 - tf.argmax(tf.reverse(valid, axis=[1]), axis=1, output_type=tf.int32)
                picked = tf.gather(value, index, axis=1, batch_dims=1)
                any_valid = tf.cast(tf.reduce_any(tf.cast(live_mask, tf.bool), axis=1), value.dtype)
                value = picked * any_valid[:, None]
        elif op.name == "avgpool":
            k = int(op.argument or 1)
            height, width = int(value.shape[1]), int(value.shape[2])
            rows = [
                tf.stack(
                    [tf.reduce_mean(value[:, h0:h1, w0:w1, :], axis=[1, 2]) for w0, w1 in _bins(width, k)],
                    axis=1,
                )
                for h0, h1 in _bins(height, k)
            ]
            value = tf.stack(rows, axis=1)
        elif op.name == "dims":
            value = value[..., : int(op.argument or 1)]
        elif op.name == "l2":
            norm = tf.norm(value, axis=-1, keepdims=True)
            value = value / tf.maximum(norm, tf.cast(L2_EPSILON, value.dtype))
        else:  # float16, bfloat16
            value = tf.cast(value, tf.as_dtype(op.name))
    return value


def _numpy_dtype(name: str) -> np.dtype[Any]:
    if name == "bfloat16":
        import ml_dtypes

        bfloat16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
        return bfloat16
    return np.dtype(name)


def apply_numpy(value: np.ndarray, mask: np.ndarray | None, ops: Sequence[HeadOp]) -> np.ndarray:
    """The same ops in numpy, written independently of `apply_tf`: verification's reference.

    Each op computes in float64 and returns to the dtype it received (or casts, for a cast op).
    """
    for position, op in enumerate(ops):
        live_mask = mask if mask is not None and _mask_alive(ops, position) else None
        dtype = value.dtype
        wide = value.astype(np.float64) if dtype.kind == "f" or dtype.name == "bfloat16" else value
        if op.name == "gap":
            result = wide.mean(axis=tuple(range(1, wide.ndim - 1)))
        elif op.name == "gmp":
            result = wide.max(axis=tuple(range(1, wide.ndim - 1)))
        elif op.name == "mean":
            if live_mask is None:
                result = wide.mean(axis=1)
            else:
                weights = live_mask.astype(np.float64)
                totals = np.einsum("btf,bt->bf", wide, weights)
                result = totals / np.maximum(weights.sum(axis=1), 1.0)[:, None]
        elif op.name == "first":
            result = wide[:, 0]
        elif op.name == "last":
            if live_mask is None:
                result = wide[:, -1]
            else:
                result = np.zeros((wide.shape[0], wide.shape[2]), dtype=wide.dtype)
                for row in range(wide.shape[0]):
                    valid = np.flatnonzero(live_mask[row])
                    if valid.size:
                        result[row] = wide[row, valid[-1]]
        elif op.name == "avgpool":
            k = int(op.argument or 1)
            result = np.empty((wide.shape[0], k, k, wide.shape[3]), dtype=np.float64)
            for i, (h0, h1) in enumerate(_bins(wide.shape[1], k)):
                for j, (w0, w1) in enumerate(_bins(wide.shape[2], k)):
                    result[:, i, j, :] = wide[:, h0:h1, w0:w1, :].mean(axis=(1, 2))
        elif op.name == "dims":
            result = wide[..., : int(op.argument or 1)]
        elif op.name == "l2":
            norms = np.sqrt(np.sum(wide * wide, axis=-1, keepdims=True))
            result = wide / np.maximum(norms, L2_EPSILON)
        else:
            value = value.astype(_numpy_dtype(op.name))
            continue
        value = np.asarray(result).astype(dtype)
    return value
