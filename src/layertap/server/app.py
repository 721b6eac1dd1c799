"""Assemble and run `layertap serve`: models, gRPC server, health, reflection, signals.

`create_server(options)` loads the models and starts a server (tests bind port 0 and talk to it over a
real channel); `serve(options)` is the command: it runs until SIGTERM or SIGINT, then stops taking
requests, lets in-flight ones finish (up to `--drain_seconds`), unloads the models and returns 0.
TF Serving itself ignores SIGTERM; draining here is what a Kubernetes rollout wants.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
import time
from concurrent import futures
from pathlib import Path
from types import FrameType

import grpc

from layertap.errors import ConfigError, ConfigParseError, ServerError
from layertap.proto import serving_pb2 as pb
from layertap.server.dataplane.plane import DataPlane
from layertap.server.filesystem import read_text
from layertap.server.flags import ServerOptions
from layertap.server.grpc.profiler import profiler_handler
from layertap.server.grpc.reflection import enable_reflection
from layertap.server.grpc.servicer import build_handlers
from layertap.server.management.lifecycle import Lifecycle, StoppedWhileLoadingError, single_model_config
from layertap.server.management.loader import saved_model_loader
from layertap.server.management.registry import Registry
from layertap.server.rest.server import RestServer
from layertap.server.runtime.batching import BatchingOptions, BatchScheduler
from layertap.storage.uri import serving_base_path

__all__ = ["LayertapServer", "create_server", "serve"]

logger = logging.getLogger(__name__)

#: TF Serving accepts messages up to 2 GiB; gRPC's default of 4 MB would refuse most activations.
MAX_MESSAGE_BYTES = 2**31 - 1
# Threads beyond the Predict workers and queue, so refusals and status calls never wait for a thread.
_SPARE_THREADS = 4


def _read_model_config(path: str) -> pb.ModelServerConfig:
    """The --model_config_file, refused in TF Serving's words when it does not parse.

    TF Serving logs `Error parsing text-format tensorflow.serving.ModelServerConfig: 4:5: ...` and
    fails with `Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '<path>'`;
    operators and scripts grep for those lines.

    Raises:
        ConfigError: the file cannot be read, does not parse, or is refused.
        LocationError: the path is a URI TF Serving cannot read (only local files and gs://).
    """
    from layertap.config.models import parse_model_server_config

    try:
        return parse_model_server_config(read_text(path), path)
    except ConfigParseError as error:
        where = f"{error.line}:{error.column}: " if error.line is not None else ""
        logger.error(
            "Error parsing text-format %s: %s%s",
            _tf_serving_type_names(pb.ModelServerConfig.DESCRIPTOR.full_name),
            where,
            _tf_serving_type_names(error.reason),
        )
        raise ConfigError(
            f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{path}'"
        ) from None


def _tf_serving_type_names(text: str) -> str:
    """Our message types' names as TF Serving's (its package is tensorflow.serving)."""
    text = text.replace(
        "layertap.serving.ServableVersionPolicy",
        "tensorflow.serving.FileSystemStoragePathSourceConfig.ServableVersionPolicy",
    )
    return text.replace("layertap.serving.", "tensorflow.serving.")


def _probe_ports(options: ServerOptions) -> None:
    """Refuse a port another process holds before loading any model (a load can take minutes).

    Raises:
        ConfigError: --port or --rest_api_port is in use (or cannot be bound) on --bind_address.
    """
    host = options.bind_address
    for flag, port in (("--port", options.port), ("--rest_api_port", options.rest_api_port)):
        if not port:
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As the servers will: a port in TIME_WAIT is free, one with a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                reason = "already in use" if error.errno == errno.EADDRINUSE else error.strerror
                raise ConfigError(
                    f"{flag}={port}: cannot listen on {host}:{port}: {reason}; stop what holds it or choose "
                    "another port (no model was loaded)"
                ) from None


def _server_credentials(path: str) -> grpc.ServerCredentials:
    """TLS for the gRPC port from `--ssl_config_file`.

    Raises:
        ConfigError: the file does not parse, or its PEM text is missing or malformed.
    """
    from layertap.config.ssl import read_ssl_config

    ssl = read_ssl_config(path)
    return grpc.ssl_server_credentials(
        [(ssl.server_key.encode(), ssl.server_cert.encode())],
        root_certificates=ssl.custom_ca.encode() if ssl.custom_ca else None,
        require_client_auth=ssl.client_verify,
    )


class LayertapServer:
    """A running `layertap serve`: the gRPC server and REST API on one data plane, and health."""

    def __init__(self, options: ServerOptions, plane: DataPlane, runner: BatchScheduler | None) -> None:
        self.options = options
        self.plane = plane
        self._runner = runner
        self.port = 0
        self.rest_port = 0
        # Read before anything listens, so a bad monitoring config stops the start cleanly.
        self._metrics_path = _metrics_path(options.monitoring_config_file)
        self._rest: RestServer | None = None
        self._health: object | None = None
        workers = options.grpc_max_threads
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=workers + options.max_queued_requests + _SPARE_THREADS,
                thread_name_prefix="layertap-grpc",
            ),
            handlers=build_handlers(plane, tensor_content=options.enable_serialization_as_tensor_content),
            # --grpc_channel_arguments override these defaults (gRPC keeps the FIRST of duplicate keys).
            options=list(
                {
                    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
                    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
                    "grpc.so_reuseport": 0,
                    **dict(options.channel_arguments()),
                }.items()
            ),
        )
        if options.enable_grpc_healthcheck_service:
            from grpc_health.v1 import health, health_pb2, health_pb2_grpc

            servicer = health.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(servicer, self._grpc)
            servicer.set("", health_pb2.HealthCheckResponse.SERVING)
            self._health = servicer
        if options.enable_profiler:
            self._grpc.add_generic_rpc_handlers((profiler_handler(),))
        enable_reflection(self._grpc, health=options.enable_grpc_healthcheck_service)

    @property
    def address(self) -> str:
        """host:port clients connect to."""
        host = self.options.bind_address
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def start(self) -> int:
        """Bind and start serving; returns the port (the chosen one for --port=0).

        Raises:
            ServerError: the address cannot be bound.
        """
        host = self.options.bind_address
        target = f"[{host}]:{self.options.port}" if ":" in host else f"{host}:{self.options.port}"
        try:
            if self.options.ssl_config_file:
                self.port = self._grpc.add_secure_port(
                    target, _server_credentials(self.options.ssl_config_file)
                )
            else:
                self.port = self._grpc.add_insecure_port(target)
        except RuntimeError as error:
            raise ServerError(f"cannot listen on {target}: {error}") from None
        if not self.port:
            raise ServerError(f"cannot listen on {target}: the port is taken or the address is not local")
        if self.options.grpc_socket_path:
            # A UNIX socket skips TCP on the same host (TF Serving's --grpc_socket_path).
            socket_target = f"unix:{Path(self.options.grpc_socket_path).absolute()}"
            try:
                bound = self._grpc.add_insecure_port(socket_target)
            except RuntimeError as error:
                raise ServerError(f"cannot listen on {socket_target}: {error}") from None
            if not bound:
                raise ServerError(f"cannot listen on {socket_target}: the path is taken or not writable")
            logger.info("Running gRPC ModelServer at %s", socket_target)
        self._grpc.start()
        if self.options.rest_api_port:
            try:
                self._rest = RestServer(
                    self.plane,
                    host,
                    self.options.rest_api_port,
                    self.options.rest_api_timeout_in_ms,
                    self._metrics_path,
                )
            except OSError as error:
                self._grpc.stop(None)
                raise ServerError(f"cannot listen on {host}:{self.options.rest_api_port}: {error}") from None
            self._rest.start()
            self.rest_port = self._rest.port
            logger.info("Exporting HTTP/REST API at:%s:%d ...", host, self.rest_port)
        logger.info(
            "Running gRPC ModelServer at %s%s, serving %s",
            self.address,
            " (TLS)" if self.options.ssl_config_file else "",
            ", ".join(self.plane.lifecycle.model_names()),
        )
        return self.port

    def stop(self, grace: float | None = None) -> None:
        """Refuse new requests, wait up to `grace` seconds for in-flight ones, then unload every model."""
        if self._health is not None:
            # Health checks answer NOT_SERVING from now on, so load balancers stop sending.
            self._health.enter_graceful_shutdown()  # type: ignore[attr-defined]
        started = time.monotonic()
        if self._rest is not None:
            self._rest.stop()
        self._grpc.stop(grace).wait()
        logger.info("gRPC server stopped after %.2f s of draining", time.monotonic() - started)
        self.plane.lifecycle.stop()
        if self._runner is not None:
            self._runner.stop()

    def wait(self) -> None:
        """Block until the gRPC server terminates."""
        self._grpc.wait_for_termination()


def create_server(
    options: ServerOptions, *, stopping: threading.Event | None = None
) -> tuple[LayertapServer, int]:
    """Load the models `options` name, then start serving them; returns the server and its port.

    Blocks until every model has a version AVAILABLE (as TF Serving does before it opens its port).

    Args:
        options: the server's flags.
        stopping: set (e.g. by a signal handler) to stop; loading, warmup and polling watch it.

    Raises:
        ConfigError: the config file or SSL config is invalid, or a port is in use (checked before
            any model loads).
        ServerError: a model could not be loaded, or the port could not be bound.
        StoppedWhileLoadingError: `stopping` was set before the models were loaded; nothing was left running.
    """
    _probe_ports(options)
    if options.ssl_config_file:
        # Checked now, as the docstring promises: it is read again only once every model has loaded.
        _server_credentials(options.ssl_config_file)
    runner = _runner(options)
    registry = Registry()
    lifecycle = Lifecycle(options, registry, saved_model_loader(options, runner, stopping), stopping)
    plane = DataPlane(
        registry,
        lifecycle,
        workers=options.grpc_max_threads,
        queue=options.max_queued_requests,
        check_method_names=options.enable_signature_method_name_check,
    )
    if options.model_config_file:
        config = _read_model_config(options.model_config_file)
        source = options.model_config_file
    else:
        config = single_model_config(options.model_name, serving_base_path(options.model_base_path))
        source = f"--model_name={options.model_name} --model_base_path={options.model_base_path}"
    logger.info("Serving models from %s", source)
    try:
        lifecycle.start(config)
        if options.model_config_file:
            lifecycle.watch_config_file(options.model_config_file, _read_model_config)
        server = LayertapServer(options, plane, runner)
        port = server.start()
    except BaseException:
        lifecycle.stop()
        if runner is not None:
            runner.stop()
        raise
    return server, port


def _metrics_path(monitoring_config_file: str) -> str | None:
    if not monitoring_config_file:
        return None
    from layertap.config.monitoring import PROMETHEUS_PATH, read_monitoring_config

    config = read_monitoring_config(monitoring_config_file).prometheus_config
    if not config.enable:
        return None
    path = config.path or PROMETHEUS_PATH
    logger.info("Prometheus metrics at %s on the REST port", path)
    return path


def _runner(options: ServerOptions) -> BatchScheduler | None:
    """The batching runner every servable's session calls go through with --enable_batching, else None."""
    if not options.enable_batching:
        return None
    from layertap.config.batching import BatchingSettings, read_batching_config

    settings = (
        read_batching_config(options.batching_parameters_file)
        if options.batching_parameters_file
        else BatchingSettings()
    )
    batching = BatchingOptions.from_settings(settings, cpus=os.cpu_count() or 1)
    logger.info(
        "Batching: max_batch_size %d, batch_timeout_micros %d, max_enqueued_batches %d, "
        "num_batch_threads %d%s",
        batching.max_batch_size,
        batching.batch_timeout_micros,
        batching.max_enqueued_batches,
        batching.num_batch_threads,
        f", allowed_batch_sizes {list(batching.allowed_batch_sizes)}" if batching.allowed_batch_sizes else "",
    )
    return BatchScheduler(batching)


def serve(options: ServerOptions) -> int:
    """Run `layertap serve` until SIGTERM or SIGINT; drain, unload, and return the exit code 0.

    The signal handler only requests the stop (it sets an event, as in gRPC's graceful-shutdown
    example); loading, warmup, polling and the serving loop watch that event. A stop while models load
    ends the start promptly (no retry, nothing opened) and also exits 0.
    """
    stopping = threading.Event()
    received: list[str] = []

    def on_signal(number: int, frame: FrameType | None) -> None:
        # No logging or raising here: the handler runs between two bytecodes of whatever the main
        # thread does (it may hold the logging lock, or be inside a load that must not see an error).
        received.append(signal.Signals(number).name)
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            server, _ = create_server(options, stopping=stopping)
        except StoppedWhileLoadingError:
            logger.info("Received %s while loading models: stopping", received[0] if received else "a stop")
            logger.info("layertap serve stopped before serving")
            return 0
        try:
            while not stopping.wait(0.5):
                pass
            logger.info("Received %s: draining in-flight requests", received[0] if received else "a stop")
        finally:
            server.stop(options.drain_seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("layertap serve exited cleanly")
    return 0
