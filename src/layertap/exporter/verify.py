"""Checking a written SavedModel the way TF Serving will load it.

The TF1 session loader (`tf.compat.v1.saved_model.loader.load` into a fresh Graph) is the path TF
Serving's C++ loader takes; a SavedModel can pass `tf.saved_model.load` and still fail there (a module
that tracks only functions loads in Python and fails in the session with "Could not find variable":
tests/exporter/test_exporter_verify.py builds one). Every signature is run by its tensor names on random
inputs and compared with the in-memory Keras model: one Keras pass computes every expected output, and one
session run computes every signature's.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layertap.errors import VerificationError
from layertap.exporter.heads import apply_numpy
from layertap.exporter.samples import sample_inputs, vocabulary_of
from layertap.exporter.truncate import Signature

__all__ = [
    "TOLERANCE",
    "VERIFY_BATCH",
    "loaded_session",
    "reference_outputs",
    "relative_error",
    "tolerance_for",
    "verify_savedmodel",
]

logger = logging.getLogger(__name__)

# float32: max abs error <= 1e-5 of the output's scale (its largest magnitude).
TOLERANCE = 1e-5
VERIFY_BATCH = 3
# Half-precision outputs (mixed-precision models) carry ~3 significant digits.
_HALF_TOLERANCE = 1e-2


def _is_float(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "fc" or dtype.name == "bfloat16"


def tolerance_for(dtype: np.dtype[Any]) -> float:
    """The accepted relative error for outputs of `dtype`."""
    return _HALF_TOLERANCE if _is_float(dtype) and dtype.itemsize <= 2 else TOLERANCE


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Max abs difference over the largest magnitude of `expected` (exact match for non-floats)."""
    if actual.shape != expected.shape:
        return float("inf")
    if not _is_float(expected.dtype):
        return 0.0 if np.array_equal(actual, expected) else float("inf")
    difference = float(np.max(np.abs(actual.astype(np.float64) - expected), initial=0.0))
    scale = float(np.max(np.abs(expected.astype(np.float64)), initial=0.0))
    return difference / scale if scale > 0 else difference


@contextlib.contextmanager
def loaded_session(path: Path) -> Iterator[tuple[Any, Any]]:
    """(session, meta graph) of `path` loaded by the session loader in a fresh graph, as TF Serving loads it.

    Raises:
        VerificationError: the loader refuses the SavedModel.
    """
    import tensorflow as tf

    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        try:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        except Exception as error:
            raise VerificationError(f"TF Serving's session loader cannot load {path}: {error}") from error
        yield session, meta_graph


def verify_savedmodel(
    path: Path, signatures: Sequence[Signature], *, seed: int, progress: Callable[[str], None]
) -> dict[str, float]:
    """Load `path` with the session loader, run every signature, compare with Keras.

    Returns:
        signature key -> max relative error over its outputs.

    Raises:
        VerificationError: a signature is missing, has other aliases, bakes in a device, fails to
            run, or differs from Keras by more than TOLERANCE.
    """
    from layertap.tftext import load_tf_text_ops

    load_tf_text_ops()  # as TF Serving links TF Text (layertap.tftext)
    expected = _keras_outputs(signatures, seed=seed)
    errors: dict[str, float] = {}
    with loaded_session(path) as (session, meta_graph):
        _check_no_devices(meta_graph, _cpu_scopes(signatures))
        progress(f"verifying signatures through the session loader: {len(signatures)} in one run")
        actual = _run_all(session, meta_graph, signatures, expected)
        for signature in signatures:
            errors[signature.key] = _compare(signature, actual[signature.key], expected[signature.key][1])
    return errors


