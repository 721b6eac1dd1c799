"""What a signature computes for each head op, in TensorFlow (the registry's `tensorflow` column).

Each function takes the op's input, the (batch, time) mask still in force or None, and the op's
argument. TensorFlow is imported inside them, so the registry (and the CLI's help) stays cheap to import.
Written apart from `_reference` on purpose: verification compares the two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["L2_EPSILON", "avgpool", "bins", "cast_to", "dims", "first", "gap", "gmp", "l2", "last", "mean"]

# L2 normalisation divides by max(norm, this): an all-zero vector stays zero instead of NaN.
L2_EPSILON = 1e-6


def bins(size: int, k: int) -> list[tuple[int, int]]:
    """Adaptive pooling bins: bin i spans floor(i*size/k) .. ceil((i+1)*size/k)."""
    return [((i * size) // k, -((-(i + 1) * size) // k)) for i in range(k)]


def gap(value: Any, mask: Any | None, argument: int | str | None) -> Any:
    import tensorflow as tf

    return tf.reduce_mean(value, axis=list(range(1, len(value.shape) - 1)))


def gmp(value: Any, mask: Any | None, argument: int | str | None) -> Any:
    import tensorflow as tf

    return tf.reduce_max(value, axis=list(range(1, len(value.shape) - 1)))


def mean(value: Any, mask: Any | None, argument: int | str | None) -> Any:
    import tensorflow as tf

    if mask is None:
        return tf.reduce_mean(value, axis=1)
    weights = tf.cast(mask, value.dtype)[:, :, None]
    counts = tf.maximum(tf.reduce_sum(weights, axis=1), tf.cast(1, value.dtype))
    return tf.reduce_sum(value * weights, axis=1) / counts


def first(value: Any, mask: Any | None, argument: int | str | None) -> Any:
    return value[:, 0]


def last(value: Any, mask: Any | None, argument: int | str | None) -> Any:
    import tensorflow as tf

    if mask is None:
        return value[:, -1]
    valid = tf.cast(mask, tf.int32)
    steps = tf.shape(valid)[1]
    # Position of the last True: steps-1 minus the first True of the reversed mask.
    index = steps - 1 - tf.argmax(tf.reverse(valid, axis=[1]), axis=1, output_type=tf.int32)
    picked = tf.gather(value, index, axis=1, batch_dims=1)
    any_valid = tf.cast(tf.reduce_any(tf.cast(mask, tf.bool), axis=1), value.dtype)
    return picked * any_valid[:, None]


def avgpool(value: Any, mask: Any | None, argument: int | str | None) -> Any:
    import tensorflow as tf

    k = int(argument or 1)
    height, width = int(value.shape[1]), int(value.shape[2])
    rows = [
        tf.stack(
            [tf.reduce_mean(value[:, h0:h1, w0:w1, :], axis=[1, 2]) for w0, w1 in bins(width, k)],
            axis=1,
        )
        for h0, h1 in bins(height, k)
    ]
    return tf.stack(rows, axis=1)


def dims(value: Any, mask: Any | None, argument: int | str | None) -> Any:
    return value[..., : int(argument or 1)]


def l2(value: Any, mask: Any | None, argument: int | str | None) -> Any:
    import tensorflow as tf

    norm = tf.norm(value, axis=-1, keepdims=True)
    return value / tf.maximum(norm, tf.cast(L2_EPSILON, value.dtype))


def cast_to(target: str) -> Callable[[Any, Any | None, int | str | None], Any]:
    """The cast to dtype `target` ("float16", "bfloat16")."""

    def cast(value: Any, mask: Any | None, argument: int | str | None) -> Any:
        import tensorflow as tf

        return tf.cast(value, tf.as_dtype(target))

    return cast
