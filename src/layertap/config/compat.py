"""Will a TF Serving release load this SavedModel? Answered from its op registry, not version strings.

A SavedModel written by a newer TensorFlow can use ops, or op attributes, an older server does not have;
it then fails to load there (`Op type not registered`, `NodeDef mentions attr ... not in Op`). Whether it
does is a fact of the graph: `check_compat` reads `saved_model.pb` without TensorFlow and compares every
node (graph and function library) with the profile of the server's TensorFlow (`layertap.config.servers`,
`layertap.config.opregistry`). An export from TensorFlow 2.21 usually loads on 2.16's server; one using an
op added since does not, and `check_compat` says which node.

layertap pins `tensorflow/serving` 2.21.0 (built on TensorFlow 2.21.0, the newest `layertap[tf]` installs).
To move the pin, change these constants and the `FROM` lines in docker/ (a test keeps them in step).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from layertap._json import json_fields
from layertap.config import opregistry, servers
from layertap.errors import ConfigError
from layertap.proto import serving_pb2 as pb
from layertap.storage.uri import parse_location
from layertap.version_folder import read_serve_meta_graph

__all__ = [
    "IMAGE_TENSORFLOW_VERSION",
    "SERVING_IMAGE_CPU",
    "SERVING_IMAGE_GPU",
    "SERVING_VERSION",
    "CompatProblem",
    "CompatReport",
    "check_compat",
    "is_newer",
    "parse_version",
]

#: The `tensorflow/serving` release the docker/ files pin.
SERVING_VERSION = "2.21.0"
SERVING_IMAGE_GPU = f"tensorflow/serving:{SERVING_VERSION}-gpu"
SERVING_IMAGE_CPU = f"tensorflow/serving:{SERVING_VERSION}"
#: The TensorFlow that model server is built on (`layertap.config.servers`).
IMAGE_TENSORFLOW_VERSION = servers.SERVER_RELEASES[SERVING_VERSION].tensorflow

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int]:
    """`"2.21.0"`, `"2.21.0-rc1"`, `"2.22.0-dev20260101"` -> (major, minor, patch); suffixes are ignored.

    Raises:
        ConfigError: `text` does not start with a dotted version number.
    """
    match = _VERSION.match(text)
    if match is None:
        raise ConfigError(f"not a TensorFlow version: {text!r}; expected something like '2.21.0'")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def is_newer(version: str, than: str) -> bool:
    """True when TensorFlow `version` is newer than `than` (numeric major.minor.patch comparison)."""
    return parse_version(version) > parse_version(than)


Level = Literal["error", "warning"]


@dataclass(frozen=True)
class CompatProblem:
    """One reason a TF Serving release would not load (error) or not fully serve (warning) a SavedModel.

    Attributes:
        level: "error" (the version fails to load there) or "warning" (it loads; something is limited).
        kind: "op", "attr" (unknown: ignored, or required: missing), "attr_value", "graph_version",
            "rest_dtype" or "custom_op".
        where: "graph", or "function NAME" for a node in the function library.
        node: the node's name ("" for problems that are not about one node).
        message: what is wrong, in TensorFlow's words where it has them.
    """

    level: Level
    kind: str
    where: str
    node: str
    message: str

    @property
    def located(self) -> str:
        """The message prefixed with the node it is about."""
        return f"{self.where} node {self.node!r}: {self.message}" if self.node else self.message

    def __str__(self) -> str:
        return f"{self.level}: {self.located}"


@dataclass(frozen=True)
class CompatReport:
    """`check_compat`'s answer: will TF Serving `server` load this version (and what it cannot return)."""

    path: str
    server: str
    server_tensorflow: str
    exported_with: str
    producer: int
    min_consumer: int
    problems: tuple[CompatProblem, ...]

    @property
    def compatible(self) -> bool:
        """True when no problem is an error."""
        return not any(problem.level == "error" for problem in self.problems)

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data."""
        return json_fields(
            self,
            skip=("producer", "min_consumer"),
            problems=[asdict(problem) for problem in self.problems],
            graph_def_versions={"producer": self.producer, "min_consumer": self.min_consumer},
            compatible=self.compatible,
        )


def check_compat(
    version_dir: str | os.PathLike[str], server: str = SERVING_VERSION, *, rest: bool = False
) -> CompatReport:
    """Will TF Serving release `server` load the SavedModel in `version_dir`? Read without TensorFlow.

    Every node of the `serve` graph and of every function in its library is checked against the op
    registry of the server's TensorFlow (`layertap.config.opregistry`). Errors: ops it does not register,
    attr values outside the allowed ones or below the minimum, attrs the server's op requires that the graph
    lacks. Warnings: attrs its op does not know (TensorFlow strips default-valued attrs when saving, so one
    that is present has a non-default value, which that server ignores), ops in no TensorFlow's registry
    (custom or TF Text ops the server may link), and signature tensors REST cannot return (float16,
    bfloat16; errors when `rest` is true).

    `version_dir` may be a gs:// or s3:// URI: its small files are read from the store (no TensorFlow, no
    variable shards; `layertap.storage.snapshot`).

    Raises:
        ConfigError: `server` is unknown, or `version_dir` holds no readable SavedModel with a `serve` graph.
        LocationError: an unsupported URI, or a store whose extra is not installed.
        StorageError: the store refused to list or read the version.
    """
    place = parse_location(version_dir)
    if not isinstance(place, Path):
        from layertap.storage.snapshot import sparse_copy, under_uri

        servers.server_release(server)  # an unknown release is refused before the store is reached
        with sparse_copy(place) as local:
            try:
                report = check_compat(local, server, rest=rest)
            except ConfigError as error:
                raise ConfigError(under_uri(str(error), local, place)) from None
        return replace(report, path=str(place))
    release = servers.server_release(server)
    profile = opregistry.load_profile(release.tensorflow)
    registry = _Registry(profile.tensorflow, release.tf_text, {**_text_ops(release.tf_text), **profile.ops})
    meta_graph = read_serve_meta_graph(place)
    graph = meta_graph.graph_def
    functions = {function.signature.name for function in graph.library.function}
    problems: list[CompatProblem] = []
    if graph.versions.min_consumer > profile.graph_def_version:
        problems.append(
            CompatProblem(
                "error",
                "graph_version",
                "graph",
                "",
                f"GraphDef min_consumer {graph.versions.min_consumer} is above TensorFlow "
                f"{registry.tensorflow}'s GraphDef version {profile.graph_def_version}",
            )
        )
    for node in graph.node:
        problems.extend(_check_node(node, "graph", registry, functions))
    for function in graph.library.function:
        for node in function.node_def:
            problems.extend(_check_node(node, f"function {function.signature.name}", registry, functions))
    problems.extend(_check_rest_dtypes(meta_graph, release.version, rest=rest))
    return CompatReport(
        path=str(version_dir),
        server=release.version,
        server_tensorflow=registry.tensorflow,
        exported_with=str(meta_graph.meta_info_def.tensorflow_version),
        producer=int(graph.versions.producer),
        min_consumer=int(graph.versions.min_consumer),
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class _Registry:
    """What one server registers: its TensorFlow's ops and those of the TF Text it links ("" unknown)."""

    tensorflow: str
    tf_text: str
    ops: Mapping[str, dict[str, opregistry.AttrDef]]


