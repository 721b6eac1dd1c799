"""`layertap validate`: a pre-push rehearsal of what TF Serving does with a version, without Docker.

What TFX's InfraValidator checks in a real server, for any signature (not only tf.Example Predict):
- `check_compat` against the target release (`layertap.config.compat`): ops, attrs, REST dtypes;
- the version loads through `layertap serve`'s own loader (`layertap.server.runtime.servable`: TF
  Serving's TF1 session path into a fresh Graph and Session, TF Text's ops registered);
- every warmup record is read with the server's reader (TensorFlow's own TFRecord reader, checksums
  verified), parses as a PredictionLog, names existing signatures and runs through the server's replay of
  one record, at most 1000 records (TF Serving fails the whole version otherwise); unlike a load, which
  stops at the first failing record, every record is tried so the report lists them all;
- every signature answers a Predict through the server's request checks
  (`layertap.server.dataplane.predict`), built from its own metadata (random inputs of its dtypes and
  shapes, strings included) at batch 1 and at the configured batch; outputs are finite and have the
  manifest's shapes (`assets.extra/layertap.json`) when there is one;
- p50/p99 latency per signature at both batches, the resident memory the loaded version adds and the peak;
- reply bytes per example in both encodings (typed fields, TF Serving's default, and `tensor_content`),
  flagged when a reply at the configured batch would pass the 4 MiB receive limit most gRPC clients keep.
Failures make the report fail; flags are warnings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from google.protobuf.message import DecodeError

from layertap._json import json_fields
from layertap.config.compat import SERVING_VERSION, check_compat
from layertap.config.servers import server_release
from layertap.errors import ConfigError, TensorFormatError, UsageError
from layertap.exporter.samples import sample_inputs
from layertap.proto import serving_pb2 as pb
from layertap.storage.uri import parse_location
from layertap.version_folder import (
    DEFAULT_SIGNATURE,
    INIT_OP_SIGNATURE,
    MAX_WARMUP_RECORDS,
    WARMUP_PATH,
    has_saved_model,
    read_manifest,
)
from layertap.wire import codec, dtypes

if TYPE_CHECKING:
    from layertap.server.runtime.servable import Servable

__all__ = ["CLIENT_MESSAGE_LIMIT", "DEFAULT_BATCH", "ValidationReport", "validate_version"]

logger = logging.getLogger(__name__)

#: gRPC's default max receive message size, which most clients keep (grpc, grpc-java, grpc-go).
CLIENT_MESSAGE_LIMIT = 4 * 1024 * 1024
#: The batch rehearsed when none is given: layertap's GPU batching default `max_batch_size`.
DEFAULT_BATCH = 64
# The model name the rehearsal's requests carry (TF Serving echoes it; nothing reads it here).
_MODEL = "validate"


@dataclass
class ValidationReport:
    """Everything `validate_version` found; `passed` is False when any check failed."""

    path: str
    server: str
    batch: int
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    compat: dict[str, Any] = field(default_factory=dict)
    load_seconds: float | None = None
    memory: dict[str, int] = field(default_factory=dict)
    warmup: dict[str, Any] = field(default_factory=dict)
    signatures: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data."""
        return json_fields(self, passed=self.passed)


