"""AsyncServingClient: ServingClient on grpc.aio. Requests, retries' decisions, errors and results
are InferenceCore's, shared with ServingClient; this module only awaits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from layertap.client._channel import TLS
from layertap.client._core import DEFAULT, ClientCore, Timeout
from layertap.client._examples import ExampleLike
from layertap.client._inference import Classification, InferenceCore, Result
from layertap.client._retry import Retry, send_with_retries_async
from layertap.proto import methods

__all__ = ["AsyncServingClient"]


class AsyncServingClient:
    """The asyncio twin of ServingClient: same arguments, same results, methods are coroutines.

    Create it inside a running event loop (grpc.aio channels belong to one loop); use
    `async with AsyncServingClient(...) as client:` or await `close()`.
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
        keepalive_seconds: float | None = 60.0,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._core = InferenceCore(
            target, model, version=version, version_label=version_label, timeout=timeout, retry=retry
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
        self._stubs = InferenceCore.stubs(self._channel)

    async def classify(
        self,
        examples: Sequence[ExampleLike],
        *,
        signature: str = "",
        context: ExampleLike | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Classification:
        """See ServingClient.classify."""
        request = self._core.classify_request(examples, context, signature)
        return self._core.classification(await self._send(methods.CLASSIFY, request, timeout))

    async def regress(
        self,
        examples: Sequence[ExampleLike],
        *,
        signature: str = "",
        context: ExampleLike | None = None,
        timeout: Timeout = DEFAULT,
    ) -> np.ndarray:
        """See ServingClient.regress."""
        request = self._core.regress_request(examples, context, signature)
        return self._core.regression(await self._send(methods.REGRESS, request, timeout))

    async def multi_inference(
        self,
        examples: Sequence[ExampleLike],
        tasks: Mapping[str, str],
        *,
        context: ExampleLike | None = None,
        timeout: Timeout = DEFAULT,
    ) -> dict[str, Result]:
        """See ServingClient.multi_inference."""
        request = self._core.multi_inference_request(examples, tasks, context)
        answer = await self._send(methods.MULTI_INFERENCE, request, timeout)
        return self._core.multi_inference(answer, tasks)

    async def predict(
        self,
        inputs: Mapping[str, Any],
        *,
        signature: str = "",
        output_filter: Sequence[str] = (),
        timeout: Timeout = DEFAULT,
    ) -> dict[str, np.ndarray]:
        """See ServingClient.predict."""
        request = self._core.predict_request(inputs, signature, output_filter)
        return self._core.predictions(await self._send(methods.PREDICT, request, timeout))

    async def close(self) -> None:
        """Close the channel if this client created it."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncServingClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncServingClient({self._core.settings.target!r}, {self._core.settings.model!r})"

    async def _send(self, path: str, request: bytes, timeout: Timeout) -> bytes:
        stub = self._stubs[path]
        attempts = self._core.attempts(timeout)
        return await send_with_retries_async(lambda t: stub(request, timeout=t), attempts, self._core.error)