def _run_all(
    session: Any,
    meta_graph: Any,
    signatures: Sequence[Signature],
    expected: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]],
) -> dict[str, dict[str, Any]]:
    """Every signature's outputs, all fetched in ONE session run: {key: {alias: value}}.

    One run builds one executor: the session optimises the graph (Grappler) once for all the
    signatures instead of once per signature, about a second each on a small CPU whatever the
    signature's size. When the joint run fails, each signature is run alone to name the culprit.
    """
    feeds: dict[str, np.ndarray] = {}
    fetches: dict[str, dict[str, str]] = {}
    for signature in signatures:
        definition = _definition(meta_graph, signature)
        feeds.update(
            (definition.inputs[alias].name, array) for alias, array in expected[signature.key][0].items()
        )
        fetches[signature.key] = {alias: definition.outputs[alias].name for alias in signature.output_aliases}
    try:
        return dict(session.run(fetches, feed_dict=feeds))
    except Exception:  # rerun one by one below, which raises with the failing signature named
        logger.debug("the joint verification run failed; running each signature alone", exc_info=True)
    results = {}
    for signature in signatures:
        definition = meta_graph.signature_def[signature.key]
        inputs = expected[signature.key][0]
        try:
            results[signature.key] = session.run(
                fetches[signature.key],
                feed_dict={definition.inputs[alias].name: array for alias, array in inputs.items()},
            )
        except Exception as error:
            raise VerificationError(
                f"signature {signature.key!r} fails when run through the session loader: {error}"
            ) from error
    return results


def reference_outputs(
    signatures: Sequence[Signature], *, seed: int
) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Verification's random inputs and Keras' outputs per signature: {key: (inputs, outputs)}."""
    return _keras_outputs(signatures, seed=seed)


def _keras_outputs(
    signatures: Sequence[Signature], *, seed: int
) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Random inputs and the expected outputs for every signature: {key: (inputs, outputs)}.

    All signatures share one set of inputs and one Keras pass over every output they return: the
    sub-models share the model's graph, so this computes each output once. A head's expected
    output is the Keras layer output followed by the head's ops computed in numpy.
    """
    import keras

    tensors: dict[str, Any] = {}
    specs: dict[str, tuple[str, tuple[int | None, ...], str]] = {}
    for signature in signatures:
        for alias, tensor, spec in zip(
            signature.input_aliases, signature.model.inputs, signature.input_specs, strict=True
        ):
            tensors[alias] = tensor
            specs[alias] = spec
    aliases = list(tensors)
    outputs = [tensor for signature in signatures for tensor in signature.model.outputs]
    combined = keras.Model([tensors[alias] for alias in aliases], outputs, name="layertap_reference")
    inputs = sample_inputs(
        [specs[alias] for alias in aliases], batch=VERIFY_BATCH, seed=seed, words=vocabulary_of(combined)
    )
    values = iter(
        np.asarray(value) for value in combined([inputs[alias] for alias in aliases], training=False)
    )
    expected = {}
    for signature in signatures:
        raw = [next(values) for _ in signature.model.outputs]
        wanted: dict[str, np.ndarray] = {}
        for position, alias in enumerate(signature.output_aliases):
            head = signature.head(position)
            if head is None:
                wanted[alias] = raw[position]
            else:
                mask = raw[head.mask_index] if head.mask_index is not None else None
                wanted[alias] = apply_numpy(raw[position], mask, head.ops)
        expected[signature.key] = ({alias: inputs[alias] for alias in signature.input_aliases}, wanted)
    return expected


def _definition(meta_graph: Any, signature: Signature) -> Any:
    """The SignatureDef of `signature`, checked to have its inputs and outputs."""
    if signature.key not in meta_graph.signature_def:
        raise VerificationError(
            f"signature {signature.key!r} is missing from the SavedModel; it has "
            f"{sorted(meta_graph.signature_def)}"
        )
    definition = meta_graph.signature_def[signature.key]
    if set(definition.inputs) != set(signature.input_aliases) or set(definition.outputs) != set(
        signature.output_aliases
    ):
        raise VerificationError(
            f"signature {signature.key!r} has inputs {sorted(definition.inputs)} and outputs "
            f"{sorted(definition.outputs)}; expected {sorted(signature.input_aliases)} and "
            f"{sorted(signature.output_aliases)}"
        )
    return definition


