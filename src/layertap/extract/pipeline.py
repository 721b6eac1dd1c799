"""Streaming between the stages of a job: batches decoded ahead in a thread, and batches run with a
bounded number in flight, results kept in input order. Memory is bounded by the queue depths, never
by the dataset."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["ahead", "ordered_map"]

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
