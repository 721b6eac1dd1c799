"""A `layertap serve` with REST on loopback, serving TF Serving's half_plus_two and the `m` test model,
for the REST fidelity and fuzz tests (one server per test module)."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from layertap.server import ServerOptions, create_server
from layertap.server.app import LayertapServer

#: The REST deadline of `rest_server`, short so the slow-client test waits little.
REST_TIMEOUT_MS = 3000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_rest(half_plus_two: Path, m_export: Path, root: Path, **flags: Any) -> Iterator[LayertapServer]:
    """A server for models "half_plus_two" (version 123) and "m" (version 1, tests/server's export)."""
    shutil.copytree(m_export, root / "m" / "1")
    config = root / "models.config"
    config.write_text(
        "model_config_list {\n"
        f'  config {{ name: "half_plus_two" base_path: "{half_plus_two}" model_platform: "tensorflow" }}\n'
        f'  config {{ name: "m" base_path: "{root / "m"}" model_platform: "tensorflow" }}\n'
        "}\n"
    )
    settings: dict[str, Any] = {
        "port": 0,
        "max_num_load_retries": 0,
        "grpc_max_threads": 4,
        "model_config_file": str(config),
        "rest_api_port": free_port(),
        "enable_model_warmup": False,
    }
    server, _ = create_server(ServerOptions(**{**settings, **flags}))
    try:
        yield server
    finally:
        server.stop(grace=1.0)


@pytest.fixture(scope="session")
def rest_server(
    half_plus_two: Path, generation_exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LayertapServer]:
    """One server for the REST test modules (import this fixture): half_plus_two and m, a 3 s REST
    deadline, and a small admission bound (2 running, 2 queued) so it is easy to reach."""
    root = tmp_path_factory.mktemp("rest")
    with serve_rest(
        half_plus_two,
        generation_exports["1"],
        root,
        rest_api_timeout_in_ms=REST_TIMEOUT_MS,
        grpc_max_threads=2,
        max_queued_requests=2,
    ) as running:
        yield running


def call(
    port: int, method: str, path: str, body: bytes | dict[str, Any] | None = None, timeout: float = 30
) -> tuple[int, bytes, dict[str, str]]:
    """One HTTP request on a fresh connection: status, raw body and headers."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=data)
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def error(port: int, method: str, path: str, body: bytes | dict[str, Any] | None = None) -> tuple[int, str]:
    """The status and error message of a request that must fail with a JSON error."""
    status, raw, headers = call(port, method, path, body)
    assert headers["content-type"] == "application/json", (status, raw)
    parsed = json.loads(raw)
    assert list(parsed) == ["error"], parsed
    return status, parsed["error"]
