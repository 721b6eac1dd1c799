"""Turning a layer spec into a layer: THE place where `conv_2`, `3`, `backbone/block_1@1` are resolved.

Spec syntax:
    name            a layer of the model, by name
    N or -N         an index into `model.layers`, exactly as Keras 3 lists them: a Sequential's
                    list does NOT include the InputLayer (index 0 is the first layer after the
                    input); a Functional model's list starts with its InputLayers
    outer/inner     a layer inside a nested model (any depth)
    name@K          the K-th call (0-based) of a layer called more than once (shared weights);
                    also allowed on a nested model that is called more than once (`tower@1/dense`)

The signature key (and output alias) of a resolved spec is its canonical form: the path of layer
names joined by `/`, keeping any `@K`, so an index spec `3` becomes the layer's name.

Selections (`select`): every layer (`--all-layers`), or the layers whose path a regular expression
matches (`--layers-matching`), as the specs `layertap inspect` lists.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from layertap.errors import (
    AmbiguousLayerError,
    LayerNotFoundError,
    UnsupportedModelError,
    UsageError,
)
from layertap.exporter import _graph

__all__ = ["LayerRef", "all_paths", "check_pattern", "ensure_graph_model", "every_spec", "resolve", "select"]

_PART = re.compile(r"^(?P<name>[^@/]+)(?:@(?P<call>\d+))?$")
_INDEX = re.compile(r"^-?\d+$")
# How many layer names an error message lists before eliding the rest.
_LISTED = 40


@dataclass(frozen=True)
class LayerRef:
    """A resolved layer spec.

    Attributes:
        spec: what the caller wrote.
        key: canonical path; the signature key and output alias.
        steps: for each level, the (layer, call node) pair; the last one is the layer itself and
            every earlier one is a nested model it lives in.
    """

    spec: str
    key: str
    steps: tuple[tuple[Any, Any], ...]

    @property
    def layer(self) -> Any:
        """The layer the spec names."""
        return self.steps[-1][0]


def ensure_graph_model(model: Any, what: str = "the model") -> None:
    """Raise UnsupportedModelError unless `model` is Functional or Sequential."""
    if not _graph.is_graph_model(model):
        raise UnsupportedModelError(
            f"{what} ({type(model).__name__}) is a subclassed model: its call() is Python code, not a "
            "graph of layers, so there is no layer output to cut it at. Rebuild it with the Functional "
            "API (keras.Input ... keras.Model(inputs, outputs)) or as a keras.Sequential, or export a "
            "Functional sub-model it holds as an attribute."
        )


def all_paths(model: Any, prefix: str = "") -> list[str]:
    """Every layer path in `model`, nested models included (depth first)."""
    paths: list[str] = []
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        paths.append(path)
        if _graph.is_graph_model(layer):
            paths.extend(all_paths(layer, prefix=f"{path}/"))
    return paths


def every_spec(model: Any, prefix: str = "") -> list[str]:
    """The spec of every layer output in `model`: each call of each layer, nested models' layers
    too (depth first, in `model.layers` order), InputLayers and unconnected layers left out.

    These are the specs `layertap inspect` lists; each resolves to one output.
    """
    specs: list[str] = []
    for layer in model.layers:
        nodes = _graph.call_nodes(layer, model)
        for call in range(len(nodes)):
            spec = f"{prefix}{layer.name}" + (f"@{call}" if len(nodes) > 1 else "")
            if type(layer).__name__ != "InputLayer":
                specs.append(spec)
            if _graph.is_graph_model(layer):
                specs.extend(every_spec(layer, prefix=f"{spec}/"))
    return specs


def check_pattern(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled, or UsageError saying why it is not a regular expression."""
    try:
        return re.compile(pattern)
    except re.error as error:
        raise UsageError(
            f"the layer pattern {pattern!r} (--layers-matching) is not a regular expression: {error}; "
            r"expected a Python regular expression searched in each layer path, e.g. '_out$' or "
            r"'^block\d+/conv'"
        ) from None


def select(model: Any, *, all_layers: bool = False, matching: str | None = None) -> list[str]:
    """The specs of a selection: every layer (`all_layers`), or those whose path `matching` searches.

    Raises:
        UsageError: `matching` is not a regular expression, or matches no layer path.
    """
    if all_layers:
        return every_spec(model)
    if matching is None:
        return []
    everything = every_spec(model)
    pattern = check_pattern(matching)
    chosen = [spec for spec in everything if pattern.search(spec)]
    if not chosen:
        listed = ", ".join(everything[:_LISTED]) + (
            f", ... ({len(everything) - _LISTED} more)" if len(everything) > _LISTED else ""
        )
        raise LayerNotFoundError(
            f"the layer pattern {matching!r} (--layers-matching) matches none of the model's "
            f"{len(everything)} layer paths (searched with re.search); paths: {listed}"
        )
    return chosen


