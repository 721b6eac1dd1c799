"""Many layer signatures of one graph, traced at a cost close to linear in the number of layers.

Tracing each layer signature from Keras repeats its whole prefix: for every layer of a deep model
that is the square of the depth in tracing time, in `saved_model.pb` and in memory. Here the model's
call nodes are put in one topological order and cut into segments of about sqrt(depth) nodes. Each
segment is a `tf.function` traced once, from the tensors still needed after the previous segment
(the "frontier": on a residual network one or two tensors) to those needed after it. The signature
of node k calls the segments before k's segment in turn, then a function of its own that applies
only k's ancestors inside that segment. So every layer is traced about twice in all, a signature holds
at most sqrt(depth) calls and sqrt(depth) layers of its own, and the weights stay stored once.

When served, a signature still computes only its own prefix (output_filter would not prune: the
outputs of one function call are computed together). On a chain shorter than NOINLINE_FROM layer
calls, TF Serving's session inlines the called segments and prunes what the fetched output does not
need. From NOINLINE_FROM calls on, the segments are marked `_noinline`: the session then keeps each
as one function call, optimised and instantiated once for all the signatures that call it, instead
of optimising every signature's whole inlined prefix (the sum of the prefixes: quadratic in the
depth). The signature's own part (its layer's ancestors inside its segment) is still inlined and
pruned; a segment called whole computes only layers before the signature's segment. Either way, what
a signature may compute besides its ancestors is a parallel branch that comes before it in the order
and ends in a later layer (on a residual network, the shortcut of its own block), never a layer after
it in the order.

From NOINLINE_FROM calls on, the functions also read the float weights as slices of one flat
variable per dtype (`layertap.exporter.packing`): each captures one variable instead of every weight
it reads, which is what made tracing and saving a deep signature cost in proportion to its depth.

The segments are not nested in each other: a chain where segment k calls segment k-1 makes every
level capture every weight below it and TensorFlow copy the whole nested function library into each
level (ResNet50, 176 levels: 100 s of tracing, 9 GB of memory, minutes in the session's optimiser).

Applies to a Functional or Sequential model with one input and no Keras masks, for signatures that
return one root-level layer call's outputs, raw. Everything else (serving_default, heads, groups,
layers inside nested models, masked or multi-input models) is traced from its Keras sub-model as
before (`layertap.exporter.savedmodel`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from layertap.exporter import _graph
from layertap.exporter.packing import PackedWeights, layer_variables
from layertap.exporter.truncate import Signature, free_batch
from layertap.version_folder import DEFAULT_SIGNATURE

__all__ = ["MIN_SIGNATURES", "NOINLINE_FROM", "chain_functions", "keeps_calls"]

logger = logging.getLogger(__name__)

# Below this many eligible signatures the Keras sub-models cost no more to trace than the segments.
MIN_SIGNATURES = 4
# From this many layer calls on, the segments are kept as calls the session does not inline (see
# the module docstring); below it, the inlined sum of the prefixes is small and inlining lets the
# session prune each signature to exactly its ancestors.
NOINLINE_FROM = 64


def keeps_calls(model: Any, signatures: Sequence[Signature]) -> bool:
    """True when these signatures' segment chain spans NOINLINE_FROM layer calls or more: its
    segments are then kept as calls, and its signatures read the weights packed."""
    plan = _plan(model, signatures)
    return plan is not None and plan[2] >= NOINLINE_FROM


def chain_functions(
    model: Any,
    signatures: Sequence[Signature],
    progress: Callable[[str], None],
    weights: PackedWeights | None = None,
) -> dict[str, Any]:
    """Concrete functions for the signatures the segment chain can build: {key: concrete function}.

    Signatures it cannot build (see the module docstring) are left out, for the caller to trace
    from their Keras sub-models; an empty dict when the chain does not apply at all. Segments are
    marked `_noinline` when the chain has NOINLINE_FROM layer calls or more. With `weights`, every
    function reads its layers' float weights as slices of the packed variables
    (`layertap.exporter.packing`) instead of capturing each weight.
    """
    plan = _plan(model, signatures)
    if plan is None:
        return {}
    order, wanted, depth = plan
    inline = depth < NOINLINE_FROM
    chain = _Chain(model, order[:depth], inline=inline, weights=weights)
    kept = "inlined" if inline else "kept as calls"
    progress(f"tracing {depth} layer calls in {len(chain.segments)} segments ({kept}), once each")
    functions = {}
    for number, (key, (signature, index)) in enumerate(wanted.items(), start=1):
        progress(f"tracing signature {number}/{len(wanted)} on the segments: {key}")
        functions[key] = chain.signature(signature, index)
    return functions


def _plan(
    model: Any, signatures: Sequence[Signature]
) -> tuple[list[Any], dict[str, tuple[Signature, int]], int] | None:
    """(call nodes in order, {key: (signature, index of its node)}, depth), or None without a chain."""
    order = _order(model)
    if order is None:
        return None
    position = {id(node): index for index, node in enumerate(order)}
    wanted: dict[str, tuple[Signature, int]] = {}
    for signature in signatures:
        node = _single_node(model, signature)
        if node is not None and id(node) in position:
            wanted[signature.key] = (signature, position[id(node)])
    if len(wanted) < MIN_SIGNATURES:
        return None
    return order, wanted, 1 + max(index for _, index in wanted.values())


def _order(model: Any) -> list[Any] | None:
    """The model's call nodes in topological order, or None when the chain does not apply."""
    if not _graph.is_graph_model(model) or len(model.inputs) != 1:
        return None
    nodes, _ = _graph.ancestors(list(model.outputs))
    # A Keras mask rides on the tensors between layers; it would not cross a function boundary.
    if any(
        getattr(tensor, "_keras_mask", None) is not None for node in nodes for tensor in node.output_tensors
    ):
        logger.debug("the model carries Keras masks: its signatures are traced from sub-models")
        return None
    return nodes


