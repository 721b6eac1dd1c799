"""layertap.client.ServingClient against `layertap serve` on half_plus_two, and REST giving the same
numbers and the same refusals for the same calls (one core behind both transports)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import numpy as np
import pytest

from layertap.client import AsyncServingClient, Classification, ServingClient
from layertap.errors import InvalidArgumentError
from layertap.server.app import LayertapServer
from layertap.server.rest.server import http_status
from tests.server.rest_peer import call, error

EXAMPLES = [{"x": 1.0}, {"x": 2.0}, {"x": 5.0}]


@pytest.fixture
def client(rest_server: LayertapServer) -> Any:
    with ServingClient(f"127.0.0.1:{rest_server.port}", "half_plus_two", timeout=30) as serving:
        yield serving


def test_classify_regress_multi_inference_and_predict(
    client: ServingClient, rest_server: LayertapServer
) -> None:
    classified = client.classify(EXAMPLES, signature="classify_x_to_y")
    assert isinstance(classified, Classification)
    assert classified.scores.tolist() == [[2.5], [3.0], [4.5]] and classified.labels.tolist() == [[""]] * 3
    assert client.regress(EXAMPLES, signature="regress_x_to_y2").tolist() == [3.5, 4.0, 5.5]
    assert client.regress([{"x2": 1.0}], context={"x": 3.0}, signature="regress_x_to_y").tolist() == [3.5]
    results = client.multi_inference(EXAMPLES, {"classify_x_to_y": "classify", "regress_x_to_y": "regress"})
    assert np.asarray(results["regress_x_to_y"]).tolist() == [2.5, 3.0, 4.5]
    assert client.predict({"x": np.array([[1.0]], np.float32)})["y"].tolist() == [[2.5]]
    # The same call over REST answers the same numbers.
    body = json.loads(
        call(
            rest_server.rest_port,
            "POST",
            "/v1/models/half_plus_two:regress",
            {"signature_name": "regress_x_to_y2", "examples": EXAMPLES},
        )[1]
    )
    assert body == {"results": [3.5, 4.0, 5.5]}


def test_the_async_client_gives_the_same_answers(rest_server: LayertapServer) -> None:
    async def calls() -> Any:
        async with AsyncServingClient(f"127.0.0.1:{rest_server.port}", "half_plus_two", timeout=30) as client:
            return await client.classify(EXAMPLES[:1], signature="classify_x_to_y")

    assert asyncio.run(calls()).scores.tolist() == [[2.5]]


def test_a_refused_classify_is_the_same_refusal_over_grpc_and_rest(
    client: ServingClient, rest_server: LayertapServer
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.classify(EXAMPLES, signature="regress_x_to_y")  # a regression signature
    assert caught.value.code == "INVALID_ARGUMENT"
    rest = error(
        rest_server.rest_port,
        "POST",
        "/v1/models/half_plus_two:classify",
        {"signature_name": "regress_x_to_y", "examples": EXAMPLES},
    )
    assert rest == (http_status(grpc.StatusCode.INVALID_ARGUMENT), caught.value.details)


def test_serving_clients_report_status_and_wait_ready(
    client: ServingClient, rest_server: LayertapServer
) -> None:
    # The status calls are the clients' shared base: ServingClient has them as LayerClient does.
    ready = client.wait_ready(timeout=30)
    assert [(v.version, v.state, v.error_code) for v in ready] == [(123, "AVAILABLE", 0)]
    assert client.status() == ready

    async def status() -> Any:
        async with AsyncServingClient(f"127.0.0.1:{rest_server.port}", "half_plus_two") as twin:
            return await twin.wait_ready(timeout=30), await twin.status()

    assert asyncio.run(status()) == (ready, ready)
