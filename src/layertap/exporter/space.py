"""Embedding-space identity: one id per signature, equal exactly when two exports compute the same thing.

A stored vector is only comparable with vectors of the same space. The id is a SHA-256 over a
canonical JSON description of what the signature computes, built from values, never from names that
TensorFlow or Keras make unique per process (`dense_3`, variable paths) or from the machine:

- `format`: `layertap-space/1` (a change of this description changes every id);
- every input: shape (batch as null) and dtype; not its alias;
- the graph from the inputs to the outputs, node by node in dependency order: the layer's class, its
  settings (`get_config()` without `name`, `trainable`, `dtype`, keeping only numbers, strings, booleans and
  lists of them, so initializers and regularizers, which do not change inference, are left out), where each
  of its inputs comes from (a graph input or an earlier node, by position), its call's constant arguments
  (the slice of `x[:, 0]`), and each weight's dtype, shape and the SHA-256 of its values (little-endian
  bytes). A nested model contributes its own graph the same way.
  Preprocessing layers inside the model (`Rescaling`, `Normalization`...) are nodes like any other;
- every output: the node and tensor it reads, its shape and dtype after the head, and the head's ops.

So two exports of the same weights and layers get the same id whatever TensorFlow version or machine
wrote them, and another layer, a head op, changed preprocessing or any changed weight gives another id.
Keras settings are read as Keras reports them: a Keras release that adds a setting to a layer's config
changes the ids of models holding that layer.

The id is recorded in the manifest and stamped into the SavedModel itself (`stamp_spaces`), so a client
reads it from GetModelMetadata with the signatures, without another request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layertap._atomic import write_atomically
from layertap.exporter import _graph
from layertap.exporter.truncate import Signature
from layertap.names import SPACE_KEY

__all__ = ["SPACE_FORMAT", "space_identities", "stamp_spaces"]

SPACE_FORMAT = "layertap-space/1"
# Settings that name things (or only matter for training) rather than say what is computed.
_IGNORED_SETTINGS = frozenset({"name", "trainable", "dtype"})


def space_identities(signatures: Sequence[Signature]) -> dict[str, str]:
    """`sha256:<hex>` per signature key (see the module docstring for what enters it)."""
    digests: dict[int, str] = {}  # weights shared by several signatures are hashed once
    return {signature.key: _identity(signature, digests) for signature in signatures}


def _identity(signature: Signature, digests: dict[int, str]) -> str:
    model = signature.model
    description = {
        "format": SPACE_FORMAT,
        "inputs": [[list(shape), dtype] for _, shape, dtype in signature.input_specs],
        "graph": _describe(model, digests),
        "outputs": [
            {
                "shape": list(shape),
                "dtype": dtype,
                "head": [str(op) for op in head.ops] if (head := signature.head(position)) else [],
            }
            for position, (_, shape, dtype) in enumerate(signature.output_specs)
        ],
    }
    text = json.dumps(description, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _describe(model: Any, digests: dict[int, str]) -> dict[str, Any]:
    """A graph model's nodes in dependency order, wired by position, and where its outputs come from."""
    nodes, _ = _graph.ancestors(list(model.outputs))
    # A model's own input order, not the order the walk met them.
    input_ids = [id(tensor) for tensor in model.inputs]
    position = {id(node): index for index, node in enumerate(nodes)}

    def source(tensor: Any) -> list[Any]:
        _, node = _graph.producing_node(tensor)
        if node.is_input:
            return ["input", input_ids.index(id(tensor)) if id(tensor) in input_ids else -1]
        return ["node", position[id(node)], _graph.tensor_index(tensor)]

    described = []
    for node in nodes:
        layer = node.operation
        entry: dict[str, Any] = {
            "class": type(layer).__name__,
            "from": [source(tensor) for tensor in node.input_tensors],
        }
        if _graph.is_graph_model(layer):
            entry["model"] = _describe(layer, digests)
        else:
            entry["settings"] = _settings(layer)
            # A keras.ops call in the graph (a Keras mask's `not_equal`, `x[:, 0]`'s GetItem) is an
            # Operation, not a Layer: it has no weights, and its constants are call arguments (the slice).
            entry["weights"] = [_weight(variable, digests) for variable in getattr(layer, "weights", [])]
            args, kwargs = _graph.call_arguments(node)
            entry["arguments"] = [_constant(args), _constant(kwargs)]
        described.append(entry)
    return {"nodes": described, "outputs": [source(tensor) for tensor in model.outputs]}


def _settings(layer: Any) -> dict[str, Any]:
    try:
        config = layer.get_config()
    except Exception:  # a custom layer without get_config(): its weights still identify it
        return {}
    if not isinstance(config, Mapping):
        return {}
    return {
        str(key): value
        for key, value in sorted(config.items())
        if key not in _IGNORED_SETTINGS and _plain(value)
    }


def _constant(value: Any) -> Any:
    """A call argument as plain JSON: tensors stand as "tensor" (their sources are described apart)."""
    if hasattr(value, "_keras_history") or (hasattr(value, "shape") and hasattr(value, "dtype")):
        return "tensor"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if value is Ellipsis:
        return "..."
    if isinstance(value, slice):
        return {"slice": [_constant(value.start), _constant(value.stop), _constant(value.step)]}
    if isinstance(value, list | tuple):
        return [_constant(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _constant(item) for key, item in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return type(value).__name__  # an object's repr may hold a memory address: its type is what is stable


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return isinstance(value, list | tuple) and all(_plain(item) for item in value)


def _weight(variable: Any, digests: dict[int, str]) -> list[Any]:
    array = np.asarray(variable.numpy())
    if id(variable) not in digests:
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        digests[id(variable)] = hashlib.sha256(data.tobytes()).hexdigest()
    return [str(array.dtype), list(array.shape), digests[id(variable)]]


def stamp_spaces(path: Path, spaces: Mapping[str, str]) -> None:
    """Record each signature's space id in the SavedModel at `path`, as a string entry of its
    SignatureDef's `defaults` map under `layertap.names.SPACE_KEY`.

    `defaults` travels with the SignatureDef into GetModelMetadata answers (TF Serving packs the
    MetaGraphDef's signature_def map as is, `get_model_metadata_impl.cc`), so clients learn the ids with
    the signatures. TF Serving only reads `defaults` for keys that are signature inputs
    (`predict_util.cc`: a missing input alias is looked up there), and no input is called SPACE_KEY, so
    the entry changes nothing a request does. The file is rewritten through a temporary file and a
    rename. `fingerprint.pb`, written by TensorFlow before this, keeps the checksum of the unstamped
    graph file; TF Serving does not check it.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    graph_file = path / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(graph_file.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        for key, space in spaces.items():
            if key in meta_graph.signature_def:
                entry = meta_graph.signature_def[key].defaults[SPACE_KEY]
                entry.CopyFrom(tf.make_tensor_proto(space.encode("ascii")))
    write_atomically(graph_file, saved_model.SerializeToString())
