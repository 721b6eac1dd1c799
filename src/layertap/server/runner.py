"""How a servable's session calls are run: directly, or as part of server-side batches.

The runner is chosen once, when the server is assembled (as TF Serving wraps every session in a
batching session when `--enable_batching`), and handed to every servable at load time; warmup and
requests then run through the same path.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Protocol

import numpy as np

__all__ = ["PlainRunner", "RunFunction", "SessionRunner"]

#: Runs one session call: feeds by tensor name, fetch names, timeout in ms.
RunFunction = Callable[[Mapping[str, np.ndarray], Sequence[str], "int | None"], list[np.ndarray]]


class SessionRunner(Protocol):
    """Runs session calls of servables; `key` identifies the servable (its batch queues)."""

    def run(
        self,
        key: Hashable,
        run: RunFunction,
        feeds: Mapping[str, np.ndarray],
        fetches: Sequence[str],
        timeout_ms: int | None,
    ) -> list[np.ndarray]:
        """Run one request's feeds and fetches; returns the fetched arrays."""

    def forget(self, key: Hashable) -> None:
        """The servable `key` was unloaded: drop what is kept for it."""

    def stop(self) -> None:
        """The server is stopping: finish what is queued, then release threads."""


class PlainRunner:
    """Every request runs its own session call (no `--enable_batching`)."""

    def run(
        self,
        key: Hashable,
        run: RunFunction,
        feeds: Mapping[str, np.ndarray],
        fetches: Sequence[str],
        timeout_ms: int | None,
    ) -> list[np.ndarray]:
        """Run the session call directly."""
        return run(feeds, fetches, timeout_ms)

    def forget(self, key: Hashable) -> None:
        """Nothing is kept per servable."""

    def stop(self) -> None:
        """No threads to stop."""
