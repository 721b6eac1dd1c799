"""Concurrent callers for the replica tests: each call's start, duration, failure and answer, kept."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from layertap.client import LayerClient


@dataclass(frozen=True)
class Call:
    started: float  # time.monotonic()
    seconds: float
    error: str | None  # the exception, for a failed call
    answer: float | None  # a fingerprint of the output (its sum): tells model versions apart


class Load:
    """`callers` threads calling `client.predict_layer(x, layer)` back to back until the block ends."""

    def __init__(self, client: LayerClient, x: np.ndarray, layer: str, callers: int = 16) -> None:
        self._client, self._x, self._layer = client, x, layer
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        self._threads = [threading.Thread(target=self._call_until_stopped) for _ in range(callers)]

    def _call_until_stopped(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                answer = float(np.round(np.sum(self._client.predict_layer(self._x, self._layer)), 3))
                call = Call(started, time.monotonic() - started, None, answer)
            except Exception as error:  # every failure is counted and reported
                call = Call(started, time.monotonic() - started, repr(error), None)
            with self._lock:
                self.calls.append(call)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def between(self, start: float, end: float = float("inf")) -> list[Call]:
        """The calls that started in [start, end)."""
        with self._lock:
            return [c for c in self.calls if start <= c.started < end]

    def failures(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.error is not None]


def milliseconds(calls: list[Call], quantile: float) -> float:
    """A latency quantile of `calls`, in milliseconds."""
    return float(np.quantile([c.seconds for c in calls], quantile) * 1000)
