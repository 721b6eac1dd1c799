"""A one-line progress bar with rate and ETA on a terminal; nothing when stderr is a pipe or a file."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


def _clock(seconds: float) -> str:
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"


class Progress:
    """Counts records done and redraws at most ten times a second.

    Args:
        total: how many records the job has (None when the source cannot tell: no ETA).
        stream: where to draw (stderr by default).
        enabled: draw at all; by default only when `stream` is a terminal.
    """

    def __init__(
        self, total: int | None, *, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self.done = 0
        self.rejected = 0
        self._started = time.monotonic()
        self._first = 0
        self._drawn = 0.0

    def skip(self, count: int) -> None:
        """Records a previous run already wrote (they count as done but not in the rate)."""
        self.done += count
        self._first = self.done

    def update(self, done: int, rejected: int) -> None:
        """`done` records written and `rejected` left out since the last update."""
        self.done += done + rejected
        self.rejected += rejected
        now = time.monotonic()
        if self.enabled and now - self._drawn >= 0.1:
            self._drawn = now
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()

    def rate(self, now: float | None = None) -> float:
        elapsed = (now or time.monotonic()) - self._started
        return (self.done - self._first) / elapsed if elapsed > 0 else 0.0

    def line(self, now: float | None = None) -> str:
        rate = self.rate(now)
        rejected = f", {self.rejected} rejected" if self.rejected else ""
        if self.total:
            share = min(1.0, self.done / self.total)
            bar = "#" * int(share * 24)
            eta = _clock((self.total - self.done) / rate) if rate > 0 else "?"
            return (
                f"[{bar:<24}] {self.done}/{self.total} {share:4.0%} {rate:,.1f} records/s ETA {eta}{rejected}"
            )
        return f"{self.done} records {rate:,.1f}/s{rejected}"

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
            self.stream.flush()
