"""Cutting a model at layer outputs: one inference-mode Keras sub-model per signature.

A layer of the root model is cut at its call node's outputs. A layer inside a nested model is cut by
composing: the nested model is truncated on its own graph, and that truncated model is called on
the tensors the outer model fed to the nested one (Keras 3's `inner.get_layer(x).output` is not
connected to the outer inputs, REFERENCE §5). Each sub-model takes only the model inputs its outputs
depend on, so a signature for one branch of a two-input model asks for that branch's input alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from layertap.errors import UsageError
from layertap.exporter import _graph
from layertap.exporter.specs import LayerRef

__all__ = ["DEFAULT_SIGNATURE", "Signature", "plan_signatures", "tensors_for"]

DEFAULT_SIGNATURE = "serving_default"
_CUTS = itertools.count()


@dataclass(frozen=True)
class Signature:
    """One signature to write: a key, the sub-model computing it, and its aliases.

    Attributes:
        key: signature key.
        model: Keras model taking `len(input_aliases)` inputs (a list) and returning a list of
            `len(output_aliases)` outputs.
        input_aliases: the model's input names this signature needs, in model input order.
        output_aliases: one per output.
        layers: layer keys the signature returns (empty for serving_default).
    """

    key: str
    model: Any
    input_aliases: tuple[str, ...]
    output_aliases: tuple[str, ...]
    layers: tuple[str, ...]

    @property
    def input_specs(self) -> list[tuple[str, tuple[int | None, ...], str]]:
        """(alias, shape with batch None, dtype name) of each input."""
        return [
            (alias, tuple(tensor.shape), str(tensor.dtype))
            for alias, tensor in zip(self.input_aliases, self.model.inputs, strict=True)
        ]

    @property
    def output_specs(self) -> list[tuple[str, tuple[int | None, ...], str]]:
        """(alias, shape with batch None, dtype name) of each output."""
        return [
            (alias, tuple(tensor.shape), str(tensor.dtype))
            for alias, tensor in zip(self.output_aliases, self.model.outputs, strict=True)
        ]


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
    model: Any, refs: Sequence[LayerRef], groups: Mapping[str, Sequence[LayerRef]]
) -> list[Signature]:
    """serving_default, one signature per layer ref, and one per group, in that order.

    Raises:
        UsageError: a group name collides with a layer key, serving_default, or another group,
            or a group is empty.
    """
    signatures = [_full_model_signature(model)]
    seen: set[str] = {DEFAULT_SIGNATURE}
    for ref in refs:
        if ref.key in seen:
            continue  # the same layer asked twice (e.g. by name and by index) is one signature
        seen.add(ref.key)
        signatures.append(_build(model, ref.key, [ref]))
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


def _build(model: Any, key: str, refs: Sequence[LayerRef]) -> Signature:
    import keras

    outputs: list[Any] = []
    aliases: list[str] = []
    for ref in refs:
        tensors = tensors_for(ref)
        outputs.extend(tensors)
        aliases.extend([ref.key] if len(tensors) == 1 else [f"{ref.key}:{i}" for i in range(len(tensors))])
    if len(set(aliases)) != len(aliases):
        raise UsageError(f"signature {key!r} lists a layer twice: {aliases}")
    inputs = _needed_inputs(model, outputs)
    sub = keras.Model(inputs, outputs, name=f"layertap_{len(aliases)}_outputs")
    return Signature(
        key=key,
        model=sub,
        input_aliases=tuple(_graph.input_alias(tensor) for tensor in inputs),
        output_aliases=tuple(aliases),
        layers=tuple(ref.key for ref in refs),
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
        input_aliases=tuple(_graph.input_alias(tensor) for tensor in model.inputs),
        output_aliases=tuple(_graph.output_names(model)),
        layers=(),
    )