def resolve(model: Any, spec: str | int) -> LayerRef:
    """The layer `spec` names in `model`.

    Raises:
        LayerNotFoundError: no such layer, index out of range, or no such call of a shared layer.
        AmbiguousLayerError: a layer (or nested model) called more than once, without `@K`.
        UnsupportedModelError: `model`, or a model the path goes through, is subclassed.
    """
    ensure_graph_model(model)
    text = str(spec).strip()
    if _INDEX.match(text):
        index = int(text)
        count = len(model.layers)
        if not -count <= index < count:
            raise LayerNotFoundError(
                f"layer index {index} is out of range: the model has {count} layers, indices "
                f"0..{count - 1} (or -{count}..-1); model.layers excludes the InputLayer in Keras 3. "
                f"Layers: {_listing(model.layers)}"
            )
        layer = model.layers[index]
        node = _single_call(model, layer, layer.name, text)
        return LayerRef(spec=text, key=layer.name, steps=((layer, node),))

    parts = text.split("/")
    steps: list[tuple[Any, Any]] = []
    key_parts: list[str] = []
    container = model
    for position, part in enumerate(parts):
        match = _PART.match(part)
        if match is None:
            raise LayerNotFoundError(
                f"layer spec {text!r} is malformed at {part!r}: expected a layer name, `name@K` for "
                "the K-th call of a shared layer, `outer/inner` for a nested model, or an index"
            )
        name, call = match["name"], match["call"]
        where = "/".join(key_parts)
        if position > 0:
            ensure_graph_model(container, what=f"nested model {where!r}")
        layer = _find(container, model, name, text, where)
        nodes = _graph.call_nodes(layer, container)
        if call is None:
            node = _single_call(container, layer, "/".join([*key_parts, name]), text)
            key_parts.append(name)
        else:
            if int(call) >= len(nodes):
                raise LayerNotFoundError(
                    f"layer spec {text!r} asks for call {call} of {name!r}, which is called "
                    f"{len(nodes)} time(s) in the model: use @0..@{len(nodes) - 1}"
                )
            node = nodes[int(call)]
            key_parts.append(f"{name}@{call}")
        steps.append((layer, node))
        container = layer
    return LayerRef(spec=text, key="/".join(key_parts), steps=tuple(steps))


def _find(container: Any, root: Any, name: str, spec: str, where: str) -> Any:
    for layer in container.layers:
        if layer.name == name:
            return layer
    known = all_paths(root)
    wanted = f"{where}/{name}" if where else name
    nearest = difflib.get_close_matches(wanted, known, n=5, cutoff=0.5)
    scope = f"nested model {where!r}" if where else "the model"
    hint = f" Nearest: {', '.join(nearest)}." if nearest else ""
    raise LayerNotFoundError(
        f"layer spec {spec!r}: {scope} has no layer named {name!r}.{hint} "
        f"Layers of {scope}: {_listing(container.layers)}"
    )


def _single_call(container: Any, layer: Any, key: str, spec: str) -> Any:
    nodes = _graph.call_nodes(layer, container)
    if type(layer).__name__ == "InputLayer":
        raise LayerNotFoundError(
            f"layer spec {spec!r} names the InputLayer {key!r}: its output is the model input itself, "
            "there is nothing to compute; choose a layer after it"
        )
    if not nodes:
        raise LayerNotFoundError(
            f"layer spec {spec!r}: layer {key!r} is not connected to the model's outputs, so no "
            "model input leads to it"
        )
    if len(nodes) > 1:
        choices = ", ".join(
            f"{key}@{index} -> {tuple(node.output_tensors[0].shape)}" for index, node in enumerate(nodes)
        )
        raise AmbiguousLayerError(
            f"layer spec {spec!r}: layer {key!r} is called {len(nodes)} times (shared weights), so it "
            f"has {len(nodes)} outputs. Choose one call: {choices}"
        )
    return nodes[0]


def _listing(layers: Any) -> str:
    names = [f"{index}:{layer.name}" for index, layer in enumerate(layers)]
    if len(names) > _LISTED:
        return ", ".join(names[:_LISTED]) + f", ... ({len(names) - _LISTED} more)"
    return ", ".join(names)
