"""Server-side batching (`--enable_batching`), after TF Serving's shared batch scheduler.

Each queue holds the requests of ONE signature (more precisely: one set of fed and fetched tensors with
the same trailing shapes), so requests to different layer signatures never share a batch. Requests join
the queue's open batch until it holds `max_batch_size` rows or `batch_timeout_micros` passed since its
first request; `num_batch_threads` threads, shared by every queue, run batches: inputs are concatenated
along dimension 0 (padded up to the next `allowed_batch_sizes` entry with copies of the first row, as TF
Serving pads; with `pad_variable_length_inputs`, tensors of different trailing shapes are padded to the
largest with their first element), the session runs once, and the outputs are split back per request.
A queue holds at most `max_enqueued_batches` batches; beyond that a request is refused UNAVAILABLE with
TF Serving's message.

The scheduler is made once, when the server is assembled (as TF Serving wraps every session in a
batching session when `--enable_batching`), and handed to every servable at load time, so warmup and
requests run through the same path.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from layertap.config.batching import BatchingSettings
from layertap.server.runtime.session import RunFunction
from layertap.server.status import (
    QUEUE_FULL_MESSAGE,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    StatusError,
    Unavailable,
)

__all__ = ["BatchScheduler", "BatchingOptions"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchingOptions:
    """The batching parameters in effect, with TF Serving's defaults for unset fields."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 4
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int | None = None

    @classmethod
    def from_settings(cls, settings: BatchingSettings, cpus: int) -> BatchingOptions:
        """From checked `BatchingSettings` (`layertap.config.read_batching_config`); None fields take TF
        Serving's defaults, `num_batch_threads` the number of CPUs."""
        defaults = cls(num_batch_threads=cpus)

        def chosen(value: int | None, default: int) -> int:
            return default if value is None else value

        return cls(
            max_batch_size=chosen(settings.max_batch_size, defaults.max_batch_size),
            batch_timeout_micros=chosen(settings.batch_timeout_micros, defaults.batch_timeout_micros),
            max_enqueued_batches=chosen(settings.max_enqueued_batches, defaults.max_enqueued_batches),
            num_batch_threads=chosen(settings.num_batch_threads, defaults.num_batch_threads),
            allowed_batch_sizes=tuple(settings.allowed_batch_sizes),
            pad_variable_length_inputs=settings.pad_variable_length_inputs,
            enable_large_batch_splitting=bool(settings.enable_large_batch_splitting),
            max_execution_batch_size=settings.max_execution_batch_size,
        )

    @property
    def execution_size(self) -> int:
        """The most rows one batch runs with."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size:
            return self.max_execution_batch_size
        return self.max_batch_size


@dataclass
class _Task:
    feeds: Mapping[str, np.ndarray]
    size: int
    done: threading.Event = field(default_factory=threading.Event)
    outputs: list[np.ndarray] | None = None
    error: StatusError | None = None


@dataclass
class _Batch:
    tasks: list[_Task] = field(default_factory=list)
    size: int = 0
    opened: float = field(default_factory=time.monotonic)


@dataclass
class _Queue:
    run: RunFunction
    fetches: tuple[str, ...]
    ready: deque[_Batch] = field(default_factory=deque)
    open: _Batch | None = None


def _same_shape(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Pad every part after its values, in each non-batch dimension, to the largest size among the parts.

    As TF Serving's pad_variable_length_inputs does, the padding value is the part's own first element.
    """
    target = tuple(max(sizes) for sizes in zip(*(part.shape[1:] for part in parts), strict=True))
    padded = []
    for part in parts:
        if part.shape[1:] == target:
            padded.append(part)
            continue
        widths = [(0, 0)] + [(0, want - have) for have, want in zip(part.shape[1:], target, strict=True)]
        fill = part.reshape(-1)[0] if part.size else 0
        padded.append(np.pad(part, widths, mode="constant", constant_values=fill))
    return padded


