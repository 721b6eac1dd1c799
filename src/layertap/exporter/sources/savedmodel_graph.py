"""SavedModels with no Keras model behind them: list their inner tensors, add a signature per chosen one.

Two kinds of graph, told apart by the MetaGraph's object graph (TF2's `tf.saved_model.save` writes one, TF1's
`SavedModelBuilder` and Estimator exports do not):

- **TF1 graphs** hold every op in the main graph, so an inner tensor can be fetched by name: the new version
  is the original with a SignatureDef added per tensor. `variables/` and `assets/` are copied byte for byte.
- **TF2 function graphs** (`tf.Module` + `tf.saved_model.save`, a Keras 3 `model.export()` folder) hold the
  computation in functions: a signature's graph is `Placeholder -> StatefulPartitionedCall -> Identity`. Each
  signature function is inlined (Grappler's function inlining, the first step of TensorFlow's own
  `convert_variables_to_constants_v2`) and imported into one TF1 graph, where every variable it captures
  becomes ONE resource variable shared by all signatures; the version is written by `SavedModelBuilder` with
  the original signatures (same keys and aliases) and one per chosen tensor. No weight is frozen into the
  graph, so the variables are stored once, whatever the number of signatures (only the variables the
  signatures use are kept: a Keras `model.export()` folder, which stores every weight twice, keras#23553,
  comes out at half its size).

TF Serving's session loader runs a fetch by pruning the graph to what it needs, so a signature for an early
tensor computes only its prefix. Tensor names are the graph's node names, `:K` for output K > 0; inside
functions the `StatefulPartitionedCall/` scopes of the inlined calls are dropped (`functional_1/d1_1/Relu`).

Why one module of ~490 lines: listing, resolving and writing share the private `_Graph` (the inlined graph
and the variables it captures) and its naming rules; split, the halves would pass that structure across a
module boundary for no reader's benefit.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from layertap.errors import LayerNotFoundError, UsageError

__all__ = [
    "GraphTensor",
    "GraphVersion",
    "friendly",
    "is_savedmodel",
    "list_tensors",
    "signature_key",
    "write_version",
]

_TAGS = ["serve"]
# Ops whose outputs are not worth a signature: plumbing, constants, variable reads, control.
_PLUMBING = frozenset(
    {
        "Const", "Identity", "IdentityN", "NoOp", "Placeholder", "PlaceholderWithDefault", "ReadVariableOp",
        "VarHandleOp", "VariableV2", "VarIsInitializedOp", "AssignVariableOp", "Assign", "RestoreV2",
        "SaveV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "StaticRegexFullMatch", "Shape",
        "Pack", "StridedSlice", "Fill", "ConcatV2", "TensorListReserve",
    }
)  # fmt: skip
# Per new signature: (input alias -> tensor name, output alias -> tensor name).
_Added = dict[str, tuple[dict[str, str], dict[str, str]]]
_CALL_SCOPE = re.compile(r"(?:^|/)(?:Stateful)?PartitionedCall(?:_\d+)?(?=/)")


@dataclass(frozen=True)
class GraphTensor:
    """An inner tensor a signature can return.

    Attributes:
        name: what to pass to `--layer` (node name, `:K` for output K > 0, call scopes dropped).
        op: the producing op's type.
        shape: static shape (None for an unknown dimension; () when the rank is unknown).
        dtype: dtype name.
        signature: the original signature whose graph computes it.
    """

    name: str
    op: str
    shape: tuple[int | None, ...]
    dtype: str
    signature: str


@dataclass
class GraphVersion:
    """What `write_version` wrote: per signature, its inputs and outputs as alias -> (shape, dtype).

    It holds the graph it was written from until `close()`: `reference()` runs an added tensor there.
    """

    kind: str  # "tf1" or "tf2"
    signatures: dict[str, tuple[_Specs, _Specs]]
    added: dict[str, tuple[dict[str, str], dict[str, str]]]
    original_variables_bytes: int
    variables_bytes: int
    parameter_bytes: int
    _loaded: Any = None

    def reference(self, key: str, feeds: dict[str, Any]) -> Any:
        """The value of added signature `key`'s tensor in the graph it was cut from."""
        inputs, outputs = self.added[key]
        return self._loaded.session.run(
            outputs[key], {inputs[alias]: value for alias, value in feeds.items()}
        )

    def close(self) -> None:
        """Release the session holding the source graph."""
        self._loaded.session.close()


