"""End to end: LayerClient and AsyncLayerClient against `layertap serve` (layertap.server), both encodings."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap import errors
from layertap.client import AsyncLayerClient, LayerClient
from tests.fixtures.client_peer import ECHO_DTYPES, MODEL, dense_1, dense_2, scores

X = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 2.0]], dtype=np.float32)


@pytest.fixture(scope="module", params=[False, True], ids=["typed", "tensor_content"])
def served(
    request: pytest.FixtureRequest, toy_saved_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    from layertap.server import ServerOptions, create_server

    base = tmp_path_factory.mktemp("repository") / MODEL
    shutil.copytree(toy_saved_model, base / "1")
    options = ServerOptions(
        port=0,
        model_name=MODEL,
        model_base_path=str(base),
        enable_serialization_as_tensor_content=request.param,
        enable_model_warmup=False,
        enable_grpc_healthcheck_service=False,
        drain_seconds=0.0,
    )
    server, port = create_server(options)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def sample(dtype: str) -> np.ndarray:
    if dtype == "string":
        return np.array([b"layer", b"\x00\xff"], dtype=object)
    if dtype == "bool":
        return np.array([[True, False]])
    if dtype.startswith("complex"):
        return np.array([1 - 2j, 0.5j], dtype=dtype)
    info: Any = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
    return np.array([[info.min, info.max], [0, 1]], dtype=dtype)


def test_layers_groups_and_every_dtype(served: str) -> None:
    with LayerClient(served, MODEL) as client:
        client.wait_ready(timeout=30)
        catalogue = client.layers()
        assert catalogue.version == 1 and catalogue.layers["scores"].signature == "heads"
        np.testing.assert_allclose(client.predict_layer(X, "dense_1"), dense_1(X), rtol=1e-6)
        both = client.predict(X, ["dense_1", "dense_2"])  # the "features" group, one call
        np.testing.assert_allclose(both["dense_2"], dense_2(X), rtol=1e-6)
        np.testing.assert_allclose(client.predict(X, ["scores"])["scores"], scores(X), rtol=1e-6)
        np.testing.assert_allclose(client.predict(X)["dense_2"], dense_2(X), rtol=1e-6)
        for dtype in ECHO_DTYPES:
            x = sample(dtype)
            out = client.predict_layer(x, f"echo_{dtype}")
            assert out.dtype == x.dtype and out.tolist() == x.tolist(), dtype


def test_errors_from_layertap_serve(served: str) -> None:
    with LayerClient(served, MODEL, retry=None, validate=False) as client:
        client.layers()
        with pytest.raises(errors.InvalidArgumentError, match="input"):
            client.predict({"wrong": X}, "dense_1")
    with LayerClient(served, "missing", retry=None) as client, pytest.raises(errors.ModelNotFoundError):
        client.layers()
    with (
        LayerClient(served, MODEL, version=9, retry=None) as client,
        pytest.raises(errors.ModelNotFoundError),
    ):
        client.predict_layer(X, "dense_1")


def test_async_client_against_layertap_serve(served: str) -> None:
    async def main() -> dict[str, np.ndarray]:
        async with AsyncLayerClient(served, MODEL, max_batch_size=1) as client:
            return await client.predict(X, ["scores", "dense_2"])

    out = asyncio.run(main())
    np.testing.assert_allclose(out["scores"], scores(X), rtol=1e-6)
    np.testing.assert_allclose(out["dense_2"], dense_2(X), rtol=1e-6)
