"""Cutting a model at layer outputs: one inference-mode Keras sub-model per signature.

A layer of the root model is cut at its call node's outputs. A layer inside a nested model is cut by
composing: the nested model is truncated on its own graph, and that truncated model is called on
the tensors the outer model fed to the nested one (Keras 3's `inner.get_layer(x).output` is not
connected to the outer inputs; keras#23238). Each sub-model takes only the model inputs its outputs
depend on, so a signature for one branch of a two-input model asks for that branch's input alone.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from layertap.errors import UsageError
from layertap.exporter import _graph, heads
from layertap.exporter.heads import Head, HeadOp
from layertap.exporter.specs import LayerRef
from layertap.names import tensorflow_name
from layertap.version_folder import DEFAULT_SIGNATURE

__all__ = ["HeadRef", "Signature", "plan_signatures", "tensors_for"]
_CUTS = itertools.count()


@dataclass(frozen=True)
class HeadRef:
    """A requested head: its name (signature key and output alias), the layer, and the ops."""

    name: str
    ref: LayerRef
    ops: tuple[HeadOp, ...]


@dataclass(frozen=True)
class Signature:
    """One signature to write: a key, the sub-model computing it, and its aliases.

    Attributes:
        key: signature key.
        model: Keras model taking `len(input_aliases)` inputs (a list) and returning a list of
            outputs: one per output alias (the raw layer output, before any head), then the Keras
            masks the heads read (`Head.mask_index` points at them).
        input_aliases: the model's input names this signature needs, in model input order.
        output_aliases: one per output.
        layers: layer keys the signature reads (empty for serving_default).
        heads: per output alias, the head applied to the layer output, or None for the raw output
            (empty: no heads at all).
    """

    key: str
    model: Any
    input_aliases: tuple[str, ...]
    output_aliases: tuple[str, ...]
    layers: tuple[str, ...]
    heads: tuple[Head | None, ...] = ()

    def head(self, position: int) -> Head | None:
        """The head of output `position`, or None when that output is the raw layer output."""
        return self.heads[position] if self.heads else None

    @property
    def input_specs(self) -> list[tuple[str, tuple[int | None, ...], str]]:
        """(alias, shape with batch None, dtype name) of each input.

        The batch is always free: TF Serving batches requests, and a model built by calling it on one
        sample (a Sequential without an Input) records a batch of 1 that its layers do not need.
        """
        return [
            (alias, free_batch(tuple(tensor.shape)), str(tensor.dtype))
            for alias, tensor in zip(self.input_aliases, self.model.inputs, strict=True)
        ]

    def tensor_specs(self) -> list[Any]:
        """`input_specs` as the `tf.TensorSpec`s a signature function is traced with."""
        import tensorflow as tf

        return [
            tf.TensorSpec(shape=shape, dtype=tf.as_dtype(dtype), name=alias)
            for alias, shape, dtype in self.input_specs
        ]

    @property
    def output_specs(self) -> list[tuple[str, tuple[int | None, ...], str]]:
        """(alias, shape with batch None, dtype name) of each output (after its head, if any)."""
        specs: list[tuple[str, tuple[int | None, ...], str]] = []
        for position, alias in enumerate(self.output_aliases):
            head = self.head(position)
            if head is not None:
                specs.append((alias, head.shape, head.dtype))
            else:
                tensor = self.model.outputs[position]
                specs.append((alias, free_batch(tuple(tensor.shape)), str(tensor.dtype)))
        return specs


def free_batch(shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
    """`shape` with its batch (first) dimension free: see `Signature.input_specs`."""
    return (None, *shape[1:]) if shape else shape


def tensors_for(ref: LayerRef) -> list[Any]:
    """The symbolic output tensors of `ref`, connected to the root model's inputs."""
    return _tensors(ref.steps)


def _tensors(steps: Sequence[tuple[Any, Any]]) -> list[Any]:
    layer, node = steps[0]
    if len(steps) == 1:
        return list(node.output_tensors)
    import keras

    inner_outputs = _tensors(steps[1:])
    # A Sequential's `.input` is its first call's input in the OUTER graph; its own inputs are
    # `.inputs`. A Functional's `.input` is its own input structure, which its call expects.
    own_input = layer.inputs[0] if len(layer.inputs) == 1 else layer.input
    # Unique names: one reference model later holds the cuts of several signatures.
    cut = keras.Model(own_input, inner_outputs, name=f"{layer.name}_cut_{next(_CUTS)}")
    outputs = cut(*node.arguments.args, **node.arguments.kwargs)
    return list(outputs) if isinstance(outputs, list | tuple) else [outputs]


def plan_signatures(
    model: Any,
    refs: Sequence[LayerRef],
    groups: Mapping[str, Sequence[LayerRef | HeadRef]],
    head_refs: Sequence[HeadRef] = (),
) -> list[Signature]:
    """serving_default, one signature per layer ref, one per head, one per group, in that order.

    Raises:
        UsageError: a head or group name collides with a layer key, serving_default, or another
            head or group; a group is empty; a head op does not fit its layer's output.
    """
    signatures = [_full_model_signature(model)]
    seen: set[str] = {DEFAULT_SIGNATURE}
    for ref in refs:
        if ref.key in seen:
            continue  # the same layer asked twice (e.g. by name and by index) is one signature
        seen.add(ref.key)
        signatures.append(_build(model, ref.key, [ref]))
    for head_ref in head_refs:
        if head_ref.name in seen:
            raise UsageError(
                f"head name {head_ref.name!r} is already a signature key; signature keys so far: "
                f"{sorted(seen)}"
            )
        seen.add(head_ref.name)
        signatures.append(_build(model, head_ref.name, [head_ref]))
    for name, members in groups.items():
        if name in seen:
            raise UsageError(
                f"group name {name!r} is already a signature key; signature keys so far: {sorted(seen)}"
            )
        if not members:
            raise UsageError(f"group {name!r} lists no layers; expected NAME=SPEC,SPEC[,...]")
        seen.add(name)
        signatures.append(_build(model, name, members))
    return signatures


