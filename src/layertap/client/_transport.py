"""The only I/O of the clients: a gRPC channel, and carrying out a core's steps on it.

`Transport` blocks, `AsyncTransport` awaits; both send every request through the retry helpers of
`_retry` (the decisions are `Attempts`'), and both run a core's `Flow` (see `_flow`). What to
send, and what the answers mean, is decided in the cores, not here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc

from layertap.client._channel import create_channel
from layertap.client._flow import Done, Flow, Outcome, Send, Step, resume
from layertap.client._retry import Attempts, send_with_retries, send_with_retries_async
from layertap.client._settings import ConnectionSettings
from layertap.errors import LayertapError
from layertap.proto import methods

__all__ = ["AsyncTransport", "Transport"]

T = TypeVar("T")
# Turns a failed call into the error the caller sees (the core's mapping, which knows the model).
Failed = Callable[[grpc.RpcError], Exception]
_PATHS = (
    methods.PREDICT,
    methods.GET_MODEL_METADATA,
    methods.GET_MODEL_STATUS,
    methods.CLASSIFY,
    methods.REGRESS,
    methods.MULTI_INFERENCE,
)


class _Channel:
    """The channel (the caller's, or one made from the settings) and a stub per method."""

    def __init__(self, settings: ConnectionSettings, failed: Failed, *, aio: bool) -> None:
        self._retry = settings.retry
        self._failed = failed
        self.owned = settings.channel is None
        self.channel: Any = create_channel(settings, aio=aio) if self.owned else settings.channel
        # Bytes in, bytes out: decoding happens outside gRPC so that a malformed reply raises
        # TensorFormatError instead of an opaque INTERNAL status.
        self.stubs = {path: self.channel.unary_unary(path) for path in _PATHS}

    def attempts(self, step: Send) -> Attempts:
        # Each request counts from the step's deadline, so a wait for a slot shortens its own
        # timeout instead of extending the call.
        return Attempts(self._retry, step.deadline)


class Transport(_Channel):
    """Blocking I/O, safe to share between threads."""

    def __init__(self, settings: ConnectionSettings, failed: Failed) -> None:
        super().__init__(settings, failed, aio=False)

    def run(self, flow: Flow[T]) -> T:
        """Carry out `flow`'s steps until it returns; errors go back into it where they arose."""
        outcome: Outcome = None
        while not isinstance(step := resume(flow, outcome), Done):
            try:
                outcome = self._perform(step)
            except LayertapError as error:
                outcome = error
        return step.value

    def close(self) -> None:
        """Close the channel if it was made here."""
        if self.owned:
            self.channel.close()

    def _perform(self, step: Step) -> Sequence[bytes]:
        if not isinstance(step, Send):
            time.sleep(step.seconds)
            return ()
        if len(step.requests) == 1:
            return [self._send(step, step.requests[0])]
        pool = ThreadPoolExecutor(min(step.concurrency, len(step.requests)), thread_name_prefix="layertap")
        try:
            futures = [pool.submit(self._send, step, request) for request in step.requests]
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _send(self, step: Send, request: bytes) -> bytes:
        stub = self.stubs[step.path]
        return send_with_retries(
            lambda timeout: stub(request, timeout=timeout), self.attempts(step), self._failed
        )


class AsyncTransport(_Channel):
    """The same on grpc.aio: create it inside the event loop that will use it."""

    def __init__(self, settings: ConnectionSettings, failed: Failed) -> None:
        super().__init__(settings, failed, aio=True)

    async def run(self, flow: Flow[T]) -> T:
        """Transport.run, awaited."""
        outcome: Outcome = None
        while not isinstance(step := resume(flow, outcome), Done):
            try:
                outcome = await self._perform(step)
            except LayertapError as error:
                outcome = error
        return step.value

    async def close(self) -> None:
        """Close the channel if it was made here."""
        if self.owned:
            await self.channel.close()

    async def _perform(self, step: Step) -> Sequence[bytes]:
        if not isinstance(step, Send):
            await asyncio.sleep(step.seconds)
            return ()
        slots = asyncio.Semaphore(step.concurrency)
        return list(await asyncio.gather(*(self._send(step, request, slots) for request in step.requests)))

    async def _send(self, step: Send, request: bytes, slots: asyncio.Semaphore) -> bytes:
        stub = self.stubs[step.path]

        async def attempt(timeout: float | None) -> bytes:
            # A request holds one of the step's slots only while it is on the wire.
            async with slots:
                answer: bytes = await stub(request, timeout=timeout)
                return answer

        return await send_with_retries_async(attempt, self.attempts(step), self._failed)
