"""Writing ONE SavedModel with a signature per planned sub-model, the weights stored once.

A `tf.Module` tracks the model's variables explicitly, once, and nothing else: tracking the Keras model
too would store every weight twice (keras#23553), and tracking only the functions saves a model that
`tf.saved_model.load` accepts but TF Serving's session loader rejects ("Could not find variable":
tests/exporter/test_exporter_verify.py). Each signature is a `tf.function` over one sub-model, traced
with a free batch dimension and the model's dtypes, without device placement.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from layertap.exporter.chain import chain_functions, keeps_calls
from layertap.exporter.heads import apply_tf
from layertap.exporter.packing import PackedWeights
from layertap.exporter.truncate import Signature
from layertap.names import is_scope_name, scope_name

__all__ = ["captured_resources", "write_savedmodel"]

logger = logging.getLogger(__name__)


def write_savedmodel(
    model: Any, signatures: Sequence[Signature], path: Path, progress: Callable[[str], None]
) -> None:
    """Trace every signature and save them with `model`'s variables into the directory `path`."""
    import tensorflow as tf

    archive = tf.Module()
    # A deep segment chain reads the weights packed (`layertap.exporter.packing`): its signatures
    # then capture one variable per dtype instead of every weight of their prefix. Every signature
    # of such an export reads them packed, so the SavedModel stores the flat copies alone.
    weights = PackedWeights(model.variables) if keeps_calls(model, signatures) else None
    # Keras 3 variables wrap tf.Variables; the tf.Variable is what the checkpoint must hold. The
    # attribute name is repeated in every variable's checkpoint key (twice per variable in the
    # variables files), so it is kept to one letter: on small models that overhead is what
    # separates the files from the parameter bytes.
    archive.w = [
        variable.value for variable in model.variables if weights is None or not weights.is_packed(variable)
    ] + ([] if weights is None else list(weights.flat.values()))
    concrete: dict[str, Any] = {}
    with scope_safe_names([signature.model for signature in signatures], archive.w):
        # Layer signatures of one graph share traced segments (linear cost); the rest, below.
        chained = chain_functions(model, signatures, progress, weights)
        for number, signature in enumerate(signatures, start=1):
            if signature.key in chained:
                concrete[signature.key] = chained[signature.key]
                continue
            progress(f"tracing signature {number}/{len(signatures)}: {signature.key}")
            concrete[signature.key] = _trace(signature, weights).get_concrete_function()
    # State the functions use that is not among the model's variables (e.g. the global seed
    # generator behind an unseeded keras.random call) must be tracked too, or saving fails.
    tracked = {id(variable) for variable in archive.w}
    others = []
    for function in concrete.values():
        for variable in function.variables:
            if id(variable) not in tracked:
                tracked.add(id(variable))
                others.append(variable)
    if others:
        archive.other_variables = others
    # Resources the functions capture, such as the hash tables of StringLookup, IntegerLookup or
    # TextVectorization, must be tracked too, or saving fails ("untracked resource"). Tracking
    # their owners adds each table's initializer to the SavedModel's init op, which TF Serving's
    # session loader runs; the tables hold no weights, so nothing is stored twice.
    resources = captured_resources(model, concrete.values())
    if resources:
        archive.resources = resources
    progress(f"saving {len(concrete)} signatures to {path}")
    with scope_safe_names([signature.model for signature in signatures], archive.w):
        tf.saved_model.save(archive, str(path), signatures=concrete)
    # The traced graphs hold reference cycles: collected now, their memory (about 0.35 GB for
    # ResNet50's 177 signatures) is reused by verification instead of adding to the peak.
    del archive, concrete, chained, weights
    gc.collect()


@contextlib.contextmanager
def scope_safe_names(models: Iterable[Any], variables: Iterable[Any]) -> Iterator[None]:
    """Rename, while tracing and saving, what TensorFlow would open a name scope for.

    Keras opens a name scope per layer call, and saving opens one per variable (named after its
    layer, `层/kernel`); in a graph TensorFlow refuses names such as `block 2` or `层` there ("is
    not a valid scope name"). Those names only label graph ops (the checkpoint keys are object
    paths), so a valid stand-in (`layertap.names.scope_name`) is used meanwhile, then restored.
    """
    renamed: list[tuple[Any, str, str]] = []  # (object, attribute, original value)
    seen: set[int] = set()
    try:
        for model in models:
            for layer in model._flatten_layers(include_self=True, recursive=True):
                if id(layer) not in seen and not is_scope_name(layer.name):
                    seen.add(id(layer))
                    renamed.append((layer, "name", layer.name))
                    layer.name = scope_name(layer.name)
        for variable in variables:
            # A tf.Variable's name is `_handle_name` ("层/kernel:0"); saving copies it under that.
            handle_name = getattr(variable, "_handle_name", None)
            if isinstance(handle_name, str) and not is_scope_name(handle_name.partition(":")[0]):
                shared, _, index = handle_name.partition(":")
                renamed.append((variable, "_handle_name", handle_name))
                variable._handle_name = f"{scope_name(shared)}:{index or '0'}"
        yield
    finally:
        for owner, attribute, value in reversed(renamed):
            setattr(owner, attribute, value)


def captured_resources(model: Any, functions: Iterable[Any]) -> list[Any]:
    """The resources (lookup tables and the like) of `model` whose handles `functions` capture.

    Found through the model's own object graph, whatever the layer class, and matched by the
    identity of the resource handle each concrete function captured.
    """
    import tensorflow as tf

    captured = {
        id(tensor)
        for function in functions
        for tensor in function.captured_inputs
        if tensor.dtype == tf.resource
    }
    owners: list[Any] = []
    for trackable in tf.train.TrackableView(model).descendants():
        is_resource = isinstance(trackable, tf.saved_model.experimental.TrackableResource)
        if is_resource and id(trackable.resource_handle) in captured:
            owners.append(trackable)
    return owners


def _trace(signature: Signature, weights: PackedWeights | None) -> Any:
    import tensorflow as tf

    specs = signature.tensor_specs()
    sub_model = signature.model
    aliases = signature.output_aliases

    def run(*inputs: Any) -> dict[str, Any]:
        # training=False: BatchNormalization uses its moving statistics, Dropout is off.
        with weights.reading(sub_model.variables) if weights is not None else contextlib.nullcontext():
            outputs = sub_model(list(inputs), training=False)
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        results = {}
        for position, alias in enumerate(aliases):
            value, head = outputs[position], signature.head(position)
            if head is not None:
                mask = outputs[head.mask_index] if head.mask_index is not None else None
                value = apply_tf(value, mask, head.ops)
            results[alias] = value
        return results

    return tf.function(run, input_signature=specs, autograph=False)