def validate_version(
    version_dir: str | Path,
    *,
    server: str = SERVING_VERSION,
    batch: int = DEFAULT_BATCH,
    runs: int = 20,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Rehearse serving `version_dir` on TF Serving `server` (see the module docstring).

    Args:
        version_dir: a SavedModel version directory (published or staged), or a gs:// URI of one (copied to
            a temporary folder through TensorFlow's own GCS client, as TF Serving would read it).
        server: the TF Serving release to check `compat` against.
        batch: the batch size clients or the batching config send (the largest a server batch holds).
        runs: timed runs per signature and batch size, after one untimed run.
        seed: seed of the random inputs.
        progress: called with a line of text at each stage.

    Raises:
        ConfigError: `server` is unknown or `batch`/`runs` is not positive (bad input, nothing checked), or
            nothing could be read at a gs:// `version_dir`.
        UsageError: `version_dir` is not a directory (nothing checked).
        LocationError: `version_dir` is a URI other than file:// and gs://.
    """
    server_release(server)
    if batch < 1 or runs < 1:
        raise ConfigError(f"batch and runs must be positive; got batch={batch}, runs={runs}")
    say = progress or (lambda message: logger.info("%s", message))
    place = parse_location(version_dir)
    if isinstance(place, Path):
        # A mistyped path is reported before TensorFlow is imported (seconds and ~0.9 GB).
        if not place.is_dir():
            state = "is not a directory" if place.exists() else "does not exist"
            raise UsageError(
                f"version directory {str(place)!r} {state}; expected a SavedModel version directory holding "
                "saved_model.pb, e.g. models/my_model/1"
            )
        return _validate(place, server, batch, runs=runs, seed=seed, say=say)
    from layertap.server.filesystem import local_copy

    say(f"copying {place} through TensorFlow's filesystem")
    with local_copy(str(place)) as copy:
        report = _validate(copy, server, batch, runs=runs, seed=seed, say=say)
    report.path = str(place)
    return report


def _validate(
    path: Path, server: str, batch: int, *, runs: int, seed: int, say: Callable[[str], None]
) -> ValidationReport:
    report = ValidationReport(path=str(path), server=server, batch=batch)
    say(f"checking {path} against the op registry of TF Serving {server}")
    try:
        verdict = check_compat(path, server)
    except ConfigError as error:
        report.failures.append(f"compat: {error}")
    else:
        report.compat = verdict.to_json()
        for problem in verdict.problems:
            (report.failures if problem.level == "error" else report.warnings).append(
                f"compat: {problem.located}"
            )
    try:
        manifest = read_manifest(path)
    except ConfigError as error:
        report.failures.append(f"manifest: {error}")
        manifest = None
    _rehearse(path, report, manifest, runs=runs, seed=seed, say=say)
    return report


def _rehearse(
    path: Path,
    report: ValidationReport,
    manifest: Mapping[str, Any] | None,
    *,
    runs: int,
    seed: int,
    say: Callable[[str], None],
) -> None:
    from layertap.server.runtime.servable import import_tensorflow

    if not has_saved_model(path):
        # What the session loader would say, without importing TensorFlow to hear it.
        report.failures.append(
            f"load: TF Serving's session loader cannot load {path}: it holds no saved_model.pb "
            "(a version directory holds saved_model.pb and variables/)"
        )
        return
    import_tensorflow()
    from layertap.server.runtime.servable import Servable, SessionSettings
    from layertap.server.status import StatusError

    records, read_error = _read_warmup(path)
    say("loading through the TF1 session loader")
    before = _memory()
    started = time.perf_counter()
    try:
        # `layertap serve`'s own loader: TF Serving's session path, TF Text's ops registered first.
        servable = Servable.load(_MODEL, 0, path, ["serve"], SessionSettings())
    except StatusError as error:
        report.failures.append(f"load: TF Serving's session loader cannot load {path}: {_first_line(error)}")
        return
    try:
        report.load_seconds = round(time.perf_counter() - started, 3)
        loaded = _memory()
        signatures = {key: value for key, value in servable.signatures.items() if key != INIT_OP_SIGNATURE}
        say("replaying the warmup records")
        _check_warmup(records, read_error, servable, report)
        manifest_signatures = (manifest or {}).get("signatures", {})
        for key, signature in sorted(signatures.items()):
            say(f"running signature {key} at batch 1 and {report.batch}")
            report.signatures[key] = _check_signature(
                servable, key, signature, manifest_signatures.get(key), report, runs=runs, seed=seed
            )
        after = _memory()
    finally:
        servable.close()
    report.memory = {
        "rss_before_load_bytes": before["rss"],
        "loaded_version_rss_bytes": loaded["rss"] - before["rss"],
        "rss_after_runs_bytes": after["rss"],
        "peak_rss_bytes": after["peak"],
    }


def _read_warmup(path: Path) -> tuple[list[bytes] | None, str]:
    """The warmup records (None without a warmup file) read by `layertap serve`'s reader (TensorFlow's,
    checksums verified), and why reading stopped early ("" when it did not)."""
    from layertap.server.management.warmup import read_records
    from layertap.server.status import StatusError

    warmup_file = path / WARMUP_PATH
    if not warmup_file.is_file():
        return None, ""
    records: list[bytes] = []
    try:
        for record in read_records(warmup_file):
            records.append(record)
    except StatusError as error:
        return records, f"TensorFlow cannot read record {len(records) + 1}: {_first_line(error)}"
    return records, ""


def _check_warmup(
    records: list[bytes] | None, read_error: str, servable: Servable, report: ValidationReport
) -> None:
    signatures = {key for key in servable.signatures if key != INIT_OP_SIGNATURE}
    if records is None:
        report.warmup = {"records": 0}
        if signatures:
            report.warnings.append("warmup: no warmup file; every signature initialises on its first request")
        return
    if read_error:
        report.failures.append(f"warmup: {read_error}; TF Serving fails the version's load")
    if len(records) > MAX_WARMUP_RECORDS:
        report.failures.append(
            f"warmup: {len(records)} records, more than {MAX_WARMUP_RECORDS}; TF Serving fails the "
            "version's load"
        )
    warmed: set[str] = set()
    for number, record in enumerate(records[:MAX_WARMUP_RECORDS], start=1):
        problem = _run_warmup_record(record, number, servable, warmed)
        if problem:
            report.failures.append(f"warmup record {number}: {problem}")
    cold = sorted(signatures - warmed)
    if cold:
        report.warnings.append(f"warmup: no record for {', '.join(cold)} (each is slow on its first request)")
    report.warmup = {"records": len(records), "signatures": sorted(warmed)}


def _run_warmup_record(record: bytes, number: int, servable: Servable, warmed: set[str]) -> str:
    """Why one warmup record fails ("" when it parses, names signatures the version has and runs).

    Unlike `layertap serve`, which stops at the first failing record as TF Serving does, every record is
    tried so that the report lists them all; each runs through the server's own replay of one record.
    """
    from layertap.server.management.warmup import record_call
    from layertap.server.status import StatusError

    try:
        log = pb.PredictionLog.FromString(record)
    except DecodeError:
        return "does not parse as a PredictionLog"
    names = _record_signatures(log)
    unknown = [name for name in names if name not in servable.signatures]
    if unknown:
        return (
            f"names signature {unknown[0]!r}, which the version does not have "
            f"({', '.join(sorted(servable.signatures))})"
        )
    try:
        record_call(log, number, servable.path, servable)()
    except StatusError as error:
        if not names:  # a log type TF Serving does not replay: the server's words say which
            return _first_line(error)
        signatures = ", ".join(repr(name) for name in names)
        return f"signature {signatures} fails on the record's inputs: {_first_line(error)}"
    warmed.update(names)
    return ""


def _record_signatures(log: pb.PredictionLog) -> list[str]:
    """The signatures a warmup record runs (an empty name is `serving_default`, as TF Serving reads it)."""
    kind = log.WhichOneof("log_type")
    if kind == "multi_inference_log":
        specs = [task.model_spec for task in log.multi_inference_log.request.tasks]
    elif kind in ("predict_log", "classify_log", "regress_log"):
        specs = [getattr(log, kind).request.model_spec]
    else:
        specs = []
    return [spec.signature_name or DEFAULT_SIGNATURE for spec in specs]


def _check_signature(
    servable: Servable,
    key: str,
    signature: Any,
    manifest_entry: Mapping[str, Any] | None,
    report: ValidationReport,
    *,
    runs: int,
    seed: int,
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    try:
        specs = [_input_spec(alias, info) for alias, info in sorted(signature.inputs.items())]
    except TensorFormatError as error:
        report.failures.append(f"signature {key}: cannot build an input: {error}")
        return result
    expected = {
        alias: entry.get("shape") for alias, entry in (manifest_entry or {}).get("outputs", {}).items()
    }
    for batch in sorted({1, report.batch}):
        inputs = _sample(specs, batch=batch, seed=seed)
        try:
            outputs = _run(servable, key, inputs)
        except Exception as error:
            report.failures.append(f"signature {key} at batch {batch}: {_first_line(error)}")
            return result
        for alias, array in outputs.items():
            problem = _output_problem(array, expected.get(alias), batch)
            if problem:
                report.failures.append(f"signature {key} output {alias!r} at batch {batch}: {problem}")
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            _run(servable, key, inputs)
            timings.append((time.perf_counter() - started) * 1000)
        result[f"batch_{batch}"] = {
            "p50_ms": round(float(np.percentile(timings, 50)), 3),
            "p99_ms": round(float(np.percentile(timings, 99)), 3),
            "outputs": {alias: list(np.shape(array)) for alias, array in outputs.items()},
        }
        if batch == report.batch:
            result["reply_bytes"] = _reply_bytes(key, outputs, batch, report)
    return result


def _input_spec(alias: str, info: Any) -> tuple[str, tuple[int | None, ...] | None, str]:
    shape = (
        None
        if info.tensor_shape.unknown_rank
        else tuple(d.size if d.size >= 0 else None for d in info.tensor_shape.dim)
    )
    return alias, shape, dtypes.from_proto(int(info.dtype)).name


def _sample(
    specs: list[tuple[str, tuple[int | None, ...] | None, str]], *, batch: int, seed: int
) -> dict[str, np.ndarray]:
    """Random inputs of each spec's dtype and shape; `batch` fills an open first dimension."""
    arrays: dict[str, np.ndarray] = {}
    for number, (alias, shape, dtype) in enumerate(specs):
        if shape == ():  # a scalar input: one value
            one = sample_inputs([(alias, (None,), dtype)], batch=1, seed=seed + number)
            arrays[alias] = one[alias].reshape(())
            continue
        known = shape or (None,)  # unknown rank: a batch of scalars
        rows = batch if known[0] is None else known[0]
        arrays.update(sample_inputs([(alias, known, dtype)], batch=rows, seed=seed + number))
    return arrays


