"""Lifecycle bugs found in review, each reproduced here first: stopping while loading, failing batches.

- A SIGTERM that arrives while a model loads must stop the server promptly and cleanly: the signal
  handler only requests the stop, loading (and warmup) watch for it, no retry starts, nothing serves.
- A batch that fails outside the session run (padding, concatenating) must fail its requests with a
  status, and the batch thread must survive to run the next batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from layertap.errors import ServingError
from layertap.server.runtime.batching import BatchingOptions, BatchScheduler
from tests.cli_process import cli_command


def test_sigterm_while_loading_stops_promptly_without_retrying_or_serving(
    make_repo: Callable[..., Path], write_warmup: Callable[[Path, list[str]], None]
) -> None:
    base = make_repo("m", {1: "1"})
    # A warmup that runs for minutes, so the signal certainly arrives while the version loads.
    write_warmup(base / "1", ["serving_default"])
    process = subprocess.Popen(
        cli_command(
            "serve",
            "--port=0",
            "--model_name=m",
            f"--model_base_path={base}",
            "--num_request_iterations_for_warmup=100000000",
            "--max_num_load_retries=3",
            "--load_retry_interval_micros=0",
        ),
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    lines: list[str] = []
    loading = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "Loading servable { name: m version: 1 }" in line:
                loading.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert loading.wait(120), "".join(lines)
        time.sleep(0.5)  # inside the warmup replay
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join()
    log = "".join(lines)
    assert code == 0, log
    assert "Received SIGTERM while loading models: stopping" in log
    assert "(attempt 2 of 4)" not in log  # no retry after the stop
    assert "Running gRPC ModelServer" not in log
    assert "layertap serve stopped before serving" in log


class _Session:
    """Doubles "x"; counts the batches it ran."""

    def __init__(self) -> None:
        self.batches = 0

    def __call__(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str], timeout: int | None) -> list:
        self.batches += 1
        return [feeds["x"] * 2]


def test_a_batch_that_cannot_be_assembled_fails_its_requests_and_the_thread_survives() -> None:
    scheduler = BatchScheduler(
        BatchingOptions(
            num_batch_threads=1,
            max_batch_size=4,
            batch_timeout_micros=200_000,
            pad_variable_length_inputs=True,
        )
    )
    session = _Session()
    try:
        outcomes: list[object] = []

        def call(feeds: dict[str, np.ndarray]) -> None:
            try:
                outcomes.append(scheduler.run("m", session, feeds, ["y"], None).__len__())
            except ServingError as error:
                outcomes.append((error.code, str(error)))

        # Same rank (so one queue), no elements, but padded to one shape they would hold 2**80:
        # assembling the batch fails outside the session call.
        first = threading.Thread(daemon=True, target=call, args=({"x": np.zeros((1, 0, 2**40), np.float32)},))
        second = threading.Thread(
            daemon=True, target=call, args=({"x": np.zeros((1, 2**40, 0), np.float32)},)
        )
        first.start()
        second.start()
        # Without a deadline, a caller of a dead batch thread would wait forever.
        first.join(30)
        second.join(30)
        assert not first.is_alive() and not second.is_alive()
        assert len(outcomes) == 2
        assert all(isinstance(o, tuple) and o[0] == "INTERNAL" for o in outcomes), outcomes
        # The thread survived: the next batch runs.
        assert scheduler.run("m", session, {"x": np.ones((2, 1), np.float32)}, ["y"], None)[0].tolist() == [
            [2.0],
            [2.0],
        ]
    finally:
        scheduler.stop()
