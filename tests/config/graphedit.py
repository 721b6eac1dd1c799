"""Edit a real SavedModel at the protobuf level (layertap's own schema, layertap/proto/graph.proto: no
TensorFlow), so a test's version carries exactly the problem it is about."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from layertap.proto import graph_pb2


def edit_graph(version_dir: Path, edit: Callable[[Any], None]) -> Path:
    """Apply `edit(meta_graph)` to the first MetaGraph of `version_dir/saved_model.pb`, in place."""
    path = version_dir / "saved_model.pb"
    saved_model = graph_pb2.SavedModel.FromString(path.read_bytes())
    edit(saved_model.meta_graphs[0])
    path.write_bytes(saved_model.SerializeToString())
    return version_dir


def function_node(meta_graph: Any, op: str) -> Any:
    """The first node running `op` in the MetaGraph's function library."""
    for function in meta_graph.graph_def.library.function:
        for node in function.node_def:
            if node.op == op:
                return node
    raise AssertionError(f"no {op} node in the function library")


def use_op(op: str, instead_of: str = "Mul") -> Callable[[Any], None]:
    """An edit that makes the first `instead_of` node run `op` (e.g. an op an older server lacks), with
    `instead_of`'s own attrs removed (internal `_` attrs stay)."""

    def edit(meta_graph: Any) -> None:
        node = function_node(meta_graph, instead_of)
        node.op = op
        for key in [key for key in node.attr if not key.startswith("_")]:
            del node.attr[key]

    return edit
