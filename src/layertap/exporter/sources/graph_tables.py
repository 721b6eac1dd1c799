"""Lookup tables a TF2 signature function captures, rebuilt in the TF1 graph the exporter writes.

A TF2 SavedModel restores a `tf.lookup.StaticHashTable` (vocabularies, label maps) as a resource the
signature functions capture, like a variable's handle. The exporter's TF1 graph needs a table of its own:
this module reads the loaded table's contents (`LookupTableExportV2`, which every hash table kernel
implements: `tensorflow/core/kernels/lookup_table_op.h`) and recreates it as a `HashTableV2` filled by
`LookupTableImportV2` in the graph's table initializer, which `SavedModelBuilder` stores as the
MetaGraph's main op. TF Serving's loader runs that op once when it loads the version, before any request
(TensorFlow's `tensorflow/cc/saved_model/loader.cc`, `RunInitOp`, the C++ loader TF Serving links).
The contents travel as constants in `saved_model.pb`: the original's vocabulary asset is not needed.

Only tables the functions read are rebuilt (`LookupTableFindV2`, `LookupTableSizeV2`,
`LookupTableExportV2`): a function that inserts into or removes from a table (a `MutableHashTable` used as
state) would need that state kept across requests, which a copy of the contents taken at export time does
not give; such a capture is refused, naming the ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from layertap.errors import UnsupportedModelError

__all__ = ["READ_OPS", "TableContents", "read_table", "rebuild_table"]

#: Ops that only read a table: a table used by these alone can be copied.
READ_OPS = frozenset({"LookupTableFindV2", "LookupTableSizeV2", "LookupTableExportV2"})
# The reads that carry the table's dtypes: op -> (key dtype attr, value dtype attr).
_TYPED_READS = {"LookupTableFindV2": ("Tin", "Tout"), "LookupTableExportV2": ("Tkeys", "Tvalues")}
# Ops that pass a resource handle through unchanged.
_PASS_THROUGH = frozenset({"Identity", "IdentityN"})


@dataclass(frozen=True)
class TableContents:
    """A table's entries, read from the loaded SavedModel."""

    keys: np.ndarray
    values: np.ndarray
    key_dtype: Any
    value_dtype: Any


def read_table(external: Any, graph_def: Any, placeholder: str, key: str) -> TableContents:
    """The contents of the table a signature captures as `external` (eager handle), fed in the
    inlined `graph_def` through `placeholder`; run eagerly.

    Raises:
        UnsupportedModelError: the resource is not a table the signature only reads, or its contents
            cannot be exported.
    """
    import tensorflow as tf

    dtypes = _read_dtypes(graph_def, placeholder, key)
    try:
        keys, values = tf.raw_ops.LookupTableExportV2(
            table_handle=external, Tkeys=dtypes[0], Tvalues=dtypes[1]
        )
    except (tf.errors.OpError, TypeError) as error:
        raise UnsupportedModelError(
            f"signature {key!r} reads a table whose contents cannot be exported "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); layertap rebuilds hash tables "
            "(tf.lookup.StaticHashTable, a MutableHashTable the signatures only read)"
        ) from None
    return TableContents(keys.numpy(), values.numpy(), *dtypes)


def _read_dtypes(graph_def: Any, placeholder: str, key: str) -> tuple[Any, Any]:
    """The (key dtype, value dtype) of the table fed through `placeholder`, from the ops reading it.

    Raises:
        UnsupportedModelError: an op other than a read uses the handle (the table is state, see the
            module docstring), or none reads it as a table (another kind of resource).
    """
    import tensorflow as tf

    consumers: dict[str, list[Any]] = {}
    for node in graph_def.node:
        for source in node.input:
            consumers.setdefault(source.lstrip("^").split(":")[0], []).append(node)
    found: tuple[Any, Any] | None = None
    others: set[str] = set()
    pending, seen = [placeholder.split(":", maxsplit=1)[0]], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in consumers.get(name, []):
            if node.op in _PASS_THROUGH:
                pending.append(node.name)
            elif node.op in _TYPED_READS:
                keys, values = _TYPED_READS[node.op]
                found = tf.dtypes.as_dtype(node.attr[keys].type), tf.dtypes.as_dtype(node.attr[values].type)
            elif node.op not in READ_OPS:
                others.add(node.op)
    if others or found is None:
        used = f"used by {', '.join(sorted(others))}" if others else "that no op reads as a table"
        raise UnsupportedModelError(
            f"signature {key!r} captures a resource {used}: a table the signature changes, or another "
            "stateful object, whose state a copy made at export time would not keep; layertap rebuilds "
            f"the variables and the hash tables a signature only reads ({', '.join(sorted(READ_OPS))})"
        )
    return found


def rebuild_table(contents: TableContents, name: str) -> Any:
    """The handle of a new `HashTableV2` holding `contents`, in the default (TF1) graph; its filling op
    joins the graph's table initializers (`tf.compat.v1.tables_initializer()`)."""
    import tensorflow as tf

    handle = tf.raw_ops.HashTableV2(key_dtype=contents.key_dtype, value_dtype=contents.value_dtype, name=name)
    fill = tf.raw_ops.LookupTableImportV2(
        table_handle=handle,
        keys=tf.constant(contents.keys),
        values=tf.constant(contents.values),
        name=f"{name}_import",
    )
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.TABLE_INITIALIZERS, fill)
    return handle
