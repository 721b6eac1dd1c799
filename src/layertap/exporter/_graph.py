"""Walking a Keras 3 functional graph: the one place that touches Keras' graph internals.

Keras 3 has no public API for a layer's second call (`get_output_at` is gone, keras#23238) or for
the nodes of a graph, so this module reads `_inbound_nodes` and `_keras_history`. Everything else in
the exporter goes through these functions, so a Keras change breaks one small module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "ancestors",
    "call_arguments",
    "call_nodes",
    "distinct_operation_names",
    "fed_inputs",
    "input_alias",
    "is_graph_model",
    "output_names",
    "producing_node",
    "run_node",
    "tensor_index",
    "unique",
]


def is_graph_model(obj: object) -> bool:
    """True for Functional and Sequential models: models with a graph that can be truncated."""
    from keras.src.models.functional import Functional
    from keras.src.models.sequential import Sequential

    return isinstance(obj, Functional | Sequential)


def producing_node(tensor: Any) -> tuple[Any, Any]:
    """The (operation, node) that produced a symbolic KerasTensor."""
    history = tensor._keras_history
    return history.operation, history.operation._inbound_nodes[history.node_index]


def call_arguments(node: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments a node's call received (tensors among them)."""
    return tuple(node.arguments.args), dict(node.arguments.kwargs)


def tensor_index(tensor: Any) -> int:
    """Which output of its producing call a symbolic KerasTensor is (0 for a single-output layer)."""
    return int(tensor._keras_history.tensor_index)


def ancestors(tensors: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Every node needed to compute `tensors`, and the graph inputs they start from.

    Returns:
        (nodes in dependency order, input KerasTensors reached), both without duplicates.
    """
    order: list[Any] = []
    inputs: list[Any] = []
    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = [(tensor, False) for tensor in reversed(list(tensors))]
    while stack:
        tensor, expanded = stack.pop()
        _, node = producing_node(tensor)
        if node.is_input:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                inputs.append(tensor)
            continue
        if id(node) in seen:
            continue
        if expanded:
            seen.add(id(node))
            order.append(node)
            continue
        # Post-order: the node is emitted after everything it depends on.
        stack.append((tensor, True))
        stack.extend((parent, False) for parent in node.input_tensors)
    return order, inputs


def distinct_operation_names(tensors: Sequence[Any], keep: Iterable[Any]) -> None:
    """Rename the operations behind `tensors` that share a name with another, except those in `keep`.

    A model loaded from a file gets its saved operation names back as given, without Keras' name
    counter seeing them; an operation Keras creates by itself while loading (the `not_equal` of an
    `Embedding(mask_zero=True)` mask) is auto-named from that counter and can take a saved name. The
    two meet in one graph when a sub-model returns the mask (a `mean` head), and Keras refuses it:
    `The name "not_equal" is used 2 times in the model` (keras/src/ops/function.py, map_graph).
    The operations in `keep` (the model's own, whose names are its layer names) keep their names;
    the others get the first free `NAME_K`.
    """
    kept = {id(operation) for operation in keep}
    nodes, _ = ancestors(tensors)
    operations = list({id(node.operation): node.operation for node in nodes}.values())
    taken = {str(operation.name) for operation in operations}
    owners: dict[str, Any] = {}
    # The model's own operations claim their names first.
    for operation in sorted(operations, key=lambda op: id(op) not in kept):
        name = str(operation.name)
        if name not in owners:
            owners[name] = operation
            continue
        count = 1
        while f"{name}_{count}" in taken:
            count += 1
        operation.name = f"{name}_{count}"
        taken.add(operation.name)


def call_nodes(layer: Any, model: Any) -> list[Any]:
    """The calls of `layer` inside `model`'s graph, in the order Keras recorded them."""
    nodes, _ = ancestors(list(model.outputs))
    in_graph = {id(node) for node in nodes}
    return [node for node in layer._inbound_nodes if id(node) in in_graph]


def fed_inputs(model: Any) -> dict[str, Any]:
    """The tensors `model` feeds the inputs of the graph models it calls, by the inner input's name.

    A KerasHub backbone behind its preprocessor is such a nested model: its `padding_mask` input is
    the preprocessor's output in the outer graph. Names fed differently by two calls are left out.
    """
    fed: dict[str, Any] = {}
    clashes: set[str] = set()
    for layer in model.layers:
        if not is_graph_model(layer):
            continue
        for node in call_nodes(layer, model):
            args = node.arguments.args
            if len(args) == 1 and isinstance(args[0], dict):
                pairs = list(args[0].items())
            else:
                flat = list(node.input_tensors)
                inner = list(layer.inputs)
                pairs = (
                    [(input_alias(t), f) for t, f in zip(inner, flat, strict=True)]
                    if len(flat) == len(inner)
                    else []
                )
            for name, tensor in pairs:
                if name in fed and fed[name] is not tensor:
                    clashes.add(name)
                fed[name] = tensor
    return {name: tensor for name, tensor in fed.items() if name not in clashes}


def input_alias(tensor: Any) -> str:
    """The name a model input is known by: its InputLayer's name (`keras.Input(name=...)`)."""
    return str(tensor._keras_history.operation.name)


def unique(names: Iterable[str]) -> list[str]:
    """`names` with repeats made distinct by a `_1`, `_2`... suffix."""
    result: list[str] = []
    for name in names:
        candidate, count = name, 0
        while candidate in result:
            count += 1
            candidate = f"{name}_{count}"
        result.append(candidate)
    return result


def output_names(model: Any) -> list[str]:
    """Names for a model's outputs: a dict-output model's keys, else the producing layers' names."""
    structure = getattr(model, "_outputs_struct", None)
    if isinstance(structure, dict):
        # Keras flattens a dict's values in sorted key order, as model.outputs lists them.
        return sorted(structure)
    return unique(producing_node(tensor)[0].name for tensor in model.outputs)


def run_node(node: Any, values: dict[int, Any], *, training: bool = False) -> None:
    """Call `node`'s operation on concrete tensors and record its outputs in `values`.

    `values` maps id(KerasTensor) -> the tensor computed for it; the node's arguments are read from
    it and its outputs added to it. `training` reaches the layers that take it the way a Functional
    model's own call passes it (keras/src/models/functional.py, `operation_fn`).
    """
    import keras
    from keras.src.models.functional import operation_fn

    args, kwargs = node.arguments.fill_in(values)
    outputs = operation_fn(node.operation, training=training)(*args, **kwargs)
    for symbolic, computed in zip(node.output_tensors, keras.tree.flatten(outputs), strict=True):
        values[id(symbolic)] = computed
