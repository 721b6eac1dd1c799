"""A model's float weights packed into one flat variable per dtype, read by the traced functions.

A `tf.function` that reads a variable captures it: the variable's handle becomes an input of the
function, and TensorFlow adds one placeholder per capture when it traces the function, again when
`tf.saved_model.save` wraps it as a signature, and in the saved call. A layer signature over a deep
prefix reads every weight of the prefix, so those captures grow with the signature's depth (ResNet50:
about 160 variables on average, 320 for the deepest signature), and that is most of what tracing and
saving cost per signature. Packed, every function captures one variable per dtype whatever its depth.

Each weight is copied once into the flat variable of its dtype, at an offset that is a multiple of 64
bytes. Inside a traced function the flat variable is read once (`ReadVariableOp`, which hands out the
variable's buffer, not a copy) and cut into the weights the function's layers need, each then reshaped.
TensorFlow's CPU kernels return a piece along dimension 0 of a 1-D tensor as a view of the input buffer,
without copying, when the piece's start and size in bytes are multiples of Eigen's alignment (at most 64
bytes): `IsDim0SliceAligned` in tensorflow/core/framework/ops_util.h, used by `Slice`
(`SharedSliceCommonCases` in tensorflow/core/kernels/slice_op.cc) and, for every piece at once, by `SplitV`
(`SplitHasAlignedOutputsInFirstDimension` in tensorflow/core/kernels/split_v_op.cc). So the weights whose
size is a multiple of 64 bytes (ResNet50: every one but the 1,000-float bias of its classifier) come out of
one `SplitV` (the gaps between them are pieces too), served from the packed buffer; each other weight is a
`Slice` of its own, which the kernel copies (a few bytes per request). One `SplitV` instead of a `Slice` per
weight keeps the traced graphs small: two ops per weight instead of five. ReadVariableOp, SplitV, Slice
and Reshape are core ops that every TF Serving build has.

The Keras layers are called unchanged: inside `reading()`, a `keras.StatelessScope` maps each of their
variables to its slice, so a layer that reads `self.kernel` gets the slice (its autocast applied as
usual). Variables that are not floats (seed generator states, counters) are left out and captured as
before. The weights are still stored once: the SavedModel holds the flat variables instead of the
per-layer ones (`write_savedmodel` traces every signature of such an export through `reading()`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from layertap.errors import ExportError

__all__ = ["ALIGN_BYTES", "PackedWeights", "layer_variables"]

# Eigen's largest alignment (AVX-512): a slice starting and ending on it is a view, whatever the build.
ALIGN_BYTES = 64


class PackedWeights:
    """Copies of `variables`' float weights in one flat `tf.Variable` per dtype.

    Attributes:
        flat: the flat variables, one per dtype ("float32" -> variable), to save in place of the
            packed ones.
    """

    def __init__(self, variables: Iterable[Any]) -> None:
        import tensorflow as tf

        # id(Keras variable) -> (dtype, offset in elements, shape)
        self._places: dict[int, tuple[str, int, tuple[int, ...]]] = {}
        self._packed: list[Any] = []
        sizes: dict[str, int] = {}
        for variable in _unique(variables):
            dtype = tf.as_dtype(variable.dtype)
            if not dtype.is_floating:
                continue
            step = max(1, ALIGN_BYTES // dtype.size)
            offset = sizes.get(dtype.name, 0)
            count = int(np.prod(variable.shape, dtype=np.int64))
            self._places[id(variable)] = (dtype.name, offset, tuple(int(d) for d in variable.shape))
            self._packed.append(variable)
            sizes[dtype.name] = offset + -(-count // step) * step
        self.flat: dict[str, Any] = {}
        for name, size in sizes.items():
            # Filled in place, so the export holds one extra copy of the weights at a time.
            buffer = np.zeros(size, dtype=tf.as_dtype(name).as_numpy_dtype)
            for variable in self._packed:
                dtype_name, offset, shape = self._places[id(variable)]
                if dtype_name == name:
                    count = int(np.prod(shape, dtype=np.int64))
                    buffer[offset : offset + count] = np.ravel(variable.numpy())
            self.flat[name] = tf.Variable(buffer, trainable=False, name=f"packed_{name}")
            del buffer

    def is_packed(self, variable: Any) -> bool:
        """True when `variable` (a Keras variable) is read from a flat variable."""
        return id(variable) in self._places

    @contextlib.contextmanager
    def reading(self, variables: Iterable[Any]) -> Iterator[None]:
        """Inside a traced function: `variables` (Keras variables) read as slices of the flat ones.

        Each flat variable is read once per call of this context, and only the slices of the
        variables asked for are made, so a function holds the reads its layers need.
        """
        import keras
        import tensorflow as tf

        wanted: dict[str, list[tuple[int, int, Any]]] = {}  # dtype -> [(offset, count, variable)]
        for variable in _unique(variables):
            place = self._places.get(id(variable))
            if place is not None:
                dtype, offset, shape = place
                wanted.setdefault(dtype, []).append((offset, int(np.prod(shape, dtype=np.int64)), variable))
        mapping = []
        for dtype, entries in wanted.items():
            flat = self.flat[dtype].value()
            step = max(1, ALIGN_BYTES // tf.as_dtype(dtype).size)
            # Weights whose size is a multiple of the alignment come out of one SplitV, whose pieces
            # (gaps included) are then all aligned views (`SplitHasAlignedOutputsInFirstDimension` in
            # tensorflow/core/kernels/split_v_op.cc): two ops and a shape per weight instead of five.
            # The others are sliced one by one, which copies them alone.
            aligned = sorted((entry for entry in entries if entry[1] % step == 0), key=lambda e: e[0])
            sizes: list[int] = []
            pieces: list[tuple[int, Any]] = []  # (index among the split's outputs, variable)
            cursor = 0
            for offset, count, variable in aligned:
                if offset > cursor:
                    sizes.append(offset - cursor)
                pieces.append((len(sizes), variable))
                sizes.append(count)
                cursor = offset + count
            values: dict[int, Any] = {}
            if pieces:
                outputs = tf.split(flat, [*sizes, -1])
                values = {id(variable): outputs[index] for index, variable in pieces}
            for offset, count, variable in entries:
                if id(variable) not in values:
                    values[id(variable)] = tf.slice(flat, [offset], [count])
            shapes: dict[tuple[int, ...], Any] = {}
            for _, _, variable in entries:
                shape = self._places[id(variable)][2]
                if shape not in shapes:
                    shapes[shape] = tf.constant(shape, dtype=tf.int64)
                mapping.append((variable, tf.reshape(values[id(variable)], shapes[shape])))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            yield
        # A stateless scope keeps assignments to itself: a layer that updates a weight while
        # serving would silently stop doing so. None of Keras' inference-mode layers does.
        given = {id(variable): value for variable, value in mapping}
        for variable in self._packed:
            if id(variable) in scope.state_mapping and scope.state_mapping[id(variable)] is not given.get(
                id(variable)
            ):
                raise ExportError(
                    f"the layer owning {variable.path!r} assigns it during inference, which packed "
                    f"weights cannot express; received a model with {len(self._packed)} float weights, "
                    "accepted: layers that only read their weights when called with training=False"
                )


def layer_variables(operations: Iterable[Any]) -> list[Any]:
    """The Keras variables of `operations` (layers and their sub-layers), each once."""
    return _unique(variable for operation in operations for variable in getattr(operation, "variables", ()))


def _unique(variables: Iterable[Any]) -> list[Any]:
    return list({id(variable): variable for variable in variables}.values())