def is_savedmodel(path: Path) -> bool:
    """A directory holding a SavedModel (saved_model.pb or .pbtxt)."""
    return path.is_dir() and any((path / f"saved_model.{ext}").is_file() for ext in ("pb", "pbtxt"))


def _meta_graph(path: Path) -> Any:
    from tensorflow.python.saved_model import loader_impl

    try:
        saved = loader_impl.parse_saved_model(str(path))
    except Exception as error:  # IOError for an unreadable file, DecodeError for a damaged one
        raise UsageError(
            f"{path} holds a saved_model file that does not parse as a SavedModel "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); it may be "
            "truncated or corrupted"
        ) from None
    for meta_graph in saved.meta_graphs:
        if set(_TAGS) <= set(meta_graph.meta_info_def.tags):
            return meta_graph
    raise UsageError(f"{path} has no MetaGraph tagged 'serve' (the one TF Serving loads); nothing to export")


def _is_tf2(meta_graph: Any) -> bool:
    return bool(meta_graph.object_graph_def.nodes)


def friendly(node_name: str) -> str:
    """A node name without the scopes of inlined function calls."""
    return _CALL_SCOPE.sub("", node_name).lstrip("/")


# --- building the graph both inspect and export read -------------------------------------------------


@dataclass
class _Graph:
    """A TF1 graph in a session, with the original signatures as (inputs, outputs) alias -> tensor name."""

    graph: Any
    session: Any
    kind: str
    signatures: dict[str, tuple[dict[str, str], dict[str, str]]]
    # per tensor (graph name): the original signature computing it and its friendly name
    tensors: dict[str, tuple[str, str]] = field(default_factory=dict)
    variables: list[Any] = field(default_factory=list)
    # the op filling the rebuilt lookup tables (graph_tables), run by TF Serving when it loads the version
    main_op: Any = None


def _load(path: Path) -> _Graph:
    import tensorflow as tf

    from layertap.tftext import load_tf_text_ops

    load_tf_text_ops()
    meta_graph = _meta_graph(path)
    if _is_tf2(meta_graph):
        return _inline_tf2(path, meta_graph)
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        loaded = tf.compat.v1.saved_model.loader.load(session, _TAGS, str(path))
    signatures = {
        key: (
            {alias: info.name for alias, info in definition.inputs.items()},
            {alias: info.name for alias, info in definition.outputs.items()},
        )
        for key, definition in loaded.signature_def.items()
        if definition.inputs and definition.outputs
    }
    result = _Graph(graph, session, "tf1", signatures)
    for key, (inputs, outputs) in signatures.items():
        for op_name in _reachable(graph.as_graph_def(), inputs.values(), outputs.values()):
            for tensor in graph.get_operation_by_name(op_name).outputs:
                result.tensors.setdefault(tensor.name, (key, tensor.name))
    return result


