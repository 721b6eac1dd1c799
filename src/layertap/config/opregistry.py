"""Op-registry profiles: every op a TensorFlow registers, with its attrs, attr types, defaults and limits.

A profile is the compact, committed form of a TensorFlow's `OpList` (what the C API's `TF_GetAllOpList()`
returns), written by tools/dump_op_registry.py from PyPI's `tensorflow-cpu` wheel of that version:
`op_registries/tensorflow-<version>.json.gz` holds
`{"tensorflow": "2.17.0", "source": "...", "graph_def_version": N, "min_consumer": M,
"ops": {op: {attr: {"type", "default"?, "allowed"?, "minimum"?}}}}`
(`graph_def_version` is the GraphDef version that TensorFlow writes, TF_GRAPH_DEF_VERSION: a graph whose
`min_consumer` is above it is refused; `min_consumer` is the oldest GraphDef producer version it still loads)
where `default` and `allowed` are AttrValues (layertap/proto/graph.proto) in protobuf's JSON mapping.
Reading a profile needs no TensorFlow; `live_profile` (tests, the dump tool) imports it.
"""

from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from layertap.errors import ConfigError
from layertap.proto import graph_pb2

__all__ = [
    "PROFILE_DIR",
    "TENSORFLOW",
    "TF_TEXT",
    "AttrDef",
    "Profile",
    "attr_json",
    "available_profiles",
    "live_profile",
    "load_profile",
    "profile_from_oplist",
    "write_profile",
]

PROFILE_DIR = Path(str(resources.files("layertap.config") / "op_registries"))


@dataclass(frozen=True)
class AttrDef:
    """One attr of an op: its type ("int", "list(type)", ...), default, allowed values and minimum."""

    type: str
    default: Any = None
    allowed: Any = None
    minimum: int | None = None


@dataclass(frozen=True)
class Profile:
    """The op registry of one TensorFlow release."""

    tensorflow: str
    source: str
    graph_def_version: int
    min_consumer: int
    ops: dict[str, dict[str, AttrDef]]

    def to_json(self) -> dict[str, Any]:
        """The committed JSON form (attr fields that are unset are omitted)."""
        ops: dict[str, dict[str, dict[str, Any]]] = {}
        for op, attrs in sorted(self.ops.items()):
            ops[op] = {}
            for name, attr in attrs.items():
                entry: dict[str, Any] = {"type": attr.type}
                if attr.default is not None:
                    entry["default"] = attr.default
                if attr.allowed is not None:
                    entry["allowed"] = attr.allowed
                if attr.minimum is not None:
                    entry["minimum"] = attr.minimum
                ops[op][name] = entry
        return {
            "tensorflow": self.tensorflow,
            "source": self.source,
            "graph_def_version": self.graph_def_version,
            "min_consumer": self.min_consumer,
            "ops": ops,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        """Inverse of `to_json`."""
        ops = {
            op: {
                name: AttrDef(entry["type"], entry.get("default"), entry.get("allowed"), entry.get("minimum"))
                for name, entry in attrs.items()
            }
            for op, attrs in data["ops"].items()
        }
        return cls(
            str(data["tensorflow"]),
            str(data["source"]),
            int(data["graph_def_version"]),
            int(data["min_consumer"]),
            ops,
        )


def attr_json(value: Message) -> Any:
    """An AttrValue in protobuf's JSON mapping: the one form defaults and node attrs are compared in."""
    return json_format.MessageToDict(value, preserving_proto_field_name=True)


def profile_from_oplist(
    serialized: bytes, *, tensorflow: str, source: str, graph_def_version: int, min_consumer: int
) -> Profile:
    """The profile of a serialized `OpList`.

    Raises:
        ConfigError: `serialized` is not an OpList.
    """
    op_list = graph_pb2.OpList()
    try:
        op_list.ParseFromString(serialized)
    except DecodeError as error:
        raise ConfigError(f"not a serialized OpList: {error}") from error
    ops: dict[str, dict[str, AttrDef]] = {}
    for op in op_list.op:
        ops[op.name] = {
            attr.name: AttrDef(
                type=attr.type,
                default=attr_json(attr.default_value) if attr.HasField("default_value") else None,
                allowed=attr_json(attr.allowed_values) if attr.HasField("allowed_values") else None,
                minimum=int(attr.minimum) if attr.has_minimum else None,
            )
            for attr in op.attr
        }
    return Profile(tensorflow, source, graph_def_version, min_consumer, ops)


def live_profile() -> Profile:
    """The profile of the TensorFlow this process imports (imports TensorFlow)."""
    import tensorflow as tf
    from tensorflow.python.client import pywrap_tf_session

    buffer = pywrap_tf_session.TF_GetAllOpList()
    return profile_from_oplist(
        pywrap_tf_session.TF_GetBuffer(buffer),
        tensorflow=tf.__version__,
        source=f"tensorflow {tf.__version__} (installed), TF_GetAllOpList()",
        graph_def_version=int(tf.version.GRAPH_DEF_VERSION),
        min_consumer=int(tf.version.GRAPH_DEF_VERSION_MIN_CONSUMER),
    )


#: The file name prefix of TensorFlow's registries and of TF Text's ops (what a model server links besides).
TENSORFLOW, TF_TEXT = "tensorflow", "tf-text"


def _path(version: str, directory: Path | None = None, kind: str = TENSORFLOW) -> Path:
    return (directory or PROFILE_DIR) / f"{kind}-{version}.json.gz"


def write_profile(
    profile: Profile, directory: Path | None = None, *, kind: str = TENSORFLOW, version: str = ""
) -> Path:
    """Write `profile` as deterministic gzipped JSON (same registry, same bytes); returns the path.

    `kind=TF_TEXT` writes the ops TF Text `version` adds to TensorFlow `profile.tensorflow`.
    """
    path = _path(version or profile.tensorflow, directory, kind)
    text = json.dumps(profile.to_json(), sort_keys=True, separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
    return path


def available_profiles(kind: str = TENSORFLOW) -> list[str]:
    """The TensorFlow (or, with `kind=TF_TEXT`, TF Text) versions with a committed profile."""
    suffix = ".json.gz"
    return sorted(
        path.name.removeprefix(f"{kind}-").removesuffix(suffix)
        for path in PROFILE_DIR.glob(f"{kind}-[0-9]*{suffix}")
    )


@functools.cache
def load_profile(tensorflow: str, kind: str = TENSORFLOW) -> Profile:
    """The committed profile of TensorFlow `tensorflow` ("2.17.0"), or with `kind=TF_TEXT` the ops of TF
    Text `tensorflow` ("2.12.1").

    Raises:
        ConfigError: there is no profile for that version, or it is unreadable.
    """
    path = _path(tensorflow, kind=kind)
    try:
        data = json.loads(gzip.decompress(path.read_bytes()))
    except FileNotFoundError:
        raise ConfigError(
            f"no op-registry profile for {'TF Text' if kind == TF_TEXT else 'TensorFlow'} {tensorflow}; "
            f"profiles: {', '.join(available_profiles(kind)) or 'none'} (tools/dump_op_registry.py)"
        ) from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the op-registry profile {str(path)!r}: {error}") from error
    return Profile.from_json(data)
