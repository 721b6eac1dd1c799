"""Sample inputs for a signature: used by verification and by the warmup records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["UNKNOWN_DIM", "sample_inputs", "vocabulary_of"]

# A dimension the model leaves open (other than the batch), e.g. a sequence length, gets this size.
UNKNOWN_DIM = 8
# Integer inputs are usually token ids, segment ids or masks: 0 and 1 are valid for any of them
# (a BERT segment embedding has only 2 rows).
_INT_HIGH = 2
_OUT_OF_VOCABULARY = "layertap"


def sample_inputs(
    specs: Sequence[tuple[str, tuple[int | None, ...], str]],
    *,
    batch: int,
    seed: int,
    words: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Random inputs, one per (alias, shape, dtype) spec, with `batch` as the first dimension.

    String inputs are 1 to 3 of `words` (e.g. the model's vocabulary, so lookups hit real entries)
    joined by spaces, or an out-of-vocabulary word.
    """
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
            arrays[alias] = _strings(rng, shape_now, words)
    return arrays


def _strings(rng: np.random.Generator, shape: tuple[int, ...], words: Sequence[str]) -> np.ndarray:
    pool = [word for word in words if word] + [_OUT_OF_VOCABULARY]
    texts = [
        " ".join(str(pool[i]) for i in rng.integers(0, len(pool), size=rng.integers(1, 4))).encode()
        for _ in range(int(np.prod(shape)))
    ]
    array = np.empty(len(texts), dtype=object)
    array[:] = texts
    return array.reshape(shape)


def vocabulary_of(model: Any) -> list[str]:
    """The string vocabulary of every lookup layer of `model` (any layer with `get_vocabulary()`)."""
    found: dict[str, None] = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        get_vocabulary = getattr(layer, "get_vocabulary", None)
        if not callable(get_vocabulary):
            continue
        try:
            vocabulary = get_vocabulary()
        except Exception:  # a layer that was never adapted has none
            continue
        for token in vocabulary:
            text = token.decode("utf-8", "replace") if isinstance(token, bytes) else token
            if isinstance(text, str) and text and not text.startswith("["):  # skip [UNK], [MASK]
                found[text] = None
    return list(found)
