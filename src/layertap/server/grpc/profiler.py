"""`tensorflow.ProfilerService` on the gRPC port, as TF Serving registers it (`--enable_profiler`).

`tf.profiler.experimental.client.trace("grpc://host:port", logdir, duration_ms)` (and TensorBoard's
"capture profile") call `Profile`: the server traces itself for `duration_ms` with TensorFlow's own
profiler session and writes the XSpace to `<repository_root>/<session_id>/<host_name>.xplane.pb`
(the client sends `<logdir>/plugins/profile` as the root), where TensorBoard's profile plugin reads
it. `Terminate` ends a running trace early. `Monitor` is not offered (UNIMPLEMENTED).

Why not TensorFlow's profiler server behind a forwarding port: `tf.profiler.experimental.server.start`
always listens on `[::]:port`, every interface (measured), and `layertap serve` listens on loopback
unless told otherwise. Running the same TensorFlow profiler session here serves the same RPC on the
port, and the address, the server already has.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["PROFILER_SERVICE", "profiler_handler"]

logger = logging.getLogger(__name__)

PROFILER_SERVICE = "tensorflow.ProfilerService"
_F = descriptor_pb2.FieldDescriptorProto


def _messages() -> tuple[type[Any], type[Any], type[Any]]:
    """The fields of tensorflow/core/profiler/profiler_service.proto that the server reads or writes.

    The wheel ships no Python module for that file; unknown fields (tools, opts, ...) are skipped.
    """
    schema = descriptor_pb2.FileDescriptorProto(
        name="layertap/profiler_service_subset.proto", package="tensorflow", syntax="proto3"
    )
    request = schema.message_type.add(name="ProfileRequest")
    for name, number, kind in (
        ("duration_ms", 1, _F.TYPE_UINT64),
        ("repository_root", 5, _F.TYPE_STRING),
        ("session_id", 6, _F.TYPE_STRING),
        ("host_name", 7, _F.TYPE_STRING),
    ):
        request.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    response = schema.message_type.add(name="ProfileResponse")
    response.field.add(name="empty_trace", number=7, type=_F.TYPE_BOOL, label=_F.LABEL_OPTIONAL)
    terminate = schema.message_type.add(name="TerminateRequest")
    terminate.field.add(name="session_id", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    # A pool of its own: never clashes with TensorFlow's descriptors in the default pool.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(schema)
    classes = message_factory.GetMessages([schema], pool=pool)
    return (
        classes["tensorflow.ProfileRequest"],
        classes["tensorflow.ProfileResponse"],
        classes["tensorflow.TerminateRequest"],
    )


class _Profiler:
    """One trace at a time (TensorFlow's profiler is process-wide)."""

    def __init__(self) -> None:
        self._request, self._response, self._terminate = _messages()
        self._lock = threading.Lock()
        self._running: tuple[str, threading.Event] | None = None

    def profile(self, data: bytes, context: grpc.ServicerContext) -> bytes:
        request = self._request.FromString(data)
        if not request.repository_root:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ProfileRequest.repository_root is empty")
        finished = threading.Event()
        with self._lock:
            if self._running is not None:
                context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"Another profiling session is active ({self._running[0]}); try again when it ends",
                )
            self._running = (request.session_id, finished)
        try:
            xspace = self._trace(request.duration_ms / 1000, finished, context)
        finally:
            with self._lock:
                self._running = None
        # The client names the run directory: TensorFlow's sends <logdir>/plugins/profile and a time.
        run_dir = Path(request.repository_root) / (request.session_id or "session")
        run_dir.mkdir(parents=True, exist_ok=True)
        target = run_dir / f"{request.host_name or 'localhost'}.xplane.pb"
        target.write_bytes(xspace)
        logger.info("Profiled for %d ms: %s (%d bytes)", request.duration_ms, target, len(xspace))
        return bytes(self._response(empty_trace=not xspace).SerializeToString())

    @staticmethod
    def _trace(seconds: float, finished: threading.Event, context: grpc.ServicerContext) -> bytes:
        from tensorflow.python.profiler.internal import _pywrap_profiler

        session = _pywrap_profiler.ProfilerSession()
        try:
            session.start("", {})
        except Exception as error:  # another (local) profiler is running
            context.abort(grpc.StatusCode.UNAVAILABLE, f"Cannot start the profiler: {error}")
        try:
            # Until the duration passes, Terminate arrives, or the client goes away.
            finished.wait(max(0.0, min(seconds, context.time_remaining() or seconds)))
        finally:
            xspace = session.stop()
        return bytes(xspace)

    def terminate(self, data: bytes, context: grpc.ServicerContext) -> bytes:
        request = self._terminate.FromString(data)
        with self._lock:
            if self._running is not None and self._running[0] == request.session_id:
                self._running[1].set()
        return b""

    @staticmethod
    def monitor(data: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "layertap serve's profiler collects traces (Profile, as tf.profiler.experimental.client.trace "
            "calls it); Monitor is not offered",
        )
        return b""


def profiler_handler() -> grpc.GenericRpcHandler:
    """`tensorflow.ProfilerService` (Profile, Terminate, Monitor) on raw bytes, for the gRPC server."""
    profiler = _Profiler()
    methods: dict[str, Callable[[bytes, grpc.ServicerContext], bytes]] = {
        "Profile": profiler.profile,
        "Terminate": profiler.terminate,
        "Monitor": profiler.monitor,
    }
    return grpc.method_handlers_generic_handler(
        PROFILER_SERVICE,
        {name: grpc.unary_unary_rpc_method_handler(method) for name, method in methods.items()},
    )