def _inline_tf2(path: Path, meta_graph: Any) -> _Graph:
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants

    from layertap.exporter.sources.graph_tables import read_table, rebuild_table

    loaded = tf.saved_model.load(str(path))
    by_handle = {
        id(item.handle): item
        for item in tf.train.TrackableView(loaded).descendants()
        if isinstance(item, tf.Variable)
    }
    # Grappler's function inlining, as convert_variables_to_constants_v2 runs it first: every call (nested
    # ones too) becomes ops of one GraphDef, the captures stay placeholders. Tables are read here, eagerly.
    functions = {
        key: loaded.signatures[key] for key in sorted(meta_graph.signature_def) if key in loaded.signatures
    }
    graph_defs = {
        key: convert_to_constants._run_inline_graph_optimization(
            function, lower_control_flow=False, aggressive_inlining=True
        )
        for key, function in functions.items()
    }
    tables = {
        id(external): read_table(external, graph_defs[key], internal.name, key)
        for key, function in functions.items()
        for external, internal in function.graph.captures
        if external.dtype == tf.resource and id(external) not in by_handle
    }
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    result = _Graph(graph, session, "tf2", {})
    created: dict[int, Any] = {}
    with graph.as_default():
        for key, function in functions.items():
            graph_def = graph_defs[key]
            input_map = {}
            for external, internal in function.graph.captures:
                if id(external) in tables and id(external) not in created:
                    created[id(external)] = rebuild_table(tables[id(external)], f"table_{len(created)}")
                input_map[internal.name] = _captured(external, by_handle, created, result)
            scope = re.sub(r"[^A-Za-z0-9_.\-/]", "_", key)
            tf.graph_util.import_graph_def(graph_def, input_map=input_map, name=scope)
            arguments = tf.nest.flatten(function.structured_input_signature)
            inputs = {
                str(spec.name): f"{scope}/{tensor.name}"
                for spec, tensor in zip(arguments, function.inputs, strict=False)
            }
            outputs = dict(
                zip(
                    sorted(function.structured_outputs),
                    [f"{scope}/{tensor.name}" for tensor in function.outputs],
                    strict=True,
                )
            )
            result.signatures[key] = (inputs, outputs)
            for op_name in _reachable(graph.as_graph_def(), inputs.values(), outputs.values()):
                for tensor in graph.get_operation_by_name(op_name).outputs:
                    result.tensors.setdefault(tensor.name, (key, friendly(tensor.name[len(scope) + 1 :])))
    values = [by_handle[handle_id].numpy() for handle_id in created if handle_id in by_handle]
    with graph.as_default():
        result.session.run([variable.initializer for variable in result.variables])
        if tables:
            result.main_op = tf.compat.v1.tables_initializer(name="init_tables")
            result.session.run(result.main_op)
        for variable, value in zip(result.variables, values, strict=True):
            variable.load(value, result.session)
    return result


def _captured(external: Any, by_handle: dict[int, Any], created: dict[int, Any], result: _Graph) -> Any:
    """The tensor of the new graph standing for a captured eager tensor: a variable's handle (one
    variable per original, shared by every signature), a table's handle (rebuilt before, in `created`),
    or a constant's value."""
    import tensorflow as tf

    if external.dtype != tf.resource:
        return tf.constant(external.numpy())
    if id(external) not in created:
        original = by_handle[id(external)]
        # Zeros here, the values loaded below: an initializer holding the values would store every
        # weight a second time, in saved_model.pb.
        variable = tf.compat.v1.get_variable(
            re.sub(r"[^A-Za-z0-9_.\-/]", "_", original.name.split(":")[0]),
            shape=original.shape,
            dtype=original.dtype,
            initializer=tf.compat.v1.zeros_initializer(),
            use_resource=True,
        )
        created[id(external)] = variable.handle
        result.variables.append(variable)
    return created[id(external)]


def _reachable(graph_def: Any, inputs: Any, outputs: Any) -> list[str]:
    """Ops between the inputs and the outputs (what a signature computes), without the plumbing."""
    by_name = {node.name: node for node in graph_def.node}
    stop = {name.split(":")[0] for name in inputs}
    seen: set[str] = set()
    pending = [name.split(":")[0] for name in outputs]
    order: list[str] = []
    while pending:
        name = pending.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        node = by_name[name]
        if name not in stop and node.op not in _PLUMBING:
            order.append(name)
        if name in stop:
            continue
        pending.extend(_node(source) for source in node.input if not source.startswith("^"))
    return sorted(order)


_Specs = dict[str, tuple[tuple[int | None, ...], str]]


def _shape(tensor: Any) -> tuple[int | None, ...]:
    return () if tensor.shape.rank is None else tuple(tensor.shape.as_list())