def _compare(signature: Signature, actual: dict[str, Any], expected: dict[str, np.ndarray]) -> float:
    """The max relative error of a signature's outputs, or VerificationError if one is off."""
    worst = 0.0
    for alias, want in expected.items():
        got = np.asarray(actual[alias])
        if want.dtype.kind not in "OSU" and got.dtype != want.dtype:
            raise VerificationError(
                f"signature {signature.key!r} output {alias!r} is {got.dtype}, expected {want.dtype}"
            )
        deviation = relative_error(got, want)
        accepted = tolerance_for(want.dtype)
        if not deviation <= accepted:
            raise VerificationError(
                f"signature {signature.key!r} output {alias!r} differs from the Keras model: max abs "
                f"error {deviation:.3g} of the output's scale, more than the {accepted:g} accepted "
                f"(shapes {np.shape(actual[alias])} vs {want.shape})"
            )
        worst = max(worst, deviation)
    logger.debug("signature %s verified, max relative error %.3g", signature.key, worst)
    return worst


# A CPU pin is harmless on any server (every machine has a CPU) except on the ops a GPU exists
# for: pinned to the CPU, they would stay there on TF Serving's GPU image. Keras pins its
# preprocessing layers (lookups, hashing, text vectorization, discretization) to the CPU on
# purpose; those pins are the model's own, and TF Serving honours them the same way.
_GPU_WORK_OPS = (
    "Conv", "DepthwiseConv", "MatMul", "BatchMatMul", "Einsum", "FusedBatchNorm", "MaxPool", "AvgPool",
    "Softmax", "LSTM", "GRU", "CudnnRNN",
)  # fmt: skip


def _misplaced(node: Any, cpu_scopes: frozenset[str] = frozenset()) -> bool:
    """A device pin that would hurt on another machine: any non-CPU device, or GPU work on the CPU
    outside a KerasHub preprocessing layer (see `_cpu_scopes`)."""
    device = node.device.upper()
    if not device:
        return False
    if "CPU" not in device:
        return True
    if not node.op.startswith(_GPU_WORK_OPS):
        return False
    # Name scopes are layer names, made unique with a `_N` suffix when traced more than once.
    return not any(re.sub(r"_\d+$", "", part) in cpu_scopes for part in str(node.name).split("/"))


def _cpu_scopes(signatures: Sequence[Signature]) -> frozenset[str]:
    """Names of the KerasHub preprocessing layers (tokenizers, preprocessors) the signatures run.

    KerasHub runs them under `tf.device("cpu")` on purpose (`preprocessing_function` in
    keras_hub/src/utils/tensor_utils.py): tokenizing is string work with no GPU kernels, and its few
    numeric ops (a byte-level BPE tokenizer's MatMul) belong with it. That pin is the author's choice.
    """
    names: set[str] = set()
    for signature in signatures:
        for layer in signature.model._flatten_layers(include_self=False, recursive=True):
            if any(
                cls.__name__ == "PreprocessingLayer" and cls.__module__.startswith("keras_hub")
                for cls in type(layer).__mro__
            ):
                names.add(str(layer.name))
    return frozenset(names)


def _check_no_devices(meta_graph: Any, cpu_scopes: frozenset[str] = frozenset()) -> None:
    """Fail if an op a signature runs is pinned to a device where it would hurt on another machine.

    A device baked into the graph would pin ops to this machine's CPU even on TF Serving's GPU
    image (CPU pins of the model's own preprocessing excepted, see `_misplaced`). Only the ops
    the signatures reach are checked: TensorFlow places the checkpoint's own
    save/restore ops on the CPU by design, and they do no model compute.
    """
    graph = meta_graph.graph_def
    functions = {function.signature.name: function for function in graph.library.function}
    by_name = {node.name: node for node in graph.node}
    pending = [
        by_name[tensor.name.split(":")[0]]
        for definition in meta_graph.signature_def.values()
        for tensor in definition.outputs.values()
        if tensor.name.split(":")[0] in by_name
    ]
    seen_functions: set[str] = set()
    placed: list[str] = []
    while pending:
        node = pending.pop()
        if _misplaced(node, cpu_scopes):
            placed.append(f"{node.name} ({node.op}) on {node.device}")
        for value in node.attr.values():
            name = value.func.name
            if name and name in functions and name not in seen_functions:
                seen_functions.add(name)
                pending.extend(functions[name].node_def)
    if placed:
        raise VerificationError(
            f"the SavedModel pins {len(placed)} ops to devices (e.g. {placed[:3]}); it must not, so "
            "that TF Serving can place them on its GPU"
        )