def _text_ops(tf_text: str) -> dict[str, dict[str, opregistry.AttrDef]]:
    """The ops TF Text `tf_text` registers (none when the version is unknown or has no profile)."""
    if tf_text not in opregistry.available_profiles(opregistry.TF_TEXT):
        return {}
    return opregistry.load_profile(tf_text, opregistry.TF_TEXT).ops


def _unregistered(op: str, registry: _Registry) -> tuple[Level, str, str]:
    """(level, kind, message) for an op the server does not register, by where else it is known."""
    if any(op in _text_ops(version) for version in opregistry.available_profiles(opregistry.TF_TEXT)):
        if not registry.tf_text:
            return (
                "warning",
                "custom_op",
                (
                    f"op {op!r} is a TF Text op; the TF Text this server links is not recorded, so compat "
                    "cannot say whether it has it"
                ),
            )
        return (
            "error",
            "op",
            (
                f"Op type not registered {op!r}: a TF Text op, and the server links TF Text "
                f"{registry.tf_text}, which does not have it"
            ),
        )
    if any(op in opregistry.load_profile(tf).ops for tf in opregistry.available_profiles()):
        return (
            "error",
            "op",
            f"Op type not registered {op!r} in TensorFlow {registry.tensorflow}, the server's",
        )
    return (
        "warning",
        "custom_op",
        (
            f"op {op!r} is in no TensorFlow's or TF Text's registry: a custom op, which loads only if the "
            "server links it"
        ),
    )


