"""Every gRPC status mapped to layertap's errors, retries, deadlines and readiness, on real gRPC."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from layertap import errors
from layertap.client import LayerClient, Retry
from layertap.client._retry import Attempts
from tests.fixtures.client_peer import MODEL, Peer, PeerSettings, dense_1, start_server

X = np.ones((1, 4), np.float32)
FAST = Retry(attempts=4, initial_backoff=0.01, max_backoff=0.05)


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(toy)", errors.ModelNotFoundError),
        (grpc.StatusCode.INVALID_ARGUMENT, "input tensor alias not found", errors.InvalidArgumentError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", errors.DeadlineExceededError),
        (grpc.StatusCode.UNAVAILABLE, "The batch scheduling queue is full", errors.ServerUnavailableError),
        (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Received message larger than max (300 vs. 100)",
            errors.MessageTooLargeError,
        ),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "Out of memory", errors.ServingError),
        (
            grpc.StatusCode.FAILED_PRECONDITION,
            'Serving signature key "dense1" not found.',
            errors.SignatureNotFoundError,
        ),
        (grpc.StatusCode.INTERNAL, "kernel crashed", errors.ServingError),
        (grpc.StatusCode.UNIMPLEMENTED, "no", errors.ServingError),
    ],
)
def test_status_codes_map_to_one_hierarchy_keeping_the_message(
    peer_target: str, peer: Peer, code: grpc.StatusCode, message: str, expected: type[errors.ServingError]
) -> None:
    with LayerClient(peer_target, MODEL, retry=None) as client:
        client.layers()
        peer.fail_next(code, message)
        with pytest.raises(errors.ServingError) as raised:
            client.predict_layer(X, "dense_1")
    assert type(raised.value) is expected
    assert raised.value.code == code.name and raised.value.details == message
    assert message in str(raised.value) and peer_target in str(raised.value)


def test_signature_not_found_lists_the_layers(peer_target: str, peer: Peer) -> None:
    with LayerClient(peer_target, MODEL, retry=None) as client:
        client.layers()
        peer.fail_next(grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "dense1" not found.')
        with pytest.raises(errors.SignatureNotFoundError) as raised:
            client.predict_layer(X, "dense_1")
    assert "dense_1, dense_2" in str(raised.value) and "Nearest: dense_1" in str(raised.value)


def test_real_answers_of_the_peer_are_mapped(peer_target: str, peer: Peer) -> None:
    with (
        LayerClient(peer_target, "nope", retry=None) as client,
        pytest.raises(errors.ModelNotFoundError) as missing,
    ):
        client.layers()
    assert "Servable not found for request: Latest(nope)" in str(missing.value)
    with (
        LayerClient(peer_target, MODEL, version=7, retry=None) as client,
        pytest.raises(errors.ModelNotFoundError),
    ):
        client.layers()
    with (
        LayerClient(peer_target, MODEL, version_label="canary", retry=None) as client,
        pytest.raises(errors.ModelNotFoundError) as label,
    ):
        client.layers()
    assert label.value.code == "INVALID_ARGUMENT" and "version label: canary" in str(label.value)
    with (
        LayerClient(peer_target, MODEL, retry=None, validate=False) as client,
        pytest.raises(errors.InvalidArgumentError) as extra,
    ):
        client.predict({"a": np.ones((1, 2), np.float32)}, "dense_1")
    assert "Missing but required: ['image']" in str(extra.value)


def test_unavailable_is_retried_until_it_recovers(peer_target: str, peer: Peer) -> None:
    with LayerClient(peer_target, MODEL, retry=FAST) as client:
        client.layers()
        peer.fail_next(grpc.StatusCode.UNAVAILABLE, "queue full", times=3)
        np.testing.assert_allclose(client.predict_layer(X, "dense_1"), dense_1(X), rtol=1e-6)
    assert peer.count("Predict") == 4


def test_retries_stop_after_the_configured_attempts(peer_target: str, peer: Peer) -> None:
    with LayerClient(peer_target, MODEL, retry=FAST) as client:
        client.layers()
        peer.fail_next(grpc.StatusCode.UNAVAILABLE, "down", times=10)
        with pytest.raises(errors.ServerUnavailableError):
            client.predict_layer(X, "dense_1")
    assert peer.count("Predict") == 4


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL, grpc.StatusCode.NOT_FOUND]
)
def test_other_codes_are_never_retried(peer_target: str, peer: Peer, code: grpc.StatusCode) -> None:
    with LayerClient(peer_target, MODEL, retry=FAST) as client:
        client.layers()
        peer.fail_next(code, "no", times=5)
        with pytest.raises(errors.ServingError):
            client.predict_layer(X, "dense_1")
    assert peer.count("Predict") == 1


def test_retry_none_disables_retries(peer_target: str, peer: Peer) -> None:
    with LayerClient(peer_target, MODEL, retry=None) as client:
        client.layers()
        peer.fail_next(grpc.StatusCode.UNAVAILABLE, "down", times=1)
        with pytest.raises(errors.ServerUnavailableError):
            client.predict_layer(X, "dense_1")
    assert peer.count("Predict") == 1


def test_deadline_exceeded(peer_target: str, peer: Peer) -> None:
    with LayerClient(peer_target, MODEL, timeout=5.0) as client:
        client.layers()
        peer.settings.delay = 1.0
        with pytest.raises(errors.DeadlineExceededError) as raised:
            client.predict_layer(X, "dense_1", timeout=0.2)
    assert raised.value.code == "DEADLINE_EXCEEDED"


def test_retries_never_run_past_the_deadline(peer_target: str, peer: Peer) -> None:
    patient = Retry(attempts=1000, initial_backoff=0.05, max_backoff=0.05, jitter=0.0)
    with LayerClient(peer_target, MODEL, retry=patient) as client:
        client.layers()
        peer.fail_next(grpc.StatusCode.UNAVAILABLE, "down", times=1000)
        with pytest.raises(errors.ServerUnavailableError):
            client.predict_layer(X, "dense_1", timeout=0.5)
    # 0.5 s of 0.05 s pauses leaves room for about ten attempts, far from a thousand.
    assert 1 <= peer.count("Predict") <= 11


def test_attempts_refuse_a_pause_that_would_cross_the_deadline() -> None:
    class Unavailable(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.UNAVAILABLE

    attempts = Attempts(
        Retry(attempts=5, initial_backoff=1.0, max_backoff=1.0, jitter=0), time.monotonic() + 0.5
    )
    attempts.start()
    assert attempts.pause_before_retry(Unavailable()) is None
    unbounded = Attempts(Retry(attempts=2, initial_backoff=0.2, max_backoff=1.0, jitter=0), None)
    unbounded.start()
    assert unbounded.pause_before_retry(Unavailable()) == pytest.approx(0.2)
    unbounded.start()
    assert unbounded.pause_before_retry(Unavailable()) is None  # attempts used up


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    policy = Retry(attempts=6, initial_backoff=0.1, max_backoff=0.5, jitter=0.5)
    import random

    rng = random.Random(3)
    for number, base in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (5, 0.5)):
        pause = policy.backoff(number, rng)
        assert base * 0.5 <= pause <= base
    with pytest.raises(ValueError, match="at least 1"):
        Retry(attempts=0)


def test_a_server_that_comes_back_is_reached_by_retries(peer: Peer) -> None:
    server, port = start_server(peer)
    target = f"127.0.0.1:{port}"
    with LayerClient(
        target, MODEL, retry=Retry(attempts=30, initial_backoff=0.05, max_backoff=0.2)
    ) as client:
        client.layers()
        server.stop(None).wait()
        restarted: list[grpc.Server] = []

        def come_back() -> None:
            time.sleep(0.5)
            restarted.append(start_server(peer, port)[0])

        thread = threading.Thread(target=come_back)
        thread.start()
        try:
            out = client.predict_layer(X, "dense_1", timeout=20)
        finally:
            thread.join()
            for again in restarted:
                again.stop(None)
    np.testing.assert_allclose(out, dense_1(X), rtol=1e-6)


def test_server_down_is_unavailable(peer: Peer) -> None:
    server, port = start_server(peer)
    server.stop(None).wait()
    with (
        LayerClient(f"127.0.0.1:{port}", MODEL, retry=FAST, timeout=5) as client,
        pytest.raises(errors.ServerUnavailableError) as raised,
    ):
        client.layers()
    assert raised.value.code == "UNAVAILABLE"


def test_status_and_wait_ready(peer_target: str, peer: Peer) -> None:
    peer.settings.loading_polls = 3
    with LayerClient(peer_target, MODEL) as client:
        assert [(v.version, v.state) for v in client.status()] == [(1, "LOADING")]
        ready = client.wait_ready(timeout=10, poll_interval=0.01)
        assert [(v.version, v.state, v.available) for v in ready] == [(1, "AVAILABLE", True)]
        assert peer.count("GetModelStatus") == 4
    with (
        LayerClient(peer_target, MODEL, version=3) as client,
        pytest.raises(errors.DeadlineExceededError) as raised,
    ):
        client.wait_ready(timeout=2.0, poll_interval=0.05)
    assert "version 3 not AVAILABLE" in str(raised.value) and "Could not find version 3" in str(raised.value)


def test_settings_are_checked(peer_target: str) -> None:
    with pytest.raises(errors.UsageError, match="not both"):
        LayerClient(peer_target, MODEL, version=1, version_label="stable")
    with pytest.raises(errors.UsageError, match="timeout"):
        LayerClient(peer_target, MODEL, timeout=0)
    with pytest.raises(errors.UsageError, match="compression"):
        LayerClient(peer_target, MODEL, compression="brotli")
    with pytest.raises(errors.UsageError, match="non-empty"):
        LayerClient(peer_target, "")


def test_peer_settings_reset_between_tests(peer: Peer) -> None:
    assert peer.settings == PeerSettings()
