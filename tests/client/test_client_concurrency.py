"""`max_concurrency` means the same in LayerClient and AsyncLayerClient: how many requests ONE call
keeps in flight. Calls sharing a client are not throttled client-wide, and metadata is not counted."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from layertap.client import AsyncLayerClient, LayerClient
from tests.fixtures.client_peer import MODEL, Peer, dense_1

X = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)


def _one_call(target: str, flavour: str, limit: int) -> np.ndarray:
    if flavour == "sync":
        with LayerClient(target, MODEL, max_batch_size=1, max_concurrency=limit) as client:
            return client.predict_layer(X, "dense_1")

    async def main() -> np.ndarray:
        async with AsyncLayerClient(target, MODEL, max_batch_size=1, max_concurrency=limit) as client:
            return await client.predict_layer(X, "dense_1")

    return asyncio.run(main())


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("limit", [1, 3])
def test_one_call_keeps_at_most_max_concurrency_in_flight(
    peer_target: str, peer: Peer, flavour: str, limit: int
) -> None:
    peer.settings.delay = 0.3  # long enough for the chunks to overlap on the server
    np.testing.assert_allclose(_one_call(peer_target, flavour, limit), dense_1(X), rtol=1e-5, atol=1e-6)
    assert peer.count("Predict") == 6
    assert peer.settings.most_in_flight == limit


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_calls_sharing_a_client_are_not_throttled_client_wide(
    peer_target: str, peer: Peer, flavour: str
) -> None:
    peer.settings.delay = 0.3
    callers = 5
    if flavour == "sync":
        with LayerClient(peer_target, MODEL, max_concurrency=1) as client:
            client.layers()
            results: list[np.ndarray] = []
            threads = [
                threading.Thread(target=lambda: results.append(client.predict_layer(X, "dense_1")))
                for _ in range(callers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    else:

        async def main() -> list[np.ndarray]:
            async with AsyncLayerClient(peer_target, MODEL, max_concurrency=1) as client:
                await client.layers()
                return list(
                    await asyncio.gather(*(client.predict_layer(X, "dense_1") for _ in range(callers)))
                )

        results = asyncio.run(main())
    assert len(results) == callers
    for result in results:
        np.testing.assert_allclose(result, dense_1(X), rtol=1e-5, atol=1e-6)
    # One request per call, five calls at once: all five on the wire together.
    assert peer.settings.most_in_flight == callers
    assert peer.count("GetModelMetadata") == 1
