"""`inspect_model()`: every layer of a model with its spec, shapes, bytes, parameters and compute share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Unpack

from layertap.errors import UsageError
from layertap.exporter import _graph, specs
from layertap.exporter import heads as head_ops
from layertap.exporter.flops import graph_flops
from layertap.exporter.source import LoadingKeywords, ModelSource

__all__ = ["LayerInfo", "inspect_model"]


@dataclass(frozen=True)
class LayerInfo:
    """One row of `inspect_model()`.

    Attributes:
        index: position in the root model's `model.layers` (None inside nested models).
        spec: the spec that selects this layer's output (path, with `@K` for shared calls).
        kind: the layer's class name.
        output_shape: shape(s) of the output, batch as None.
        parameters: the layer's parameter count.
        flops: estimated FLOPs per sample of a signature ending here.
        share: `flops` as a fraction of the full model's FLOPs.
        output_dtypes: dtype of each output.
        output_bytes: bytes per example of all outputs (None when a dimension is open).
        head_shape, head_dtype, head_bytes: with `inspect_model(head=...)`, what the head would
            output here and its bytes per example (None where the head does not fit the layer).
    """

    index: int | None
    spec: str
    kind: str
    output_shape: tuple[tuple[int | None, ...], ...]
    parameters: int
    flops: int
    share: float
    output_dtypes: tuple[str, ...] = ()
    output_bytes: int | None = None
    head_shape: tuple[int | None, ...] | None = None
    head_dtype: str | None = None
    head_bytes: int | None = None


def inspect_model(
    model_or_path: Any,
    *,
    head: Sequence[str] | str | None = None,
    **loading: Unpack[LoadingKeywords],
) -> list[LayerInfo]:
    """Every layer (nested ones too) with its spec, output shape, bytes, parameters and compute share.

    Args:
        head: head ops (e.g. "gap,float16"): each row also says what that head would output at
            the layer and weigh per example, where it fits.
        loading: how the model loads, as `export` takes it: `input_shape`, `allow_unsafe`,
            `custom_objects`, `with_preprocessor`, `sequence_length` (`LoadingKeywords`).

    Raises:
        UsageError: an unknown head op.
    """
    ops = head_ops.parse_ops(head) if head is not None else None
    model = ModelSource(model_or_path, **loading).load()
    specs.ensure_graph_model(model)
    total = graph_flops(list(model.outputs)) or 1
    rows: list[LayerInfo] = []
    _inspect(model, prefix="", before=0, total=total, rows=rows, root=True, ops=ops)
    return rows


def _sizes(tensors: Sequence[Any], ops: Sequence[head_ops.HeadOp] | None) -> dict[str, Any]:
    shapes = [(tuple(t.shape), str(t.dtype)) for t in tensors]
    sizes = [head_ops.bytes_per_example(shape, dtype) for shape, dtype in shapes]
    result: dict[str, Any] = {
        "output_dtypes": tuple(dtype for _, dtype in shapes),
        "output_bytes": None if None in sizes else sum(size for size in sizes if size is not None),
    }
    if ops is not None and len(shapes) == 1:
        try:
            planned = head_ops.plan_head("preview", "layer", shapes[0][0], shapes[0][1], ops)
        except UsageError:
            return result
        result.update(
            head_shape=planned.shape,
            head_dtype=planned.dtype,
            head_bytes=head_ops.bytes_per_example(planned.shape, planned.dtype),
        )
    return result


def _inspect(
    container: Any,
    *,
    prefix: str,
    before: int,
    total: int,
    rows: list[LayerInfo],
    root: bool,
    ops: Sequence[head_ops.HeadOp] | None,
) -> None:
    for index, layer in enumerate(container.layers):
        nodes = _graph.call_nodes(layer, container)
        for call, node in enumerate(nodes):
            spec = f"{prefix}{layer.name}" + (f"@{call}" if len(nodes) > 1 else "")
            cost = before + graph_flops(list(node.output_tensors))
            rows.append(
                LayerInfo(
                    index=index if root else None,
                    spec=spec,
                    kind=type(layer).__name__,
                    output_shape=tuple(tuple(t.shape) for t in node.output_tensors),
                    parameters=int(layer.count_params()),
                    flops=cost,
                    share=cost / total,
                    **_sizes(node.output_tensors, ops),
                )
            )
            if _graph.is_graph_model(layer):
                feeding = before + graph_flops(list(node.input_tensors))
                _inspect(
                    layer, prefix=f"{spec}/", before=feeding, total=total, rows=rows, root=False, ops=ops
                )
