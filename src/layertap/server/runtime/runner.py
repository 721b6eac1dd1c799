"""What runs a servable's session calls when they do not go straight to the session: server-side batches.

The runner is chosen once, when the server is assembled (as TF Serving wraps every session in a
batching session when `--enable_batching`), and handed to every servable at load time; warmup and
requests then run through the same path. Without batching there is no runner: a servable's `run`
is its session's.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Protocol

import numpy as np

__all__ = ["RunFunction", "SessionRunner"]

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
