"""Estimated floating-point operations of a forward pass, per sample (batch 1).

An estimate, good for choosing layers, not a profiler: a multiply-add counts as 2 FLOPs; a layer
with kernels costs 2 x kernel size for every output position; normalisation costs 2 per output
element; everything else (activations, pooling, merges, reshapes) 1 per output element. Unknown
dimensions (other than the batch) count as 1. A nested model costs what its own graph costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from layertap.exporter import _graph

__all__ = ["graph_flops", "node_flops"]

# Layers whose 2-D weights are tables read by index, not multiplied.
_LOOKUP_LAYERS = frozenset(
    {"Embedding", "ReversibleEmbedding", "PositionEmbedding", "TokenAndPositionEmbedding"}
)
_NORMALISATION_LAYERS = frozenset(
    {
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
        "UnitNormalization",
    }
)
_RESHAPING_LAYERS = frozenset({"InputLayer", "Flatten", "Reshape", "Permute", "Dropout", "Identity"})


def graph_flops(outputs: Sequence[Any]) -> int:
    """FLOPs of computing `outputs` (symbolic KerasTensors) from their graph's inputs."""
    nodes, _ = _graph.ancestors(outputs)
    return sum(node_flops(node) for node in nodes)


def node_flops(node: Any) -> int:
    """FLOPs of one call of a layer (a node of a functional graph)."""
    operation = node.operation
    if _graph.is_graph_model(operation):
        return graph_flops(list(operation.outputs))
    kind = type(operation).__name__
    out_elements = sum(_elements(tensor.shape) for tensor in node.output_tensors)
    if kind in _RESHAPING_LAYERS:
        return 0
    if kind in _NORMALISATION_LAYERS:
        return 2 * out_elements
    kernels = (
        [] if kind in _LOOKUP_LAYERS else [w for w in getattr(operation, "weights", []) if len(w.shape) >= 2]
    )
    if not kernels:
        return out_elements
    channels = _last_dim(node.output_tensors[0].shape)
    positions = max(out_elements // max(channels, 1), 1)
    return sum(2 * int(math.prod(kernel.shape)) * positions for kernel in kernels) + out_elements


def _elements(shape: Sequence[int | None]) -> int:
    return math.prod(dim or 1 for dim in shape[1:])


def _last_dim(shape: Sequence[int | None]) -> int:
    return int(shape[-1] or 1) if len(shape) > 1 else 1
