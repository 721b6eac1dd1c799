"""LayerClient: the blocking client, safe to share between threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

import grpc
import numpy as np

from layertap.client import _status
from layertap.client._catalogue import Catalogue
from layertap.client._channel import TLS
from layertap.client._core import DEFAULT, ClientCore, Timeout
from layertap.client._outputs import LayerOutputs
from layertap.client._requests import DEFAULT_MAX_REPLY_BYTES, Call, Inputs
from layertap.client._retry import Attempts, Retry
from layertap.errors import DeadlineExceededError, ModelNotFoundError, ServerUnavailableError
from layertap.proto import methods

__all__ = ["LayerClient"]


class LayerClient:
    """Ask a TF Serving model (or `layertap serve`) for layer outputs as numpy arrays.

    Args:
        target: "host:port", or "dns:///name:port" to balance calls over every address of a name.
        model: the served model's name.
        version: pin a version number (0 is a valid version).
        version_label: pin a label such as "stable" (exclusive with `version`).
        timeout: seconds per call of this API, retries included; None waits forever.
        retry: when to retry UNAVAILABLE answers; None never retries.
        tls: TLS settings (`TLS(ca_cert=..., client_cert=..., client_key=...)`), True for the
            system's roots, None for plaintext.
        credentials: ready-made grpc.ChannelCredentials, instead of `tls`.
        compression: "gzip" (or "deflate") to compress requests.
        channel: a grpc.Channel to use instead of creating one (the caller closes it).
        max_batch_size: split larger batches into chunks of this size, sent concurrently.
        max_reply_bytes: also split so that no reply is larger than this (from the outputs'
            shapes and dtypes; 256 MiB by default, None for no limit). A single example larger
            than this is refused before sending: export a head that reduces it.
        max_concurrency: how many requests ONE call keeps in flight at most (the chunks of a split
            batch, the per-signature requests of several layers); calls from many threads sharing
            the client are never throttled client-wide, and waiting for a slot counts against the
            call's deadline. Same meaning in AsyncLayerClient.
        validate: check inputs against the model's signatures before sending.
        keepalive_seconds: HTTP/2 keepalive ping interval; None sends none.
        options: extra gRPC channel arguments.

    Raises:
        UsageError: contradictory settings (a version and a label, a non-positive timeout, ...).
    """

    def __init__(
        self,
        target: str,
        model: str,
        *,
        version: int | None = None,
        version_label: str | None = None,
        timeout: float | None = 10.0,
        retry: Retry | None = Retry(),  # noqa: B008 (a frozen value object, safe to share)
        tls: TLS | bool | None = None,
        credentials: Any = None,
        compression: str | None = None,
        channel: Any = None,
        max_batch_size: int | None = None,
        max_reply_bytes: int | None = DEFAULT_MAX_REPLY_BYTES,
        max_concurrency: int = 8,
        validate: bool = True,
        keepalive_seconds: float | None = 60.0,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._core = ClientCore(
            target,
            model,
            version=version,
            version_label=version_label,
            timeout=timeout,
            retry=retry,
            max_batch_size=max_batch_size,
            max_concurrency=max_concurrency,
            validate=validate,
            max_reply_bytes=max_reply_bytes,
        )
        self._channel, self._owns_channel = ClientCore.channel(
            target,
            channel=channel,
            tls=tls,
            credentials=credentials,
            compression=compression,
            keepalive_seconds=keepalive_seconds,
            options=options,
            aio=False,
        )
        self._stubs = ClientCore.stubs(self._channel)
        self._fetching = threading.Lock()

    def layers(self, *, refresh: bool = False, timeout: Timeout = DEFAULT) -> Catalogue:
        """The model's layers and signatures (fetched once, then cached; `refresh` fetches again)."""
        return self._layers(refresh, self._core.deadline(timeout))

    def predict(
        self,
        inputs: Inputs,
        layers: Sequence[str] | str | None = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> LayerOutputs:
        """The outputs of `layers` (the full model's outputs when None) for `inputs`, by layer name.

        Args:
            inputs: one array for a single-input model, else a dict of arrays by input alias.
            layers: layer names (or paths); one signature answers for all of them when one can.
            timeout: seconds for the whole call, overriding the client's.

        Returns:
            Arrays by layer name, in the order asked (a dict). They may be read-only views of the
            reply. `.version` is the version that answered, `.spaces[layer]` the embedding-space id
            of what computed it (`LayerOutputs`): store them with every vector.

        Raises:
            LayerNotFoundError, InvalidInputError: before anything is sent.
            ServingError (a subclass per gRPC status): the server refused or failed.
        """
        deadline = self._core.deadline(timeout)
        plan = self._core.plan(self._layers(False, deadline), inputs, layers)
        results = self._core.decode(self._predict_all(plan.calls, deadline))
        gone: ModelNotFoundError | None = None
        for version, again in self._core.mixed_versions(plan, results):
            try:
                redone = self._core.decode(self._predict_all(again, deadline))
            except ModelNotFoundError as error:
                gone = error  # that version is no longer (or not yet) served here: try the next
                continue
            return self._core.results(plan, results, (version, redone))
        if gone is not None:
            raise gone
        return self._core.results(plan, results)

    def predict_layer(self, x: Inputs, layer: str, *, timeout: Timeout = DEFAULT) -> np.ndarray:
        """The output of one layer for `x` (an array, or a dict by input alias)."""
        return self.predict(x, [layer], timeout=timeout)[layer]

    def status(self, *, timeout: Timeout = DEFAULT) -> list[_status.VersionStatus]:
        """The model's versions and their states, newest first (GetModelStatus)."""
        attempts = self._core.attempts(self._core.deadline(timeout))
        return _status.parse_status(
            self._send(methods.GET_MODEL_STATUS, self._core.status_request(), attempts)
        )

    def wait_ready(self, timeout: float = 60.0, *, poll_interval: float = 0.2) -> list[_status.VersionStatus]:
        """Block until the model (the pinned version, if any) is AVAILABLE; returns its status.

        Raises:
            DeadlineExceededError: not ready within `timeout` seconds.
        """
        started = time.monotonic()
        last: list[_status.VersionStatus] | Exception | None = None
        while True:
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                raise self._core.not_ready(timeout, last)
            try:
                last = self.status(timeout=min(left, max(poll_interval, 1.0)))
                if _status.is_ready(last, self._core.version):
                    return last
            except (ModelNotFoundError, ServerUnavailableError, DeadlineExceededError) as error:
                last = error  # not loaded, not up, or a slow poll: keep waiting
            time.sleep(min(poll_interval, max(0.0, timeout - (time.monotonic() - started))))

    def close(self) -> None:
        """Close the channel if this client created it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> LayerClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LayerClient({self._core.target!r}, {self._core.model!r})"

    def _layers(self, refresh: bool, deadline: float | None) -> Catalogue:
        # One fetch at a time: threads arriving together wait for it instead of asking again.
        with self._fetching:
            cached = self._core.cached(refresh)
            if cached is not None:
                return cached
            request = self._core.metadata_request()
            answer = self._send(methods.GET_MODEL_METADATA, request, self._core.attempts(deadline))
            return self._core.remember_catalogue(answer)

    def _predict_all(self, calls: Sequence[Call], deadline: float | None) -> list[bytes]:
        """Send one call's requests, at most `max_concurrency` at a time (a pool of the call's own)."""
        if len(calls) == 1:
            return [self._send(methods.PREDICT, calls[0].request, self._core.attempts(deadline))]
        pool = ThreadPoolExecutor(min(self._core.max_concurrency, len(calls)), thread_name_prefix="layertap")
        try:
            # Each request's Attempts counts from the call's deadline, so a wait for a worker
            # shortens its own timeout instead of extending the call.
            futures = [
                pool.submit(self._send, methods.PREDICT, call.request, self._core.attempts(deadline))
                for call in calls
            ]
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _send(self, path: str, request: bytes, attempts: Attempts) -> bytes:
        # The asyncio client has the same loop with `await`: the decisions live in Attempts.
        while True:
            try:
                answer: bytes = self._stubs[path](request, timeout=attempts.start())
                return answer
            except grpc.RpcError as error:
                pause = attempts.pause_before_retry(error)
                if pause is None:
                    raise self._core.error(error) from error
                time.sleep(pause)