def _single_node(model: Any, signature: Signature) -> Any | None:
    """The call node whose outputs are exactly `signature`'s, or None if it is not such a signature."""
    if signature.key == DEFAULT_SIGNATURE or signature.heads or len(signature.layers) != 1:
        return None
    if [id(tensor) for tensor in signature.model.inputs] != [id(tensor) for tensor in model.inputs]:
        return None
    outputs = list(signature.model.outputs)
    _, node = _graph.producing_node(outputs[0])
    if [id(tensor) for tensor in node.output_tensors] != [id(tensor) for tensor in outputs]:
        return None  # a layer inside a nested model: its outputs come from a cut model's call
    return node


class _Chain:
    """The segments of `order`, each traced once, and the signatures built on them."""

    def __init__(
        self, model: Any, order: Sequence[Any], *, inline: bool, weights: PackedWeights | None
    ) -> None:
        self.order = list(order)
        self.weights = weights
        self.input = model.inputs[0]
        last_use: dict[int, int] = {}
        for index, node in enumerate(self.order):
            for tensor in node.input_tensors:
                last_use[id(tensor)] = index
        # frontiers[i]: the tensors still needed after nodes[:i] ran (frontiers[0]: the input).
        self.frontiers: list[list[Any]] = [[self.input]]
        for index, node in enumerate(self.order):
            live = [tensor for tensor in self.frontiers[-1] if last_use.get(id(tensor), -1) > index]
            self.frontiers.append(live + [t for t in node.output_tensors if last_use.get(id(t), -1) > index])
        self.size = max(1, math.isqrt(len(self.order)))
        self.segments = [
            _function(
                self.order[start : start + self.size],
                self.frontiers[start],
                self.frontiers[min(start + self.size, len(self.order))],
                inline=inline,
                weights=weights,
            )
            for start in range(0, len(self.order), self.size)
        ]

    def signature(self, signature: Signature, index: int) -> Any:
        """The concrete function of `signature`, whose layer is the call node at `index`."""
        import tensorflow as tf

        segment = index // self.size
        start = segment * self.size
        node = self.order[index]
        ancestors, _ = _graph.ancestors(list(node.output_tensors))
        needed = {id(ancestor) for ancestor in ancestors}
        own = [candidate for candidate in self.order[start : index + 1] if id(candidate) in needed]
        frontier, outputs = self.frontiers[start], list(node.output_tensors)
        variables = layer_variables(node.operation for node in own)
        before = self.segments[:segment]
        aliases = signature.output_aliases
        specs = signature.tensor_specs()

        def run(inputs: Any) -> dict[str, Any]:
            values = [inputs]
            for function in before:
                values = function(*values)
            # The signature's own part is traced into its own function, not called: one function
            # fewer per signature to trace, save and optimise.
            computed = _apply(own, frontier, values, outputs, variables=variables, weights=self.weights)
            return dict(zip(aliases, computed, strict=True))

        return tf.function(run, input_signature=specs, autograph=False).get_concrete_function()


def _function(
    nodes: Sequence[Any],
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    *,
    inline: bool = True,
    weights: PackedWeights | None = None,
) -> Any:
    """A concrete function applying `nodes` (in inference mode) to `inputs`, returning `outputs`
    (lists); with `inline=False`, marked so that TensorFlow keeps it a call instead of inlining it;
    with `weights`, reading the nodes' float weights from the packed variables."""
    import tensorflow as tf

    # The batch stays free, as in the signatures (`Signature.input_specs`).
    specs = [
        tf.TensorSpec(shape=free_batch(tuple(tensor.shape)), dtype=tf.as_dtype(tensor.dtype))
        for tensor in inputs
    ]

    variables = layer_variables(node.operation for node in nodes)

    def run(*arguments: Any) -> list[Any]:
        return _apply(nodes, inputs, arguments, outputs, variables=variables, weights=weights)

    # `_noinline` is honoured by both inliners of the graph runtime TF Serving's session uses:
    # Grappler's function optimizer skips such functions (`MarkedNoInline` in
    # tensorflow/core/grappler/optimizers/function_optimizer.cc) and the common runtime refuses to
    # inline them (`ValidateNoInline` in tensorflow/core/common_runtime/inline_function_utils.cc).
    attributes = None if inline else {"_noinline": True}
    function = tf.function(run, input_signature=specs, autograph=False, experimental_attributes=attributes)
    return function.get_concrete_function()


def _apply(
    nodes: Sequence[Any],
    inputs: Sequence[Any],
    arguments: Sequence[Any],
    outputs: Sequence[Any],
    *,
    variables: Sequence[Any],
    weights: PackedWeights | None,
) -> list[Any]:
    """While tracing: `nodes` applied to `arguments` (the values of `inputs`), the values of `outputs`;
    `variables` (the nodes' weights) read packed when there are `weights`."""
    values = {id(tensor): argument for tensor, argument in zip(inputs, arguments, strict=True)}
    with weights.reading(variables) if weights is not None else contextlib.nullcontext():
        for node in nodes:
            _graph.run_node(node, values, training=False)
    return [values[id(tensor)] for tensor in outputs]
