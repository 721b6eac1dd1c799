"""TF Serving's REST API (`--rest_api_port`): the HTTP server in front of the REST endpoints.

`GET /v1/models/M[/versions/V|/labels/L]` is the model status (the usual readiness probe),
`.../metadata` the signatures, `POST ...:predict` takes `{"signature_name", "instances"|"inputs"}`,
`:classify` and `:regress` take `{"signature_name", "context", "examples"}`. With
`--monitoring_config_file`, Prometheus metrics are served at the configured path. `endpoints`
answers each call on the data plane; an error's gRPC code becomes an HTTP status once, here, by TF
Serving's table.

The HTTP server is uvicorn (asyncio, h11): connections cost no thread, so slow or idle clients
cannot exhaust the server; request bodies are bounded per request and in total while being read;
model calls run on a bounded thread pool. Every answer to an HTTP request is JSON
(`{"error": ...}` on failure), including unknown paths and methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import uvicorn

from layertap.server.dataplane import metrics
from layertap.server.dataplane.admission import Deadline
from layertap.server.dataplane.plane import DataPlane
from layertap.server.rest.encode import error_body
from layertap.server.rest.endpoints import Endpoints
from layertap.server.rest.routes import route
from layertap.server.status import QUEUE_FULL_MESSAGE, FailedPrecondition, NotFound, StatusError, Unavailable

__all__ = ["MAX_BODY_BYTES", "RestServer", "http_status"]

logger = logging.getLogger(__name__)

# TF Serving's http_server.cc: gRPC code -> HTTP status.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
#: One request body may be this large; JSON this size is better sent over gRPC.
MAX_BODY_BYTES = 64 * 2**20
#: All bodies being read or served at once hold at most this much memory.
_BODY_BUDGET_BYTES = 512 * 2**20
#: REST calls running at once on the thread pool; beyond it (plus the data plane's own bound) 503.
_WORKERS = 16
_JSON = [(b"content-type", b"application/json")]
#: What is read and dropped of a chunked body after it passed MAX_BODY_BYTES (see `_discard_rest`).
_DISCARD_BYTES = 16 * 2**20
_DISCARD_SECONDS = 5.0

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status TF Serving answers for a gRPC status code."""
    return _HTTP_STATUS.get(code, 500)


class _BodyTooLargeError(Exception):
    """`size` is the body's length, or None for a chunked body that did not end while it was discarded."""

    def __init__(self, size: int | None) -> None:
        super().__init__(size)
        self.size = size