class BatchScheduler:
    """Batches concurrent requests per queue and runs them on a shared pool of threads."""

    def __init__(self, options: BatchingOptions) -> None:
        self.options = options
        self._queues: dict[Hashable, _Queue] = {}
        self._lock = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, name=f"layertap-batch-{n}", daemon=True)
            for n in range(max(1, options.num_batch_threads))
        ]
        for thread in self._threads:
            thread.start()

    def run(
        self,
        key: Hashable,
        run: RunFunction,
        feeds: Mapping[str, np.ndarray],
        fetches: Sequence[str],
        timeout_ms: int | None,
    ) -> list[np.ndarray]:
        """Run one request as part of a batch of its queue; returns its own rows of every output.

        Raises:
            StatusError: INVALID_ARGUMENT for inputs that cannot be batched or too many rows,
                UNAVAILABLE when the queue is full, DEADLINE_EXCEEDED when the deadline passes while
                queued, or the session's error.
        """
        sizes = {array.shape[0] if array.ndim else -1 for array in feeds.values()}
        if len(sizes) != 1 or -1 in sizes:
            raise InvalidArgument(
                "Batching session Run() input tensors must have equal 0th-dimension size; got "
                + ", ".join(f"{name}: {array.shape}" for name, array in sorted(feeds.items()))
            )
        size = sizes.pop()
        limit = self.options.max_batch_size
        if size > self.options.execution_size and not self.options.enable_large_batch_splitting:
            raise InvalidArgument(f"Task size {size} is larger than maximum input batch size {limit}")
        # Tensors of different trailing shapes share a batch only when they may be padded to one shape.
        shapes = tuple(
            (
                name,
                array.ndim if self.options.pad_variable_length_inputs else array.shape[1:],
                array.dtype.str,
            )
            for name, array in sorted(feeds.items())
        )
        queue_key = (key, tuple(fetches), shapes)
        step = self.options.execution_size
        pieces = [
            _Task(
                {name: array[start : start + step] for name, array in feeds.items()}, min(step, size - start)
            )
            for start in range(0, max(size, 1), step)
        ]
        with self._lock:
            queue = self._queues.setdefault(queue_key, _Queue(run, tuple(fetches)))
            for task in pieces:
                self._enqueue(queue, task)
            self._lock.notify_all()
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        for task in pieces:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not task.done.wait(left):
                raise DeadlineExceeded("Deadline exceeded while queued for batching")
            if task.error is not None:
                raise task.error
        outputs = [task.outputs for task in pieces if task.outputs is not None]
        if len(outputs) == 1:
            return outputs[0]
        merged = []
        for parts in zip(*outputs, strict=True):
            rows = [part.shape[0] if part.ndim else -1 for part in parts]
            # Outputs with the request's rows are joined; others (no batch dimension) are the same whole.
            batched = rows == [task.size for task in pieces]
            merged.append(np.concatenate(parts) if batched else parts[0])
        return merged

    def _enqueue(self, queue: _Queue, task: _Task) -> None:
        limit = self.options.execution_size
        batch = queue.open
        if batch is not None and batch.size + task.size > limit:
            queue.ready.append(batch)
            batch = queue.open = None
        if batch is None:
            if len(queue.ready) + 1 > self.options.max_enqueued_batches:
                raise Unavailable(QUEUE_FULL_MESSAGE)
            batch = queue.open = _Batch()
        batch.tasks.append(task)
        batch.size += task.size
        if batch.size >= limit:
            queue.ready.append(batch)
            queue.open = None

    def _next_batch(self) -> tuple[_Queue, _Batch] | None:
        """A batch to run now, or None; with the lock held."""
        timeout = self.options.batch_timeout_micros / 1e6
        now = time.monotonic()
        for queue in self._queues.values():
            if queue.ready:
                return queue, queue.ready.popleft()
        for queue in self._queues.values():
            if queue.open is not None and now - queue.open.opened >= timeout:
                batch, queue.open = queue.open, None
                return queue, batch
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                chosen = self._next_batch()
                while chosen is None:
                    if self._stopped:
                        return
                    self._lock.wait(self._wait_time())
                    chosen = self._next_batch()
            self._execute(*chosen)

    def _wait_time(self) -> float | None:
        opened = [q.open.opened for q in self._queues.values() if q.open is not None]
        if not opened:
            return None
        return max(0.0, min(opened) + self.options.batch_timeout_micros / 1e6 - time.monotonic())

    def _execute(self, queue: _Queue, batch: _Batch) -> None:
        """Run one batch; whatever fails fails the batch's requests with a status, never the thread."""
        try:
            self._run_batch(queue, batch)
        except StatusError as error:
            failure = error
        except Exception as error:
            # Assembling the batch, the session, or splitting its outputs failed in a way nothing
            # mapped to a status: a bug or a hostile request, not a reason to stop batching.
            logger.exception("a batch of %d requests failed", len(batch.tasks))
            failure = Internal(f"The batch failed: {type(error).__name__}: {error}")
        else:
            return
        for task in batch.tasks:
            if not task.done.is_set():
                task.outputs, task.error = None, failure
                task.done.set()

    def _run_batch(self, queue: _Queue, batch: _Batch) -> None:
        rows = batch.size
        padded = self._padded(rows)
        feeds = {}
        for name in batch.tasks[0].feeds:
            parts = _same_shape([task.feeds[name] for task in batch.tasks])
            if padded > rows:
                # TF Serving pads with copies of the first row of the first request.
                parts.append(np.repeat(parts[0][:1], padded - rows, axis=0))
            feeds[name] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        outputs = queue.run(feeds, queue.fetches, None)
        start = 0
        split = []
        for task in batch.tasks:
            split.append(
                [
                    output[start : start + task.size] if output.ndim and output.shape[0] == padded else output
                    for output in outputs
                ]
            )
            start += task.size
        for task, task_outputs in zip(batch.tasks, split, strict=True):
            task.outputs = task_outputs
            task.done.set()
        logger.debug("ran a batch of %d requests, %d rows (padded to %d)", len(batch.tasks), rows, padded)

    def _padded(self, rows: int) -> int:
        sizes = self.options.allowed_batch_sizes
        if not sizes:
            return rows
        index = bisect.bisect_left(sizes, rows)
        return sizes[index] if index < len(sizes) else rows

    def forget(self, key: Hashable) -> None:
        """Drop the (empty) queues of one servable when it unloads."""
        with self._lock:
            for queue_key in [k for k in self._queues if isinstance(k, tuple) and k[0] == key]:
                del self._queues[queue_key]

    def stop(self) -> None:
        """Let the threads finish what is queued, then end them."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join()