def list_tensors(path: Path) -> list[GraphTensor]:
    """The inner tensors of the SavedModel at `path` that a signature can return."""
    loaded = _load(path)
    try:
        rows: dict[str, GraphTensor] = {}
        for tensor_name, (key, name) in sorted(loaded.tensors.items(), key=lambda item: item[1]):
            tensor = loaded.graph.get_tensor_by_name(tensor_name)
            shown = name.removesuffix(":0")
            if shown not in rows and tensor.dtype.name != "resource":
                rows[shown] = GraphTensor(shown, tensor.op.type, _shape(tensor), tensor.dtype.name, key)
        return sorted(rows.values(), key=lambda row: row.name)
    finally:
        loaded.session.close()


def _resolve(loaded: _Graph, spec: str) -> str:
    """The graph tensor name of a `--layer` spec (a friendly name, or a graph name)."""
    wanted = spec if ":" in spec else f"{spec}:0"
    for tensor_name, (_, name) in loaded.tensors.items():
        if wanted in (tensor_name, name if ":" in name else f"{name}:0"):
            return tensor_name
    import difflib

    known = sorted({name for _, name in loaded.tensors.values()})
    nearest = difflib.get_close_matches(spec, known, n=5, cutoff=0.4)
    raise LayerNotFoundError(
        f"tensor {spec!r} is not computed by any signature of the SavedModel"
        + (f"; nearest: {', '.join(nearest)}" if nearest else "")
        + f" ({len(known)} tensors; `layertap inspect DIR` lists them)"
    )


def signature_key(spec: str) -> str:
    """The signature key (and output alias) of a tensor spec: TensorFlow-valid, `:0` dropped."""
    from layertap.names import tensorflow_name

    return tensorflow_name(spec[:-2] if spec.endswith(":0") else spec.replace(":", "_"))


def write_version(
    path: Path, specs: Sequence[str], staging: Path, progress: Callable[[str], None]
) -> GraphVersion:
    """Write the SavedModel at `path` with a signature per tensor spec added, into `staging`.

    Raises:
        LayerNotFoundError: a spec names no tensor the signatures compute.
        UsageError: a spec's key is already a signature key.
    """
    loaded = _load(path)
    try:
        return _write(path, specs, staging, progress, loaded)
    except BaseException:
        loaded.session.close()
        raise


def _write(
    path: Path, specs: Sequence[str], staging: Path, progress: Callable[[str], None], loaded: _Graph
) -> GraphVersion:
    chosen: dict[str, str] = {}
    for spec in specs:
        key = signature_key(spec)
        if key in loaded.signatures:
            raise UsageError(
                f"--layer {spec!r} would be signature {key!r}, which the SavedModel already has; "
                f"its signatures: {sorted(loaded.signatures)}"
            )
        chosen[key] = _resolve(loaded, spec)
    added: _Added = {}
    for key, tensor_name in chosen.items():
        origin = loaded.tensors[tensor_name][0]
        inputs, _ = loaded.signatures[origin]
        needed = _needed_inputs(loaded.graph.as_graph_def(), inputs, tensor_name)
        added[key] = (needed, {key: tensor_name})
    progress(f"writing {len(loaded.signatures)} original and {len(added)} new signature(s)")
    if loaded.kind == "tf1":
        _write_tf1(path, staging, loaded, added)
    else:
        _write_tf2(staging, loaded, added)
    everything = {**loaded.signatures, **added}
    return GraphVersion(
        kind=loaded.kind,
        signatures={key: _specs(loaded.graph, *pair) for key, pair in everything.items()},
        added=added,
        original_variables_bytes=_bytes(path / "variables"),
        variables_bytes=_bytes(staging / "variables"),
        parameter_bytes=_parameter_bytes(staging / "variables" / "variables"),
        _loaded=loaded,
    )


