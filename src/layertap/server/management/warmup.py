"""Warmup replay: run a version's recorded requests before it takes traffic, as TF Serving does.

Records live in `assets.extra/tf_serving_warmup_requests`, a TFRecord file of `PredictionLog`s
(predict, classify, regress or multi_inference logs, as TF Serving replays them). Every
signature of a TF2 SavedModel initialises lazily, so each needs its own record; replaying them moves
that first-request cost to load time. A record that fails fails the load, as in TF Serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import grpc
from google.protobuf.message import DecodeError

from layertap.errors import TensorFormatError
from layertap.proto import serving_pb2 as pb
from layertap.server.dataplane import inference
from layertap.server.dataplane.predict import predict
from layertap.server.filesystem import Location
from layertap.server.runtime.servable import Servable
from layertap.server.status import InvalidArgument, StatusError, status_error
from layertap.version_folder import MAX_WARMUP_RECORDS, WARMUP_PATH
from layertap.wire import codec

__all__ = ["read_records", "record_call", "replay"]

logger = logging.getLogger(__name__)


def _data_loss(message: str) -> StatusError:
    # TF Serving's words for a file its TFRecord reader rejects.
    return status_error(
        grpc.StatusCode.DATA_LOSS, f"{message}. Please verify your warmup data is in TFRecord format."
    )


def read_records(path: Location) -> Iterator[bytes]:
    """The records of a TFRecord file, read by TensorFlow's own reader (checksums verified).

    Raises:
        StatusError: DATA_LOSS for a truncated file or a checksum mismatch, naming the file.
    """
    import tensorflow as tf

    try:
        yield from tf.compat.v1.io.tf_record_iterator(str(path))
    except tf.errors.DataLossError as error:
        raise _data_loss(_loss_detail(str(error.message), path)) from None


def _loss_detail(message: str, path: Location) -> str:
    """TensorFlow's `corrupted record at 12` / `truncated record at 37' failed...`, with the file named."""
    if message.startswith("truncated record at "):
        offset = int(message.split()[3].rstrip("'"))
        with path.open("rb") as stream:
            stream.seek(offset)
            length = int.from_bytes(stream.read(8).ljust(8, b"\0"), "little")
        return f"truncated record of {length} bytes at byte {offset} in {path}"
    if message.startswith("corrupted record at "):
        hint = " (Is this even a TFRecord file?)" if "Is this even a TFRecord file" in message else ""
        return f"corrupted record in {path}{hint}"
    return f"{message} in {path}"


def record_call(
    log: pb.PredictionLog, count: int, path: Location, servable: Servable, check: bool = False
) -> Callable[[], object]:
    """The call warmup record number `count` of `path` asks for: Predict, Classify, Regress or
    MultiInference, as TF Serving replays them (also `layertap validate`'s rehearsal of each record).

    `check` is `--enable_signature_method_name_check`: warmup runs the same checks as a live call.

    Raises:
        StatusError: INVALID_ARGUMENT for a log type TF Serving does not replay or an unreadable tensor.
    """
    kind = log.WhichOneof("log_type")
    request: inference.Request
    if kind == "predict_log":
        return _predict_call(log.predict_log.request, count, path, servable, check)
    if kind == "classify_log":
        request = log.classify_log.request
    elif kind == "regress_log":
        request = log.regress_log.request
    elif kind == "multi_inference_log":
        request = log.multi_inference_log.request
    else:
        raise InvalidArgument(
            f"Unsupported log_type for warmup in record {count} of {path}: {kind or 'none'}; TF Serving "
            "replays predict_log, classify_log, regress_log and multi_inference_log records"
        )
    return lambda: inference.infer(servable, request, check_method_name=check)


def _predict_call(
    request: pb.PredictRequest, count: int, path: Location, servable: Servable, check: bool
) -> Callable[[], object]:
    try:
        call = codec.decode_predict_request(request.SerializeToString())
    except TensorFormatError as error:
        raise InvalidArgument(f"warmup record {count} of {path}: {error}") from None
    return lambda: predict(
        servable,
        call.model_spec.name,
        call.model_spec.signature_name,
        call.inputs,
        output_filter=call.output_filter,
        check_method_name=check,
    )


def replay(
    servable: Servable,
    iterations: int = 0,
    stopping: threading.Event | None = None,
    *,
    check_method_names: bool = False,
) -> int:
    """Replay the warmup records of `servable`'s version directory, if it has any.

    Args:
        iterations: how often to run each record (`--num_request_iterations_for_warmup`); <= 0 means once.
        stopping: once set, the replay stops before the next run (CANCELLED).
        check_method_names: `--enable_signature_method_name_check`, as for live calls.

    Returns:
        The number of records read (0 without a warmup file).

    Raises:
        StatusError: too many records, an unsupported record type, or a request that failed.
    """
    path = servable.path / WARMUP_PATH
    if not path.is_file():
        return 0
    started = time.monotonic()
    count = 0
    for record in read_records(path):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise InvalidArgument(
                f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
            )
        try:
            log = pb.PredictionLog.FromString(record)
        except DecodeError:
            raise InvalidArgument(f"Failed to parse warmup record {count} from {path}") from None
        run = record_call(log, count, path, servable, check_method_names)
        for _ in range(max(1, iterations)):
            if stopping is not None and stopping.is_set():
                raise status_error(
                    grpc.StatusCode.CANCELLED, f"warmup of {path} stopped: the server is stopping"
                )
            try:
                run()
            except StatusError as error:
                raise status_error(
                    error.status, f"warmup record {count} of {path} failed: {error.message}"
                ) from None
    logger.info(
        "Finished reading warmup data for model at %s. Number of warmup records read: %d. "
        "Elapsed time (microseconds): %d.",
        path,
        count,
        int((time.monotonic() - started) * 1e6),
    )
    return count
