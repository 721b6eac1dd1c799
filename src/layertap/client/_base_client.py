"""What every client shares: its settings, model status, waiting until ready, and closing.

`SyncClient` and `AsyncClient` are the bases of the blocking and the asyncio clients. Each holds an
I/O-free core (the decisions) and a transport (the I/O); a public method asks the core for a
`Flow` and has the transport run it, so the sync and asyncio twins differ only by `await`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Generic, Self, TypeVar

from layertap.client._base_core import Core
from layertap.client._settings import DEFAULT, ConnectionSettings, Timeout
from layertap.client._status import VersionStatus
from layertap.client._transport import AsyncTransport, Transport

__all__ = ["AsyncClient", "SyncClient"]

CoreT = TypeVar("CoreT", bound=Core)


class _Client(Generic[CoreT]):
    def __init__(self, core: CoreT) -> None:
        self._core = core

    @property
    def settings(self) -> ConnectionSettings:
        """The connection settings this client was created with."""
        return self._core.settings

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._core.settings.target!r}, {self._core.settings.model!r})"


class SyncClient(_Client[CoreT]):
    """The blocking clients' base: safe to share between threads."""

    def __init__(self, core: CoreT) -> None:
        super().__init__(core)
        self._transport = Transport(core.settings, core.error)

    def status(self, *, timeout: Timeout = DEFAULT) -> list[VersionStatus]:
        """The model's versions and their states, newest first (GetModelStatus)."""
        return self._transport.run(self._core.status(timeout))

    def wait_ready(self, timeout: float = 60.0, *, poll_interval: float = 0.2) -> list[VersionStatus]:
        """Block until the model (the pinned version, if any) is AVAILABLE; returns its status.

        Raises:
            DeadlineExceededError: not ready within `timeout` seconds.
        """
        return self._transport.run(self._core.wait_ready(timeout, poll_interval))

    def close(self) -> None:
        """Close the channel if this client created it."""
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_Client[CoreT]):
    """The asyncio clients' base: create one inside a running event loop (grpc.aio channels belong
    to one loop); use `async with` or await `close()`."""

    def __init__(self, core: CoreT) -> None:
        super().__init__(core)
        self._transport = AsyncTransport(core.settings, core.error)

    async def status(self, *, timeout: Timeout = DEFAULT) -> list[VersionStatus]:
        """The model's versions and their states, newest first (GetModelStatus)."""
        return await self._transport.run(self._core.status(timeout))

    async def wait_ready(self, timeout: float = 60.0, *, poll_interval: float = 0.2) -> list[VersionStatus]:
        """Wait until the model (the pinned version, if any) is AVAILABLE; returns its status.

        Raises:
            DeadlineExceededError: not ready within `timeout` seconds.
        """
        return await self._transport.run(self._core.wait_ready(timeout, poll_interval))

    async def close(self) -> None:
        """Close the channel if this client created it."""
        await self._transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()