def _parameter_bytes(prefix: Path) -> int:
    """Bytes of the values in a checkpoint (each variable's elements times its dtype's size)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    dtypes = reader.get_variable_to_dtype_map()
    total = 0
    for name, shape in reader.get_variable_to_shape_map().items():
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH" and dtypes[name].is_numpy_compatible:
            total += int(np.prod(shape)) * dtypes[name].size
    return total


def _needed_inputs(graph_def: Any, inputs: dict[str, str], tensor_name: str) -> dict[str, str]:
    """The signature inputs `tensor_name` depends on (TF Serving requires every input it lists)."""
    by_name = {node.name: node for node in graph_def.node}
    feeds = {name.split(":")[0]: alias for alias, name in inputs.items()}
    found: set[str] = set()
    seen: set[str] = set()
    pending = [_node(tensor_name)]
    while pending:
        name = pending.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        if name in feeds:
            found.add(feeds[name])
            continue
        pending.extend(_node(source) for source in by_name[name].input)
    return {alias: inputs[alias] for alias in sorted(found)}


def _node(tensor_name: str) -> str:
    """`scope/op:1` or `^scope/op` -> `scope/op`."""
    return tensor_name.lstrip("^").split(":", maxsplit=1)[0]


def _specs(graph: Any, inputs: dict[str, str], outputs: dict[str, str]) -> tuple[_Specs, _Specs]:
    def spec(name: str) -> tuple[tuple[int | None, ...], str]:
        tensor = graph.get_tensor_by_name(name)
        return _shape(tensor), tensor.dtype.name

    return {a: spec(n) for a, n in inputs.items()}, {a: spec(n) for a, n in outputs.items()}


def _signature_def(graph: Any, inputs: dict[str, str], outputs: dict[str, str]) -> Any:
    import tensorflow as tf

    def info(name: str) -> Any:
        return tf.compat.v1.saved_model.utils.build_tensor_info(graph.get_tensor_by_name(name))

    return tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
        inputs={alias: info(name) for alias, name in inputs.items()},
        outputs={alias: info(name) for alias, name in outputs.items()},
        method_name=tf.saved_model.PREDICT_METHOD_NAME,
    )


def _write_tf1(path: Path, staging: Path, loaded: _Graph, added: _Added) -> None:
    """The original version with SignatureDefs added: variables and assets copied as they are."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.saved_model import loader_impl

    saved: Any = saved_model_pb2.SavedModel()
    saved.CopyFrom(loader_impl.parse_saved_model(str(path)))
    for child in path.iterdir():
        if child.name in ("saved_model.pb", "saved_model.pbtxt"):
            continue
        target = staging / child.name
        if child.is_dir():
            shutil.copytree(child, target, dirs_exist_ok=True)
        else:
            shutil.copy2(child, target)
    with loaded.graph.as_default():
        definitions = {key: _signature_def(loaded.graph, *pair) for key, pair in added.items()}
    for meta_graph in saved.meta_graphs:
        if set(_TAGS) <= set(meta_graph.meta_info_def.tags):
            for key, definition in definitions.items():
                meta_graph.signature_def[key].CopyFrom(definition)
    (staging / "saved_model.pb").write_bytes(saved.SerializeToString())


def _write_tf2(staging: Path, loaded: _Graph, added: _Added) -> None:
    """One TF1 MetaGraph: the inlined signatures and the new ones, over variables stored once."""
    import tensorflow as tf

    with loaded.graph.as_default():
        signature_defs = {
            key: _signature_def(loaded.graph, inputs, outputs)
            for key, (inputs, outputs) in {**loaded.signatures, **added}.items()
        }
        staging.rmdir()  # SavedModelBuilder refuses an existing directory
        builder = tf.compat.v1.saved_model.Builder(str(staging))
        builder.add_meta_graph_and_variables(
            loaded.session,
            _TAGS,
            signature_def_map=signature_defs,
            strip_default_attrs=True,
            main_op=loaded.main_op,
        )
        builder.save()


def _bytes(directory: Path) -> int:
    if not directory.is_dir():
        return 0
    return sum(item.stat().st_size for item in directory.rglob("*") if item.is_file())
