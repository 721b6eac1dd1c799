"""What every client's core decides, whatever its API: errors, model status, waiting until ready.

A core holds the client's `ConnectionSettings` and does no I/O: its calls are `Flow`s (see
`_flow`) that a transport carries out. `LayerCore` and `ServingCore` extend this one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Unpack

import grpc

from layertap.client import _status
from layertap.client._errors import from_rpc_error
from layertap.client._flow import Flow, Send, Sleep
from layertap.client._settings import ConnectionSettings, SettingsKeywords, Timeout
from layertap.errors import DeadlineExceededError, ModelNotFoundError, ServerUnavailableError, ServingError
from layertap.proto import methods

__all__ = ["Core"]

logger = logging.getLogger(__name__)


class Core:
    """The decisions shared by every client: one per client, holding its settings."""

    def __init__(self, target: str, model: str, **settings: Unpack[SettingsKeywords]) -> None:
        self.settings = ConnectionSettings(target, model, **settings)

    def error(self, error: grpc.RpcError) -> ServingError:
        """The layertap error for a failed call."""
        mapped = from_rpc_error(
            error, target=self.settings.target, model=self.settings.model, layers=self.known_layers()
        )
        logger.debug("call to %s failed: %s", self.settings.target, mapped)
        return mapped

    def known_layers(self) -> Sequence[str]:
        """The layers an error about a missing signature lists (none known here)."""
        return ()

    def status(self, timeout: Timeout) -> Flow[list[_status.VersionStatus]]:
        """GetModelStatus: the model's versions (the pinned one only, when pinned), newest first."""
        return self._ask_status(self.settings.deadline(timeout))

    def wait_ready(self, timeout: float, poll_interval: float) -> Flow[list[_status.VersionStatus]]:
        """Poll the status until the model (the pinned version, if any) is AVAILABLE; return it.

        Raises:
            DeadlineExceededError: not ready within `timeout` seconds.
        """
        started = time.monotonic()
        last: list[_status.VersionStatus] | Exception | None = None
        while True:
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                raise self._not_ready(timeout, last)
            try:
                last = yield from self._ask_status(time.monotonic() + min(left, max(poll_interval, 1.0)))
                if _status.is_ready(last, self.settings.version):
                    return last
            except (ModelNotFoundError, ServerUnavailableError) as error:
                last = error  # not loaded, or not up: keep waiting
            except DeadlineExceededError as error:
                # A slow poll (the last one is cut short by `timeout`) says less than an answer.
                last = error if last is None or isinstance(last, DeadlineExceededError) else last
            yield Sleep(min(poll_interval, max(0.0, timeout - (time.monotonic() - started))))

    def _ask_status(self, deadline: float | None) -> Flow[list[_status.VersionStatus]]:
        replies = yield Send(
            methods.GET_MODEL_STATUS, [_status.status_request(self.settings.spec())], deadline
        )
        return _status.parse_status(replies[0])

    def _not_ready(self, waited: float, last: list[_status.VersionStatus] | Exception | None) -> Exception:
        settings = self.settings
        wanted = f"version {settings.version}" if settings.version is not None else "a version"
        seen = _status.describe(last) if isinstance(last, list) else str(last or "no answer")
        return DeadlineExceededError(
            f"model {settings.model!r} at {settings.target}: {wanted} not AVAILABLE after {waited:g}s "
            f"(last seen: {seen})",
            code="DEADLINE_EXCEEDED",
        )
