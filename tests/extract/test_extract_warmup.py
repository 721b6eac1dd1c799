"""Runners warm up before a job's clock starts, and a summary's timings say what they include.

The warm-up's effect (a first session run costing ~40x a later one on ResNet50) is measured by
bench/extract.py, not here: these tests check that it happens, once per runner (once per server
remotely), through the very call the job makes, and that `seconds` leaves it out.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.extract import InProcessRunner, RemoteRunner, extract
from layertap.extract.records import InputSpec
from layertap.extract.runners import warmup_example
from layertap.server.dataplane.metrics import METRICS
from tests.extract.conftest import CNN_LAYERS
from tests.fixtures.local_serving import version_dir

WARMED = "warmed up digits/1"


def warm_ups(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "layertap.extract.runners"]


def test_warmup_example_is_one_example_of_zeros() -> None:
    image = warmup_example(InputSpec("x", (28, 28, 1), np.dtype(np.float32)))
    assert image is not None and image.shape == (1, 28, 28, 1) and image.dtype == np.float32
    assert not image.any()
    open_dims = warmup_example(InputSpec("ids", (None, 3), np.dtype(np.int64)))
    assert open_dims is not None and open_dims.shape == (1, 1, 3) and open_dims.dtype == np.int64
    # The graph parses strings: no string is valid for every model.
    assert warmup_example(InputSpec("text", (), np.dtype(object))) is None


def test_in_process_runner_warms_up_at_load(cnn_export: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="layertap.extract.runners")
    runner = InProcessRunner(version_dir(cnn_export), CNN_LAYERS)
    try:
        messages = warm_ups(caplog)
        assert len(messages) == 1 and messages[0].startswith(WARMED), messages
    finally:
        runner.close()


def test_string_inputs_are_not_warmed(text_export: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="layertap.extract.runners")
    InProcessRunner(version_dir(text_export), ["text_pool"]).close()
    assert warm_ups(caplog) == []


def _predict_runs() -> float:
    """Session runs `layertap serve` (in this process) made for Predict on `digits` so far."""
    labels = {"model_name": "digits", "API": "Predict", "runtime": "TF1"}
    return METRICS.registry.get_sample_value(":tensorflow:serving:runtime_latency_count", labels) or 0.0


def test_remote_runner_warms_up_every_server_once(cnn_target: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="layertap.extract.runners")
    before = _predict_runs()
    # The same server named twice: two clients, each warmed by its own call.
    runner = RemoteRunner([cnn_target, cnn_target], "digits", CNN_LAYERS)
    per_call = len(CNN_LAYERS)  # the client asks each layer's signature in its own Predict
    try:
        assert _predict_runs() - before == 2 * per_call
        assert len(warm_ups(caplog)) == 2
        runner.run(np.zeros((3, 28, 28, 1), np.float32))
        assert _predict_runs() - before == 3 * per_call
    finally:
        runner.close()


def test_seconds_leave_out_the_set_up(tmp_path: Path, cnn_export: Any, digits: np.ndarray) -> None:
    np.save(tmp_path / "digits.npy", digits)
    started = time.monotonic()
    summary = extract(
        tmp_path / "digits.npy",
        CNN_LAYERS,
        tmp_path / "out",
        version_dir=version_dir(cnn_export),
        batch_size=16,
    )
    elapsed = time.monotonic() - started
    assert summary.setup_seconds > 0 and summary.seconds > 0
    # Counted once each: the set-up (load + warm-up) is not inside `seconds`.
    assert summary.setup_seconds + summary.seconds <= elapsed
    assert summary.rate == 40 / summary.seconds
    assert summary.as_json()["setup_seconds"] == round(summary.setup_seconds, 3)