def _check_node(node: Any, where: str, registry: _Registry, functions: set[str]) -> Iterator[CompatProblem]:
    def problem(kind: str, message: str, level: Level = "error") -> CompatProblem:
        return CompatProblem(level, kind, where, str(node.name), message)

    if node.op in functions:
        return  # a call of a function in the library, checked node by node
    op_def = registry.ops.get(node.op)
    if op_def is None:
        level, kind, message = _unregistered(node.op, registry)
        yield problem(kind, message, level)
        return
    present = {key: node.attr[key] for key in sorted(node.attr)}
    for name, value in present.items():
        if name.startswith("_"):
            continue  # internal attrs (`_output_shapes`, `_class`, ...) are allowed on every op
        attr = op_def.get(name)
        if attr is None:
            # Measured with TensorFlow 2.16.1's session loader: ValidateNodeDef logs "NodeDef mentions
            # attribute ... This may be expected if your graph generating binary is newer than this binary.
            # Unknown attributes will be ignored." The version loads and the op runs without the attr.
            yield problem(
                "attr",
                f"NodeDef mentions attr {name!r} not in Op {node.op!r} of TensorFlow {registry.tensorflow}: "
                f"that server ignores it and runs the op as {registry.tensorflow} defines it, so the value "
                f"{_short(opregistry.attr_json(value))} has no effect there",
                "warning",
            )
            continue
        violation = _value_violation(attr, opregistry.attr_json(value))
        if violation:
            yield problem(
                "attr_value",
                f"attr {name!r} of op {node.op!r}: {violation} in TensorFlow {registry.tensorflow}, which "
                "refuses the node (at load, or when its function first runs: warmup or every request)",
            )
    for name, attr in op_def.items():
        if name not in present and attr.default is None:
            yield problem(
                "attr",
                f"op {node.op!r} requires attr {name!r} in TensorFlow {registry.tensorflow}, and the graph "
                "has none (its exporter's op has a default, which saving strips)",
            )


def _items(value: dict[str, Any], kind: str) -> list[Any]:
    """The scalar, or list elements, of kind `kind` ("type", "s", "i") in an AttrValue's JSON."""
    if kind in value:
        return [value[kind]]
    return list(value.get("list", {}).get(kind, []))


def _value_violation(attr: opregistry.AttrDef, value: dict[str, Any]) -> str:
    """Why `value` is not accepted by `attr` ("" when it is)."""
    kind = {"type": "type", "string": "s"}.get(attr.type.removeprefix("list(").removesuffix(")"))
    if attr.allowed is not None and kind is not None:
        allowed = _items(attr.allowed, kind)
        refused = [item for item in _items(value, kind) if item not in allowed]
        if refused:
            return f"value {_short(refused)} is not in the list of allowed values {_short(allowed)}"
    if attr.minimum is not None:
        if attr.type == "int" and "i" in value and int(value["i"]) < attr.minimum:
            return f"value {value['i']} is less than the minimum {attr.minimum}"
        if attr.type.startswith("list("):
            length = sum(len(items) for items in value.get("list", {}).values())
            if length < attr.minimum:
                return f"a list of {length} is shorter than the minimum length {attr.minimum}"
    return ""


def _check_rest_dtypes(meta_graph: Any, server: str, *, rest: bool) -> Iterator[CompatProblem]:
    for key in sorted(meta_graph.signature_def):
        signature = meta_graph.signature_def[key]
        for direction, entries in (("input", signature.inputs), ("output", signature.outputs)):
            for alias in sorted(entries):
                info = entries[alias]
                dtype = pb.DataType.Name(info.dtype) if info.dtype in _KNOWN_DTYPES else ""
                if dtype in servers.REST_UNSUPPORTED_DTYPES:
                    yield CompatProblem(
                        "error" if rest else "warning",
                        "rest_dtype",
                        f"signature {key}",
                        "",
                        f"signature {key!r} {direction} {alias!r} is {dtype}: TF Serving "
                        f"{server}'s REST API cannot write it as JSON (gRPC can)",
                    )


_KNOWN_DTYPES = frozenset(pb.DataType.values())


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."
