"""What a model repository on disk holds, read without TensorFlow.

Layout (as TF Serving reads it): `<base_path>/<version>/saved_model.pb` + `variables/` + optional
`assets.extra/`. Any child directory whose name is a non-negative int64 is a version; other names are ignored.
TF Serving never checks that a version is complete, so we do: a complete version has `saved_model.pb` (or
`saved_model.pbtxt`) and a `variables/` directory.

Signature names and the writing TensorFlow version come from `saved_model.pb` itself, decoded with the small
protobuf schema of `layertap/proto/graph.proto` (only the fields layertap reads; protobuf skips the rest).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from layertap.errors import ConfigError
from layertap.proto import graph_pb2
from layertap.proto import serving_pb2 as pb

__all__ = [
    "INT64_MAX",
    "MANIFEST_PATH",
    "MAX_WARMUP_RECORDS",
    "WARMUP_PATH",
    "SavedModelSummary",
    "VersionDir",
    "aspired_versions",
    "list_versions",
    "read_manifest",
    "read_saved_model_summary",
    "read_warmup_signatures",
]

logger = logging.getLogger(__name__)

INT64_MAX = 2**63 - 1

#: Where the layertap exporter writes its manifest, relative to a version directory.
MANIFEST_PATH = Path("assets.extra") / "layertap.json"
#: TF Serving's warmup file, relative to a version directory, and its record limit (more fails the load).
WARMUP_PATH = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000


@dataclass(frozen=True)
class VersionDir:
    """One numbered version directory and what it lacks to be loadable."""

    version: int
    path: Path
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """True when `saved_model.pb` and `variables/` are both present."""
        return not self.missing


@dataclass(frozen=True)
class SavedModelSummary:
    """What `config check` reads from a SavedModel: `serve` signatures and the TensorFlow that wrote it."""

    signature_names: frozenset[str]
    tensorflow_version: str


def list_versions(base_path: str | os.PathLike[str], *, contained: bool = False) -> dict[int, VersionDir]:
    """The version directories under `base_path`, by version number (empty if it is not a directory).

    THE rule for what a version is, shared by the exporter, `layertap serve` and `config check`: a child
    directory whose whole name is a non-negative int64. TF Serving also follows symlinks wherever they lead;
    `contained=True` (what `layertap serve` uses) ignores a version that is a symlink out of `base_path`.
    """
    base = Path(base_path)
    try:
        children = sorted(base.iterdir())
    except OSError:
        return {}
    versions: dict[int, VersionDir] = {}
    for child in children:
        name = child.name
        if not (name.isascii() and name.isdigit()) or int(name) > INT64_MAX or not child.is_dir():
            continue
        if contained and child.is_symlink() and not child.resolve().is_relative_to(base.resolve()):
            # A link out of the base path would serve whatever it points at: refuse the escape.
            logger.warning("ignoring version %s: a symlink to %s, outside %s", child, child.resolve(), base)
            continue
        version = int(name)
        # "0007" and "7" are the same version to TF Serving; the sorted order makes the choice stable.
        if version in versions:
            continue
        missing = []
        if not ((child / "saved_model.pb").is_file() or (child / "saved_model.pbtxt").is_file()):
            missing.append("saved_model.pb")
        if not (child / "variables").is_dir():
            missing.append("variables/")
        versions[version] = VersionDir(version, child, tuple(missing))
    return versions


def aspired_versions(policy: pb.ServableVersionPolicy, on_disk: Iterable[int]) -> list[int]:
    """The versions TF Serving tries to load under `policy`, given the versions on disk (ascending).

    `specific` versions that are not on disk are not included: TF Serving waits for them to appear.
    """
    present = sorted(set(on_disk))
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return present
    if choice == "specific":
        return sorted(set(policy.specific.versions) & set(present))
    count = policy.latest.num_versions or 1
    return present[-count:] if present else []


def read_saved_model_summary(version_dir: str | os.PathLike[str]) -> SavedModelSummary:
    """Signature names of the `serve` MetaGraph in `version_dir/saved_model.pb`, and its TensorFlow version.

    Raises:
        ConfigError: the file is missing, unreadable, not a SavedModel, or has no `serve` MetaGraph.
    """
    path = Path(version_dir) / "saved_model.pb"
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {str(path)!r}: {error.strerror}") from error
    saved_model = graph_pb2.SavedModel()
    try:
        saved_model.ParseFromString(data)
    except DecodeError as error:
        raise ConfigError(f"{str(path)!r} is not a SavedModel protobuf: {error}") from error
    meta_graphs = saved_model.meta_graphs
    for meta_graph in meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return SavedModelSummary(
                # `__saved_model_init_op` is TensorFlow's initialiser, stored as a signature; not callable.
                signature_names=frozenset(
                    key for key in meta_graph.signature_def if key != "__saved_model_init_op"
                ),
                tensorflow_version=str(meta_graph.meta_info_def.tensorflow_version),
            )
    tag_sets = [list(meta_graph.meta_info_def.tags) for meta_graph in meta_graphs]
    raise ConfigError(
        f"{str(path)!r} has no MetaGraph tagged 'serve' (the one TF Serving loads); tag sets: {tag_sets}"
    )


def read_manifest(version_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The exporter's manifest (`assets.extra/layertap.json`) as a dict, or None when there is none.

    Raises:
        ConfigError: the manifest exists but is not a JSON object.
    """
    path = Path(version_dir) / MANIFEST_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the export manifest {str(path)!r}: {error}") from error
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"the export manifest {str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(manifest, dict):
        raise ConfigError(
            f"the export manifest {str(path)!r} must hold a JSON object; got {type(manifest).__name__}"
        )
    return manifest


def read_warmup_signatures(version_dir: str | os.PathLike[str]) -> list[str] | None:
    """The signature named by each warmup record, in file order; None when the version has no warmup file.

    The file is a TFRecord of `PredictionLog`s: per record a little-endian uint64 length, a 4-byte CRC of
    it, the bytes, a 4-byte CRC of them. The framing is checked, not the CRCs (CRC-32C is not in the
    standard library; TF Serving checks them when it reads the file).

    Raises:
        ConfigError: the file is truncated or a record is not a PredictionLog with a predict_log.
    """
    path = Path(version_dir) / WARMUP_PATH
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"cannot read the warmup file {str(path)!r}: {error.strerror}") from error
    names: list[str] = []
    offset = 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise ConfigError(f"the warmup file {str(path)!r} is truncated at byte {offset}")
        length = int.from_bytes(data[offset : offset + 8], "little")
        start, end = offset + 12, offset + 12 + length
        if end + 4 > len(data):
            raise ConfigError(f"the warmup file {str(path)!r} is truncated in record {len(names) + 1}")
        log = pb.PredictionLog()
        try:
            log.ParseFromString(data[start:end])
        except DecodeError as error:
            raise ConfigError(
                f"warmup record {len(names) + 1} in {str(path)!r} is not a PredictionLog"
            ) from error
        if not log.HasField("predict_log"):
            raise ConfigError(
                f"warmup record {len(names) + 1} in {str(path)!r} is not a predict_log; layertap exports "
                "only warm up Predict"
            )
        names.append(log.predict_log.request.model_spec.signature_name or "serving_default")
        offset = end + 4
    return names
