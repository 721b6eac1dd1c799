"""AsyncLayerClient: the same client on grpc.aio, for asyncio services.

Request building, retry decisions, error mapping and decoding are ClientCore's, shared with
LayerClient; this module only awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
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

__all__ = ["AsyncLayerClient"]


class AsyncLayerClient:
    """The asyncio twin of LayerClient: same arguments, same results, methods are coroutines.

    Create it inside a running event loop (grpc.aio channels belong to one loop); use
    `async with AsyncLayerClient(...) as client:` or await `close()`.
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
            aio=True,
        )
        self._stubs = ClientCore.stubs(self._channel)
        self._catalogue_lock = asyncio.Lock()

    async def layers(self, *, refresh: bool = False, timeout: Timeout = DEFAULT) -> Catalogue:
        """The model's layers and signatures (fetched once, then cached; `refresh` fetches again)."""
        return await self._layers(refresh, self._core.deadline(timeout))

    async def predict(
        self,
        inputs: Inputs,
        layers: Sequence[str] | str | None = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> LayerOutputs:
        """The outputs of `layers` for `inputs`, by layer name (see LayerClient.predict)."""
        deadline = self._core.deadline(timeout)
        plan = self._core.plan(await self._layers(False, deadline), inputs, layers)
        results = self._core.decode(await self._predict_all(plan.calls, deadline))
        gone: ModelNotFoundError | None = None
        for version, again in self._core.mixed_versions(plan, results):
            try:
                redone = self._core.decode(await self._predict_all(again, deadline))
            except ModelNotFoundError as error:
                gone = error  # that version is no longer (or not yet) served here: try the next
                continue
            return self._core.results(plan, results, (version, redone))
        if gone is not None:
            raise gone
        return self._core.results(plan, results)

    async def _predict_all(self, calls: Sequence[Call], deadline: float | None) -> list[bytes]:
        """Send one call's requests, at most `max_concurrency` at a time (LayerClient's meaning)."""
        slots = asyncio.Semaphore(self._core.max_concurrency)
        return list(
            await asyncio.gather(
                *(
                    self._send(methods.PREDICT, call.request, self._core.attempts(deadline), slots)
                    for call in calls
                )
            )
        )

    async def predict_layer(self, x: Inputs, layer: str, *, timeout: Timeout = DEFAULT) -> np.ndarray:
        """The output of one layer for `x` (an array, or a dict by input alias)."""
        return (await self.predict(x, [layer], timeout=timeout))[layer]

    async def status(self, *, timeout: Timeout = DEFAULT) -> list[_status.VersionStatus]:
        """The model's versions and their states, newest first (GetModelStatus)."""
        attempts = self._core.attempts(self._core.deadline(timeout))
        return _status.parse_status(
            await self._send(methods.GET_MODEL_STATUS, self._core.status_request(), attempts)
        )

    async def wait_ready(
        self, timeout: float = 60.0, *, poll_interval: float = 0.2
    ) -> list[_status.VersionStatus]:
        """Wait until the model (the pinned version, if any) is AVAILABLE; returns its status.

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
                last = await self.status(timeout=min(left, max(poll_interval, 1.0)))
                if _status.is_ready(last, self._core.version):
                    return last
            except (ModelNotFoundError, ServerUnavailableError, DeadlineExceededError) as error:
                last = error  # not loaded, not up, or a slow poll: keep waiting
            await asyncio.sleep(min(poll_interval, max(0.0, timeout - (time.monotonic() - started))))

    async def close(self) -> None:
        """Close the channel if this client created it."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncLayerClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncLayerClient({self._core.target!r}, {self._core.model!r})"

    async def _layers(self, refresh: bool, deadline: float | None) -> Catalogue:
        async with self._catalogue_lock:
            cached = self._core.cached(refresh)
            if cached is not None:
                return cached
            request = self._core.metadata_request()
            answer = await self._send(methods.GET_MODEL_METADATA, request, self._core.attempts(deadline))
            return self._core.remember_catalogue(answer)

    async def _send(
        self, path: str, request: bytes, attempts: Attempts, slots: asyncio.Semaphore | None = None
    ) -> bytes:
        # LayerClient._send with `await`: the decisions live in Attempts and ClientCore. A request
        # of a call holds one of the call's slots while on the wire (a wait for it shortens its
        # timeout: Attempts counts from the call's deadline).
        while True:
            try:
                if slots is None:
                    answer: bytes = await self._stubs[path](request, timeout=attempts.start())
                else:
                    async with slots:
                        answer = await self._stubs[path](request, timeout=attempts.start())
                return answer
            except grpc.RpcError as error:
                pause = attempts.pause_before_retry(error)
                if pause is None:
                    raise self._core.error(error) from error
                await asyncio.sleep(pause)
