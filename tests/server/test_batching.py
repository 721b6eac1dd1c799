"""Server-side batching: batches form while threads are busy, per queue, padded, bounded, split back."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from layertap.errors import ServingError
from layertap.server.runtime.batching import BatchingOptions, BatchScheduler
from layertap.server.status import QUEUE_FULL_MESSAGE


class Recorder:
    """A session stand-in: doubles "x", records each batch, and can hold the first batch."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str], timeout: int | None) -> list:
        self.batches.append(feeds["x"].copy())
        if len(self.batches) == 1:
            self.entered.set()
            self.release.wait(30)
        return [feeds["x"] * 2, np.float32(len(feeds["x"]))]


@pytest.fixture
def scheduler() -> Callable[..., BatchScheduler]:
    made: list[BatchScheduler] = []

    def make(**options: object) -> BatchScheduler:
        made.append(BatchScheduler(BatchingOptions(num_batch_threads=1, **options)))  # type: ignore[arg-type]
        return made[-1]

    yield make  # type: ignore[misc]
    for each in made:
        each.stop()


def _rows(start: int, count: int) -> dict[str, np.ndarray]:
    return {"x": np.arange(start, start + count, dtype=np.float32)[:, None]}


def test_requests_wait_while_the_thread_is_busy_and_run_as_one_batch(
    scheduler: Callable[..., BatchScheduler],
) -> None:
    batcher = scheduler(max_batch_size=8)
    session = Recorder()
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.run, "m", session, _rows(0, 1), ["y", "n"], None)
        assert session.entered.wait(30)
        later = [
            pool.submit(batcher.run, "m", session, _rows(10 * i, 2), ["y", "n"], None) for i in range(1, 4)
        ]
        while sum(1 for q in batcher._queues.values() if q.open and len(q.open.tasks) == 3) == 0:
            session.release.wait(0.01)
        session.release.set()
        results = [first.result(), *(future.result() for future in later)]
    assert [len(batch) for batch in session.batches] == [1, 6]
    for i, (doubled, rows_in_batch) in enumerate(results):
        expected = _rows(10 * i, 2 if i else 1)["x"] * 2
        np.testing.assert_array_equal(doubled, expected)
        # An output without a batch dimension goes to every request whole.
        assert rows_in_batch == (1 if i == 0 else 6)


def test_full_queue_and_oversized_requests(scheduler: Callable[..., BatchScheduler]) -> None:
    batcher = scheduler(max_batch_size=2, max_enqueued_batches=1)
    session = Recorder()
    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(batcher.run, "m", session, _rows(0, 1), ["y", "n"], None)
        assert session.entered.wait(30)
        queued = pool.submit(batcher.run, "m", session, _rows(5, 2), ["y", "n"], None)
        while not any(q.ready for q in batcher._queues.values()):
            session.release.wait(0.01)
        with pytest.raises(ServingError) as caught:
            batcher.run("m", session, _rows(9, 1), ["y", "n"], None)
        assert (caught.value.code, str(caught.value)) == ("UNAVAILABLE", QUEUE_FULL_MESSAGE)
        session.release.set()
        running.result()
        np.testing.assert_array_equal(queued.result()[0], [[10.0], [12.0]])
    with pytest.raises(ServingError, match=r"^Task size 3 is larger than maximum input batch size 2$"):
        batcher.run("m", session, _rows(0, 3), ["y", "n"], None)


def test_padding_to_allowed_sizes_and_splitting_large_requests(
    scheduler: Callable[..., BatchScheduler],
) -> None:
    session = Recorder()
    session.release.set()
    padded = scheduler(max_batch_size=8, allowed_batch_sizes=(4, 8))
    doubled, _ = padded.run("m", session, _rows(3, 3), ["y", "n"], None)
    np.testing.assert_array_equal(session.batches[-1][:, 0], [3, 4, 5, 3])  # padded with the first row
    np.testing.assert_array_equal(doubled[:, 0], [6, 8, 10])
    splitting = scheduler(max_batch_size=8, enable_large_batch_splitting=True, max_execution_batch_size=4)
    doubled, _ = splitting.run("m", session, _rows(0, 10), ["y", "n"], None)
    assert [len(batch) for batch in session.batches[-3:]] == [4, 4, 2]
    np.testing.assert_array_equal(doubled[:, 0], np.arange(10) * 2)


def test_variable_length_inputs_are_padded_with_their_first_element(
    scheduler: Callable[..., BatchScheduler],
) -> None:
    seen: list[np.ndarray] = []
    gate = threading.Event()

    def session(feeds: Mapping[str, np.ndarray], fetches: Sequence[str], timeout: int | None) -> list:
        seen.append(feeds["x"].copy())
        gate.wait(30)
        return [feeds["x"]]

    # The batch closes when both rows are in (max_batch_size 2); the long timeout only guards a slow machine.
    batcher = scheduler(max_batch_size=2, pad_variable_length_inputs=True, batch_timeout_micros=30 * 10**6)
    short = {"x": np.array([[7, 1]], np.int32)}
    long = {"x": np.array([[1, 2, 3]], np.int32)}
    gate.set()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda f: batcher.run("m", session, f, ["y"], None), [short, long]))
    assert len(seen) == 1  # one batch for both
    np.testing.assert_array_equal(results[0][0], [[7, 1, 7]])
    np.testing.assert_array_equal(results[1][0], [[1, 2, 3]])


def test_layertap_serve_with_batching_file(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple], tmp_path: Path
) -> None:
    base = make_repo("m", {1: "1"})
    config = tmp_path / "batching.config"
    config.write_text(
        "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 2000 }\n"
        "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 2 }\n"
        "allowed_batch_sizes: 4\nallowed_batch_sizes: 8\n"
    )
    _, channel = start_server(
        model_name="m", model_base_path=str(base), enable_batching=True, batching_parameters_file=str(config)
    )
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def ask(i: int) -> tuple[np.ndarray, np.ndarray]:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "m"
        x = np.array([[i, 1.0]], np.float32)
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
        if i % 2:
            request.output_filter.append("z")
        response = stub.Predict(request, timeout=30)
        return x, tf.make_ndarray(response.outputs["z"])

    with ThreadPoolExecutor(8) as pool:
        for x, z in pool.map(ask, range(24)):
            np.testing.assert_array_equal(z, x * 2)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((9, 2), np.float32)))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, timeout=30)
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Task size 9 is larger than maximum input batch size 8",
    )
