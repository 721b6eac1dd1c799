"""AsyncLayerClient on grpc.aio: the same answers and errors as LayerClient."""

from __future__ import annotations

import asyncio
import inspect

import grpc
import numpy as np
import pytest

from layertap import errors
from layertap.client import AsyncLayerClient, LayerClient, Retry
from tests.fixtures.client_peer import MODEL, Peer, dense_1, dense_2, scores

X = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.0]], dtype=np.float32)


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_async_predictions_match(peer_target: str, peer: Peer) -> None:
    async def main() -> dict[str, np.ndarray]:
        async with AsyncLayerClient(peer_target, MODEL) as client:
            catalogue = await client.layers()
            assert catalogue.layers["scores"].signature == "heads"
            one = await client.predict_layer(X, "dense_1")
            both = await client.predict(X, ["scores", "dense_2"])  # no common group: two calls
            return {"one": one, **both}

    out = run(main())
    assert isinstance(out, dict)
    np.testing.assert_allclose(out["one"], dense_1(X), rtol=1e-6)
    np.testing.assert_allclose(out["scores"], scores(X), rtol=1e-6)
    np.testing.assert_allclose(out["dense_2"], dense_2(X), rtol=1e-6)
    assert peer.count("GetModelMetadata") == 1 and peer.count("Predict") == 3


def test_async_concurrent_calls_and_splitting(peer_target: str, peer: Peer) -> None:
    x = np.random.default_rng(2).normal(size=(11, 4)).astype(np.float32)

    async def main() -> list[np.ndarray]:
        async with AsyncLayerClient(peer_target, MODEL, max_batch_size=4, max_concurrency=2) as client:
            return list(
                await asyncio.gather(*(client.predict_layer(x[: i + 6], "dense_1") for i in range(6)))
            )

    results = run(main())
    assert isinstance(results, list)
    for index, out in enumerate(results):
        np.testing.assert_allclose(out, dense_1(x[: index + 6]), rtol=1e-5, atol=1e-6)
    assert peer.count("GetModelMetadata") == 1  # the catalogue is fetched once for all of them


def test_async_errors_retries_and_deadlines(peer_target: str, peer: Peer) -> None:
    async def main() -> None:
        fast = Retry(attempts=3, initial_backoff=0.01, max_backoff=0.02)
        async with AsyncLayerClient(peer_target, MODEL, retry=fast) as client:
            await client.layers()
            peer.fail_next(grpc.StatusCode.UNAVAILABLE, "queue full", times=2)
            np.testing.assert_allclose(await client.predict_layer(X, "dense_1"), dense_1(X), rtol=1e-6)
            peer.fail_next(grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "dense_1" not found.')
            with pytest.raises(errors.SignatureNotFoundError, match="Layers of model 'toy'"):
                await client.predict_layer(X, "dense_1")
            peer.settings.delay = 1.0
            with pytest.raises(errors.DeadlineExceededError):
                await client.predict_layer(X, "dense_1", timeout=0.2)
            peer.settings.delay = 0.0
            with pytest.raises(errors.LayerNotFoundError):
                await client.predict_layer(X, "nope")

    run(main())
    assert peer.count("Predict") == 5


def test_async_status_and_wait_ready(peer_target: str, peer: Peer) -> None:
    peer.settings.loading_polls = 2

    async def main() -> list[str]:
        async with AsyncLayerClient(peer_target, MODEL) as client:
            first = await client.status()
            ready = await client.wait_ready(timeout=10, poll_interval=0.01)
            return [first[0].state, ready[0].state]

    assert run(main()) == ["LOADING", "AVAILABLE"]


def test_sync_and_async_offer_the_same_methods() -> None:
    public = {name for name in dir(LayerClient) if not name.startswith("_")}
    assert public == {name for name in dir(AsyncLayerClient) if not name.startswith("_")}
    for name in public:
        if isinstance(getattr(LayerClient, name), property):  # `settings`: the same value on both
            assert isinstance(getattr(AsyncLayerClient, name), property), name
            continue
        sync_params = inspect.signature(getattr(LayerClient, name)).parameters
        async_params = inspect.signature(getattr(AsyncLayerClient, name)).parameters
        assert list(sync_params) == list(async_params), name
    assert list(inspect.signature(LayerClient).parameters) == list(
        inspect.signature(AsyncLayerClient).parameters
    )
