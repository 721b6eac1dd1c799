"""Serving under load and faults: soak, hot swap under load, restart, overload (real servers, loopback only).

The soak and restart tests run the real CLI (`python -m layertap.cli serve`) as a child process, so the
server's RSS is its own and SIGKILL hits only it; the others run create_server in-process. Every load loop
is bounded in count and time and stops by itself.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import psutil
import pytest

from layertap.client import LayerClient, Retry
from layertap.errors import ServerUnavailableError
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.server.app import LayertapServer
from layertap.server.status import QUEUE_FULL_MESSAGE

IMAGES = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def serve_process() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """serve_process(port, base) starts `layertap serve` in a child process; killed after the test."""
    children: list[subprocess.Popen[bytes]] = []

    def start(port: int, base: Path, *flags: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "layertap.cli", "serve", f"--port={port}", "--model_name=cnn"]
        command += [f"--model_base_path={base}", "--max_num_load_retries=0", *flags]
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)


def _publish(base: Path, version: int, source: Path) -> None:
    # Stage beside the versions under a non-numeric name, then rename: the server never sees half of it.
    staging = base / f".staging-{version}"
    shutil.copytree(source, staging)
    staging.rename(base / str(version))


@pytest.mark.slow
def test_soak_32_callers_for_60_seconds(
    model_base: Callable[..., Path], serve_process: Callable[..., subprocess.Popen[bytes]]
) -> None:
    port = _free_port()
    child = serve_process(port, model_base(), "--grpc_max_threads=8")
    server = psutil.Process(child.pid)
    latencies: list[float] = []
    errors: list[BaseException] = []
    with LayerClient(f"127.0.0.1:{port}", "cnn", timeout=30) as client:
        client.wait_ready(timeout=120)
        start = time.monotonic()
        end = start + 60.0
        rss: dict[str, int] = {}

        def call() -> None:
            while time.monotonic() < end and len(errors) < 10:
                began = time.perf_counter()
                try:
                    client.predict(IMAGES, ["pool_1"])
                except Exception as error:  # every failure counts
                    errors.append(error)
                latencies.append(time.perf_counter() - began)

        callers = [threading.Thread(target=call) for _ in range(32)]
        for caller in callers:
            caller.start()
        time.sleep(max(0.0, start + 10.0 - time.monotonic()))
        rss["10s"] = server.memory_info().rss
        for caller in callers:
            caller.join(timeout=120)
        rss["end"] = server.memory_info().rss
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    growth = rss["end"] / rss["10s"] - 1
    print(
        f"soak: {len(latencies)} calls, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"server RSS {rss['10s'] / 2**20:.0f} -> {rss['end'] / 2**20:.0f} MiB ({growth:+.1%})"
    )
    assert errors == []
    assert len(latencies) > 32
    assert growth < 0.10


def test_hot_swap_under_16_callers_three_versions_and_a_broken_one(
    model_base: Callable[..., Path],
    untrained_cnn_version: Path,
    serve: Callable[..., LayertapServer],
    tmp_path: Path,
) -> None:
    base = model_base((1,))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    server = serve(model_name="cnn", model_base_path=str(base), file_system_poll_wait_seconds=1)
    versions: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    request = pb.PredictRequest()
    request.model_spec.name = "cnn"
    request.model_spec.signature_name = "pool_1"
    request.inputs["image"].dtype = 1
    request.inputs["image"].tensor_shape.dim.add(size=1)
    for size in (28, 28, 1):
        request.inputs["image"].tensor_shape.dim.add(size=size)
    request.inputs["image"].tensor_content = IMAGES[:1].tobytes()
    raw = request.SerializeToString()
    channel = grpc.insecure_channel(server.address)
    predict = channel.unary_unary(methods.PREDICT)
    deadline = time.monotonic() + 120  # the loop stops by itself even if the test body fails

    def call() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                versions.append(
                    pb.PredictResponse.FromString(predict(raw, timeout=30)).model_spec.version.value
                )
            except grpc.RpcError as error:
                errors.append(error)

    callers = [threading.Thread(target=call) for _ in range(16)]
    try:
        for caller in callers:
            caller.start()
        for version, source in (
            (2, untrained_cnn_version),
            (3, untrained_cnn_version),
            (4, broken),
            (5, untrained_cnn_version),
        ):
            _publish(base, version, source)
            if version == 4:
                _wait(lambda: _state(server, 4) == "END", "the broken version to be refused")
            else:
                _wait(
                    lambda v=version: bool(versions) and versions[-1] == v, f"answers from version {version}"
                )
            count = len(versions)
            _wait(lambda c=count: len(versions) >= c + 16, "more answers")
    finally:
        stop.set()
        for caller in callers:
            caller.join(timeout=60)
        channel.close()
    assert errors == []
    assert 4 not in versions
    assert sorted(set(versions)) == [1, 2, 3, 5]
    with LayerClient(server.address, "cnn", timeout=10) as client:
        states = {s.version: s for s in client.status()}
    assert states[4].state == "END"
    assert states[4].error_code == grpc.StatusCode.DATA_LOSS.value[0]
    assert "saved_model.pb" in states[4].error_message
    assert states[5].state == "AVAILABLE"


def _state(server: LayertapServer, version: int) -> str:
    with LayerClient(server.address, "cnn", timeout=10) as client:
        return next((s.state for s in client.status() if s.version == version), "")


def test_restart_retries_complete_and_no_retry_fails_fast(
    model_base: Callable[..., Path], serve_process: Callable[..., subprocess.Popen[bytes]]
) -> None:
    port = _free_port()
    base = model_base()
    first = serve_process(port, base)
    target = f"127.0.0.1:{port}"
    # Retries bounded by each call's deadline, not by a count: how long the restarted server takes to
    # import TensorFlow and load depends on the machine's load, and no call may fail while it does.
    patient = Retry(attempts=1_000_000, initial_backoff=0.05, max_backoff=0.5)
    with LayerClient(target, "cnn", timeout=150, retry=patient) as client:
        client.wait_ready(timeout=120)
        expected = client.predict(IMAGES, ["pool_1"])["pool_1"]
        results: list[np.ndarray] = []
        failures: list[BaseException] = []
        killed = threading.Event()

        def stream() -> None:
            for index in range(40):
                try:
                    results.append(client.predict(IMAGES, ["pool_1"])["pool_1"])
                except Exception as error:  # every failure counts
                    failures.append(error)
                if index == 10:
                    killed.wait(timeout=60)

        streamer = threading.Thread(target=stream)
        streamer.start()
        _wait(lambda: len(results) >= 10, "the first requests")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        killed.set()
        # While it is down, a client without retries gets the typed error, promptly.
        with LayerClient(target, "cnn", timeout=20, retry=None) as impatient:
            began = time.monotonic()
            with pytest.raises(ServerUnavailableError):
                impatient.predict(IMAGES, ["pool_1"])
            assert time.monotonic() - began < 10
        time.sleep(0.5)
        serve_process(port, base)
        streamer.join(timeout=300)
    assert failures == []
    assert len(results) == 40
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_overload_answers_unavailable_and_retries_turn_it_into_success(
    model_base: Callable[..., Path], serve: Callable[..., LayertapServer]
) -> None:
    server = serve(
        model_name="cnn", model_base_path=str(model_base()), grpc_max_threads=1, max_queued_requests=1
    )
    heavy = np.zeros((256, 28, 28, 1), np.float32)
    burst = 12

    def run(make_call: Callable[[], None]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * burst
        barrier = threading.Barrier(burst)

        def one(index: int) -> None:
            barrier.wait(timeout=30)
            try:
                make_call()
            except Exception as error:  # collected, asserted below
                outcomes[index] = error

        threads = [threading.Thread(target=one, args=(i,)) for i in range(burst)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        return outcomes

    with LayerClient(server.address, "cnn", timeout=60, retry=None) as bare:
        bare.wait_ready(timeout=60)
        refused = run(lambda: bare.predict(heavy, ["conv_1"]) and None)
    rejected = [e for e in refused if e is not None]
    assert rejected, "twelve heavy calls at once against 1 worker + 1 queue slot must overflow the queue"
    assert all(isinstance(e, ServerUnavailableError) for e in rejected)
    assert all(QUEUE_FULL_MESSAGE in str(e) for e in rejected)
    assert None in refused  # the admitted ones were answered
    retry = Retry(attempts=50, initial_backoff=0.02, max_backoff=0.5)
    with LayerClient(server.address, "cnn", timeout=60, retry=retry) as patient:
        assert run(lambda: patient.predict(heavy, ["conv_1"]) and None) == [None] * burst
