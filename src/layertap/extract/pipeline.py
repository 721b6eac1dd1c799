"""Streaming between the stages of a job: batches decoded ahead in a thread, batches run with a
bounded number in flight (results kept in input order), and results written behind in a thread. Memory
is bounded by the queue depths, never by the dataset; the job runs at the pace of its slowest stage
instead of the sum of all three."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["Behind", "ahead", "ordered_map"]

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


def ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """`items`, produced by a thread up to `depth` ahead of the consumer (the next batch is read and
    decoded while the current one runs). An error in the producer is raised in the consumer."""
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            slots.put(error)

    thread = threading.Thread(target=produce, name="layertap-extract-read", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()


def ordered_map(function: Callable[[T], R], items: Iterable[T], window: int) -> Iterator[tuple[T, R]]:
    """(item, function(item)) in input order, with up to `window` calls running at once."""
    if window <= 1:
        for item in items:
            yield item, function(item)
        return
    with ThreadPoolExecutor(window, thread_name_prefix="layertap-extract-run") as pool:
        pending: deque[tuple[T, Future[R]]] = deque()
        try:
            for item in items:
                pending.append((item, pool.submit(function, item)))
                if len(pending) >= window:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()


class Behind(Generic[T]):
    """`consume(item)` for every item `put`, in a thread behind the caller, with at most `depth` items
    waiting (a full queue blocks `put`: the writer paces the job instead of piling up batches).

    Used as a context manager: leaving the block normally waits for every item to be consumed, leaving
    it with an error drops what is still queued. An error in `consume` is raised in the caller, by the
    next `put` or on leaving the block; nothing is consumed after it.
    """

    def __init__(self, consume: Callable[[T], object], depth: int = 4, name: str = "layertap-behind") -> None:
        self._consume = consume
        self._slots: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._slots.get()
            if item is _DONE:
                return
            if self._error is not None or self._dropping:
                continue  # keep draining, so that a blocked `put` returns
            try:
                self._consume(item)  # type: ignore[arg-type]
            except BaseException as error:  # handed to the caller, raised there
                self._error = error

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        self._raise()
        self._slots.put(item)

    def __enter__(self) -> Behind[T]:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._dropping = kind is not None
        self._slots.put(_DONE)
        self._thread.join()
        if kind is None:
            self._raise()