class RestApp:
    """The ASGI application: route, read the body, answer the call on a worker thread.

    Args:
        plane: the data plane.
        timeout_ms: `--rest_api_timeout_in_ms`, the deadline of every REST call.
        metrics_path: where Prometheus metrics are served, or None.
    """

    def __init__(self, plane: DataPlane, timeout_ms: int, metrics_path: str | None) -> None:
        self.endpoints = Endpoints(plane)
        self.timeout_ms = timeout_ms
        self.metrics_path = metrics_path
        self.pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="layertap-rest")
        self._slots = threading.BoundedSemaphore(_WORKERS)
        self._body_bytes = 0

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets are not served
        method = scope["method"]
        path = scope.get("raw_path", scope["path"].encode()).split(b"?", 1)[0].decode("latin-1")
        if method == "GET" and self.metrics_path and path == self.metrics_path:
            text = metrics.METRICS.render()  # cheap: a scrape never waits for a worker slot
            await _answer(send, 200, text.encode(), [(b"content-type", b"text/plain; version=0.0.4")])
            return
        deadline = Deadline(self.timeout_ms / 1000 if self.timeout_ms > 0 else None)
        try:
            body = await self._serve(scope, method, path, receive, deadline)
            await _answer(send, 200, body, _JSON)
        except StatusError as error:
            await _answer(send, http_status(error.status), error_body(error.message), _JSON)
        except _BodyTooLargeError as error:
            size = f"more than {MAX_BODY_BYTES}" if error.size is None else str(error.size)
            message = (
                f"Request body of {size} bytes exceeds the {MAX_BODY_BYTES} bytes layertap serve "
                "reads per REST request; send large tensors over gRPC"
            )
            await _answer(send, 413, error_body(message), [*_JSON, (b"connection", b"close")])
        except TimeoutError:
            message = f"Request body not received within --rest_api_timeout_in_ms={self.timeout_ms}"
            await _answer(send, 408, error_body(message), [*_JSON, (b"connection", b"close")])
        except _DisconnectedError:
            return  # nobody is left to answer
        except Exception as error:  # a bug: still a JSON answer, and the traceback in the log
            logger.exception("REST %s %s failed unexpectedly", method, path)
            await _answer(send, 500, error_body(f"{type(error).__name__}: {error}"), _JSON)

    async def _serve(
        self, scope: dict[str, Any], method: str, path: str, receive: Receive, deadline: Deadline
    ) -> bytes:
        # The whole body is read first, as TF Serving does, so every answer leaves the connection
        # ready for the next request.
        size = _content_length(scope)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLargeError(size)
        self._reserve(size)
        try:
            body = await self._read(receive, deadline)
            if not path.lower().startswith("/v1/"):
                raise NotFound(f"Not found: {method} {path} (TF Serving's REST API lives under /v1/models/)")
            if method == "OPTIONS":
                origin = dict(scope.get("headers", [])).get(b"origin", b"")
                if origin.startswith((b"http://", b"https://")):
                    return b""
                raise FailedPrecondition("Origin header is missing in CORS preflight")
            call = route(method, path)
            answer: bytes = await self._run(lambda: self.endpoints.answer(call, body, deadline))
            return answer
        finally:
            self._body_bytes -= size

    def _reserve(self, size: int) -> None:
        # Runs on the event loop thread only, so the counter needs no lock.
        if self._body_bytes + size > _BODY_BUDGET_BYTES:
            raise Unavailable(QUEUE_FULL_MESSAGE)
        self._body_bytes += size

    async def _read(self, receive: Receive, deadline: Deadline) -> bytes:
        chunks: list[bytes] = []
        received = 0
        timeout = deadline.timeout_ms()
        async with asyncio.timeout(None if timeout is None else timeout / 1000):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _DisconnectedError
                chunk = message.get("body", b"")
                received += len(chunk)
                more = bool(message.get("more_body", False))
                if received > MAX_BODY_BYTES:  # a chunked body declares no length
                    break
                chunks.append(chunk)
                if not more:
                    return b"".join(chunks)
        chunks.clear()
        raise _BodyTooLargeError(await _discard_rest(receive, received) if more else received)

    async def _run(self, work: Callable[[], Any]) -> Any:
        if not self._slots.acquire(blocking=False):
            raise Unavailable(QUEUE_FULL_MESSAGE)
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, work)
        finally:
            self._slots.release()


async def _discard_rest(receive: Receive, received: int) -> int | None:
    """Read and drop the rest of a chunked body refused for its size; its whole length, or None.

    The client is still sending it. Closing the connection with its bytes unread would make the kernel
    reset it, and a client that is still writing (or has not read yet) then gets a reset connection
    instead of the 413 answer. So, as HTTP servers do before closing after an error (nginx's
    `lingering_close`), the rest is read and thrown away, keeping nothing, for at most
    `_DISCARD_BYTES` more bytes and `_DISCARD_SECONDS`.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DISCARD_SECONDS):
            while received <= MAX_BODY_BYTES + _DISCARD_BYTES:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return received
    return None


class _DisconnectedError(Exception):
    """The client went away before sending its whole body: there is nobody to answer."""


def _content_length(scope: dict[str, Any]) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return max(int(value), 0)
            except ValueError:
                return 0
    return 0


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RestServer:
    """The REST API on `host:port` (and Prometheus metrics at `metrics_path`), until `stop`.

    Raises:
        OSError: the address cannot be bound.
    """

    def __init__(
        self, plane: DataPlane, host: str, port: int, timeout_ms: int, metrics_path: str | None = None
    ) -> None:
        self._socket = _listen(host, port)
        self.port = int(self._socket.getsockname()[1])
        self.app = RestApp(plane, timeout_ms, metrics_path)
        config = uvicorn.Config(
            self.app,
            http="h11",
            loop="asyncio",
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="layertap-rest", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> None:
        """Serve in the background; returns once the server accepts connections."""
        self._thread.start()
        started = time.monotonic()
        while not self._server.started and self._thread.is_alive() and time.monotonic() - started < 30:
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop accepting requests, finish the ones in flight (up to 5 s), close the socket."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join()
        self.app.pool.shutdown(wait=False, cancel_futures=True)
        self._socket.close()


def _listen(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on such sockets, and without it each
    # answer (headers, then body) waits ~40 ms for the client's delayed ACK.
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