def _run(servable: Servable, key: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One Predict through `layertap serve`'s request path (TF Serving's checks, the C API session run)."""
    from layertap.server.dataplane.predict import predict

    return predict(servable, _MODEL, key, inputs).outputs


def _output_problem(array: np.ndarray, expected: Any, batch: int) -> str:
    if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        return f"{bad} of {np.size(array)} values are NaN or infinite"
    if isinstance(expected, list):
        want = [batch if index == 0 and dim is None else dim for index, dim in enumerate(expected)]
        got = list(np.shape(array))
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got, strict=False)):
            return f"shape {got}, but the manifest says {expected} (batch {batch})"
    return ""


def _reply_bytes(
    key: str, outputs: Mapping[str, np.ndarray], batch: int, report: ValidationReport
) -> dict[str, Any]:
    spec = pb.ModelSpec(name="m", signature_name=key)
    sizes: dict[str, Any] = {}
    for encoding, tensor_content in (("typed", False), ("tensor_content", True)):
        try:
            size = len(codec.encode_predict_response(spec, outputs, tensor_content=tensor_content))
        except TensorFormatError as error:
            report.warnings.append(f"signature {key}: reply size not measured: {error}")
            return sizes
        sizes[f"{encoding}_per_example"] = math.ceil(size / batch)
        sizes[f"{encoding}_at_batch"] = size
        if size > CLIENT_MESSAGE_LIMIT:
            report.warnings.append(
                f"signature {key}: a reply at batch {batch} is {size} bytes in the {encoding} encoding, over "
                f"the {CLIENT_MESSAGE_LIMIT}-byte (4 MiB) receive limit most gRPC clients default to; raise "
                "the client's max_receive_message_length or send smaller batches"
            )
    return sizes


def _memory() -> dict[str, int]:
    """This process's resident memory and its peak, in bytes (Linux /proc; ru_maxrss elsewhere)."""
    values = {"rss": 0, "peak": 0}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                values["rss" if line.startswith("VmRSS") else "peak"] = int(line.split()[1]) * 1024
    except OSError:
        import resource

        values["peak"] = values["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return values


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
