"""How many inference calls run at once, and by when each must be answered.

`Admission` is the server's one bound on inference, whichever transport a call came by (TF Serving
bounds its gRPC threads, `--grpc_max_threads`, and refuses beyond its queues with UNAVAILABLE);
`Deadline` is a call's deadline (gRPC's, or REST's `--rest_api_timeout_in_ms`), which becomes the
session run's timeout as in TF Serving.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from layertap.server.status import QUEUE_FULL_MESSAGE, DeadlineExceeded, Unavailable

__all__ = ["Admission", "Deadline"]


class Admission:
    """Bounds inference: `workers` run at once, `queue` more may wait, the rest are refused."""

    def __init__(self, workers: int, queue: int) -> None:
        self._capacity = workers + queue
        self._admitted = 0
        self._lock = threading.Lock()
        self._running = threading.BoundedSemaphore(workers)

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a worker slot for one request, after waiting in the queue.

        Raises:
            Unavailable: running plus waiting requests are at capacity (TF Serving's full queue).
        """
        with self._lock:
            if self._admitted >= self._capacity:
                raise Unavailable(QUEUE_FULL_MESSAGE)
            self._admitted += 1
        try:
            with self._running:
                yield
        finally:
            with self._lock:
                self._admitted -= 1


class Deadline:
    """When a request must be answered by: the gRPC deadline, or REST's `--rest_api_timeout_in_ms`."""

    def __init__(self, seconds: float | None = None) -> None:
        self._at = None if seconds is None else time.monotonic() + seconds

    def timeout_ms(self) -> int | None:
        """Milliseconds left (the session run timeout), None without a deadline.

        Raises:
            DeadlineExceeded: the deadline has passed.
        """
        if self._at is None:
            return None
        left = int((self._at - time.monotonic()) * 1000)
        if left <= 0:
            raise DeadlineExceeded("Deadline exceeded")
        return left
