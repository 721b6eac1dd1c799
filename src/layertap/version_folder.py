"""One version folder (`<base_path>/<version>/`): its file names, limits and readers, without TensorFlow.

What TF Serving reads in a version folder, and what layertap adds to it:

- `saved_model.pb`: the SavedModel. Only the MetaGraph tagged `serve` is loaded; a request that names no
  signature gets `serving_default` (`tensorflow_serving/servables/tensorflow/predict_util.cc`,
  `kDefaultServingSignatureDefKey` in TensorFlow's `signature_constants`). `read_serve_meta_graph` is the
  one parser of this file outside TensorFlow: `config check`, `compat` and `validate` all read it here,
  through the small schema of `layertap/proto/graph.proto` (protobuf skips the fields it does not declare).
- `assets.extra/tf_serving_warmup_requests`: a TFRecord file of `PredictionLog`s replayed before the
  version takes traffic; more than 1000 records, or one that fails, fails the whole load
  (`tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc`, `kMaxNumRecords`).
- `assets.extra/layertap.json`: the exporter's manifest (what each signature serves), read by `compare`,
  `extract`, the version gate and `config check`; `assets.extra/layertap_validation.json`: the report of
  `export(validate=True)`. TF Serving ignores both (it reads only the warmup file in `assets.extra`).

Imported by `layertap.client` and `layertap.config`, so it must never import TensorFlow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError

from layertap._atomic import write_atomically
from layertap.errors import ConfigError
from layertap.proto import serving_pb2 as pb

if TYPE_CHECKING:
    from layertap.proto import graph_pb2

__all__ = [
    "ASSETS_EXTRA",
    "DEFAULT_SIGNATURE",
    "INIT_OP_SIGNATURE",
    "MANIFEST_FORMAT",
    "MANIFEST_PATH",
    "MAX_WARMUP_RECORDS",
    "SAVED_MODEL_FILES",
    "VALIDATION_REPORT_PATH",
    "WARMUP_PATH",
    "SavedModelSummary",
    "has_saved_model",
    "parse_manifest",
    "read_manifest",
    "read_saved_model_summary",
    "read_serve_meta_graph",
    "read_warmup_signatures",
    "warmup_records",
    "write_manifest",
]

#: The signature a request that names none is answered by.
DEFAULT_SIGNATURE = "serving_default"
#: TensorFlow stores a TF2 SavedModel's initialiser among the signatures; it is not callable by clients.
INIT_OP_SIGNATURE = "__saved_model_init_op"
#: The graph files a loadable version holds (binary, or text format), in the order TensorFlow looks.
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")

#: Paths relative to the version folder, '/'-separated (also object keys below `<base>/<version>/`).
ASSETS_EXTRA = PurePosixPath("assets.extra")
WARMUP_PATH = ASSETS_EXTRA / "tf_serving_warmup_requests"
MANIFEST_PATH = ASSETS_EXTRA / "layertap.json"
VALIDATION_REPORT_PATH = ASSETS_EXTRA / "layertap_validation.json"

#: TF Serving refuses a warmup file with more records than this (the version fails to load).
MAX_WARMUP_RECORDS = 1000
#: The manifest layout `write_manifest` writes; bumped when a reader could misread the new one.
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class SavedModelSummary:
    """What `config check` reads from a SavedModel: `serve` signatures and the TensorFlow that wrote it."""

    signature_names: frozenset[str]
    tensorflow_version: str


def has_saved_model(version_dir: str | os.PathLike[str]) -> bool:
    """True when the folder holds `saved_model.pb` or `saved_model.pbtxt` (what a loader looks for first)."""
    return any((Path(version_dir) / name).is_file() for name in SAVED_MODEL_FILES)


def read_serve_meta_graph(version_dir: str | os.PathLike[str]) -> graph_pb2.MetaGraphDef:
    """The MetaGraph tagged `serve` (the one TF Serving loads) of `version_dir/saved_model.pb`.

    Raises:
        ConfigError: the file is missing, unreadable, not a SavedModel, or has no `serve` MetaGraph.
    """
    # Imported here: the client takes only the names from this module, never a graph.
    from layertap.proto import graph_pb2

    path = Path(version_dir) / SAVED_MODEL_FILES[0]
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {str(path)!r}: {error.strerror}") from error
    try:
        saved_model = graph_pb2.SavedModel.FromString(data)
    except DecodeError as error:
        raise ConfigError(f"{str(path)!r} is not a SavedModel protobuf: {error}") from error
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return meta_graph
    tag_sets = [list(meta_graph.meta_info_def.tags) for meta_graph in saved_model.meta_graphs]
    raise ConfigError(
        f"{str(path)!r} has no MetaGraph tagged 'serve' (the one TF Serving loads); tag sets: {tag_sets}"
    )


def read_saved_model_summary(version_dir: str | os.PathLike[str]) -> SavedModelSummary:
    """Signature names of the `serve` MetaGraph in `version_dir/saved_model.pb`, and its TensorFlow version.

    Raises:
        ConfigError: as `read_serve_meta_graph`.
    """
    meta_graph = read_serve_meta_graph(version_dir)
    return SavedModelSummary(
        signature_names=frozenset(key for key in meta_graph.signature_def if key != INIT_OP_SIGNATURE),
        tensorflow_version=str(meta_graph.meta_info_def.tensorflow_version),
    )


def parse_manifest(text: str | bytes, source: str) -> dict[str, Any]:
    """A manifest's JSON text as a dict; `source` names where it came from, for the error.

    Raises:
        ConfigError: the text is not JSON, or not a JSON object.
    """
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"the export manifest {source!r} is not valid JSON: {error}") from error
    if not isinstance(manifest, dict):
        raise ConfigError(
            f"the export manifest {source!r} must hold a JSON object; got {type(manifest).__name__}"
        )
    return manifest


def read_manifest(version_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The exporter's manifest (`assets.extra/layertap.json`) as a dict, or None when there is none.

    Raises:
        ConfigError: the manifest exists but is unreadable or not a JSON object.
    """
    path = Path(version_dir) / MANIFEST_PATH
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"cannot read the export manifest {str(path)!r}: {error}") from error
    return parse_manifest(data, str(path))