def _build(model: Any, key: str, members: Sequence[LayerRef | HeadRef]) -> Signature:
    import keras

    outputs: list[Any] = []
    aliases: list[str] = []
    planned: list[Head | None] = []
    masks: list[Any] = []
    for member in members:
        ref = member.ref if isinstance(member, HeadRef) else member
        tensors = tensors_for(ref)
        if isinstance(member, HeadRef):
            head = _plan_head(member, tensors)
            mask = _mask_for(model, member.name, head, tensors[0])
            if mask is not None:
                # The mask becomes an extra sub-model output, after the aliased ones (once per mask).
                known = [id(tensor) for tensor in masks]
                if id(mask) not in known:
                    masks.append(mask)
                    known.append(id(mask))
                head = dataclasses.replace(head, mask_index=known.index(id(mask)))
            outputs.append(tensors[0])
            aliases.append(tensorflow_name(member.name))
            planned.append(head)
            continue
        outputs.extend(tensors)
        # Keys and aliases are TensorFlow-valid forms of the names (`layertap.names`); the names
        # themselves stay in `layers` and in the manifest.
        alias = tensorflow_name(ref.key)
        aliases.extend([alias] if len(tensors) == 1 else [f"{alias}:{i}" for i in range(len(tensors))])
        planned.extend([None] * len(tensors))
    if len(set(aliases)) != len(aliases):
        raise UsageError(f"signature {key!r} lists a layer twice: {aliases}")
    planned = [
        dataclasses.replace(head, mask_index=len(outputs) + head.mask_index)
        if head is not None and head.mask_index is not None
        else head
        for head in planned
    ]
    inputs = _needed_inputs(model, [*outputs, *masks])
    # A Sequential lists its layers only (it has no `operations`).
    _graph.distinct_operation_names([*outputs, *masks], keep=getattr(model, "operations", model.layers))
    sub = keras.Model(inputs, [*outputs, *masks], name=f"layertap_{len(aliases)}_outputs")
    return Signature(
        key=tensorflow_name(key),
        model=sub,
        input_aliases=tuple(tensorflow_name(_graph.input_alias(tensor)) for tensor in inputs),
        output_aliases=tuple(aliases),
        layers=tuple(dict.fromkeys(m.ref.key if isinstance(m, HeadRef) else m.key for m in members)),
        heads=tuple(planned) if any(head is not None for head in planned) else (),
    )


def _mask_for(model: Any, name: str, head: Head, tensor: Any) -> Any | None:
    """The mask a head's ops read: a named model input (`mean=INPUT`), else the Keras mask the
    layer output carries; None when no op reads one."""
    if not head.uses_mask:
        return None
    named = head.mask_input
    if named is None:
        return heads.keras_mask(tensor)
    # A model input, else an input a nested model is fed (a KerasHub backbone's `padding_mask`,
    # computed by the preprocessor in front of it).
    by_alias = {**_graph.fed_inputs(model)}
    by_alias.update({_graph.input_alias(candidate): candidate for candidate in model.inputs})
    if named not in by_alias:
        raise UsageError(
            f"head {name!r}: the mask input {named!r} is not an input of the model; inputs: "
            f"{sorted(by_alias)} (with those fed to nested models)"
        )
    mask = by_alias[named]
    if len(mask.shape) != 2 or len(tensor.shape) != 3:
        raise UsageError(
            f"head {name!r}: the mask input {named!r} has shape {tuple(mask.shape)}; a mask over time "
            f"is (batch, time), for a (batch, time, features) output (got {tuple(tensor.shape)})"
        )
    return mask


def _plan_head(head_ref: HeadRef, tensors: Sequence[Any]) -> Head:
    if len(tensors) != 1:
        shapes = ", ".join(str(tuple(tensor.shape)) for tensor in tensors)
        raise UsageError(
            f"head {head_ref.name!r}: layer {head_ref.ref.key!r} has {len(tensors)} outputs ({shapes}); "
            "a head reads a layer with one output"
        )
    tensor = tensors[0]
    return heads.plan_head(
        head_ref.name, head_ref.ref.key, tuple(tensor.shape), str(tensor.dtype), head_ref.ops
    )


def _needed_inputs(model: Any, outputs: Sequence[Any]) -> list[Any]:
    _, reached = _graph.ancestors(outputs)
    reached_ids = {id(tensor) for tensor in reached}
    return [tensor for tensor in model.inputs if id(tensor) in reached_ids]


def _full_model_signature(model: Any) -> Signature:
    import keras

    outputs = list(model.outputs)
    sub = keras.Model(list(model.inputs), outputs, name="layertap_full_model")
    return Signature(
        key=DEFAULT_SIGNATURE,
        model=sub,
        input_aliases=tuple(tensorflow_name(_graph.input_alias(tensor)) for tensor in model.inputs),
        output_aliases=tuple(tensorflow_name(name) for name in _graph.output_names(model)),
        layers=(),
    )