def write_manifest(version_dir: str | os.PathLike[str], manifest: Mapping[str, Any]) -> Path:
    """Write `manifest` as indented JSON to `version_dir/assets.extra/layertap.json`, whole or not at all."""
    path = Path(version_dir) / MANIFEST_PATH
    write_atomically(path, (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode("utf-8"))
    return path


def warmup_records(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """The records of the TFRecord file at `path`, framing checked, checksums not.

    Per record: a little-endian uint64 length, a 4-byte CRC of it, the bytes, a 4-byte CRC of them
    (`tensorflow/core/lib/io/record_reader.cc`). CRC-32C is not in the standard library; `layertap serve`
    and `validate` read the file with TensorFlow's own reader
    (`layertap.server.management.warmup.read_records`), which verifies them as TF Serving does. This
    reader is for the tools that run without TensorFlow.

    Raises:
        ConfigError: the file cannot be read or is truncated.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read the warmup file {str(path)!r}: {error.strerror}") from error
    offset = count = 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise ConfigError(f"the warmup file {str(path)!r} is truncated at byte {offset}")
        length = int.from_bytes(data[offset : offset + 8], "little")
        start, end = offset + 12, offset + 12 + length
        count += 1
        if end + 4 > len(data):
            raise ConfigError(f"the warmup file {str(path)!r} is truncated in record {count}")
        yield data[start:end]
        offset = end + 4


def read_warmup_signatures(version_dir: str | os.PathLike[str]) -> list[str] | None:
    """The signature named by each warmup record, in file order; None when the version has no warmup file.

    Raises:
        ConfigError: the file is truncated or a record is not a PredictionLog with a predict_log.
    """
    path = Path(version_dir) / WARMUP_PATH
    if not path.exists():
        return None
    names: list[str] = []
    for number, record in enumerate(warmup_records(path), start=1):
        try:
            log = pb.PredictionLog.FromString(record)
        except DecodeError as error:
            raise ConfigError(f"warmup record {number} in {str(path)!r} is not a PredictionLog") from error
        if not log.HasField("predict_log"):
            raise ConfigError(
                f"warmup record {number} in {str(path)!r} is not a predict_log; layertap exports "
                "only warm up Predict"
            )
        names.append(log.predict_log.request.model_spec.signature_name or DEFAULT_SIGNATURE)
    return names
