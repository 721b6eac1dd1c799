"""Hostile input over REST: hypothesis fuzzes a real `layertap serve` (in-process, 127.0.0.1) over
HTTP, as tests/reliability/test_reliability_fuzz.py does over gRPC.

Malformed and deeply nested JSON, numbers out of range, overflowing versions, wrong methods and paths,
random bytes, huge bodies and slow clients: every answer is JSON (`{"error": ...}` with TF Serving's
HTTP code, never 500), the keep-alive connection stays usable after every error, memory stays
bounded and so do the threads. 3,000 fuzzed requests in all: 500 JSON documents and 500 byte strings (twice),
500 methods and paths, and 500 bad requests sent over both REST and gRPC, which must get the same
code and message through the one core.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any

import grpc
import psutil
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from layertap.server.rest.server import MAX_BODY_BYTES, http_status
from layertap.server.status import QUEUE_FULL_MESSAGE
from tests.server.rest_peer import REST_TIMEOUT_MS

MIB = 1024 * 1024
FUZZ = {"max_examples": 500, "deadline": None, "suppress_health_check": list(HealthCheck), "database": None}
#: What a bad request may get: TF Serving's codes for the errors it can cause (never 500).
CLIENT_ERRORS = {400, 404, 501, 503}


@pytest.fixture(scope="module")
def server(rest_server: Any) -> Any:
    return rest_server


class Client:
    """One keep-alive HTTP connection; every answer must be JSON and leave the connection open."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        self.connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        raw = response.read()
        assert response.getheader("Content-Type") == "application/json", (method, path, response.status, raw)
        assert not response.will_close, (method, path, response.status)  # the connection was kept
        if method == "HEAD":
            return response.status, None
        return response.status, json.loads(raw)


@pytest.fixture(scope="module")
def client(server: Any) -> Client:
    return Client(server.rest_port)


def _check(status: int, body: Any) -> None:
    if status == 200:
        return
    assert status in CLIENT_ERRORS, (status, body)
    assert isinstance(body, dict) and list(body) == ["error"] and isinstance(body["error"], str), body
    assert body["error"], status


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.just({"b64": "AAEC"})
    | st.just({"b64": "not base64!"}),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=20,
)
request_keys = st.sampled_from(
    ["instances", "inputs", "signature_name", "examples", "context", "x", "a", "b", "n", "inputs "]
)
documents = st.dictionaries(request_keys, json_values, max_size=4)
calls = st.sampled_from(
    [
        "/v1/models/half_plus_two:predict",
        "/v1/models/half_plus_two:classify",
        "/v1/models/half_plus_two:regress",
        "/v1/models/half_plus_two/versions/123:predict",
        "/v1/models/m:predict",
        "/v1/models/m/labels/x:predict",
    ]
)
signatures = st.sampled_from(
    [
        "",
        "serving_default",
        "classify_x_to_y",
        "regress_x_to_y",
        "regress_x2_to_y3",
        "add",
        "outer/half",
        "nope",
    ]
)


def test_fuzzed_json_gets_json_answers_and_the_connection_survives(client: Client) -> None:
    rss_before = psutil.Process().memory_info().rss
    statuses: dict[int, int] = {}

    @settings(**FUZZ)
    @given(path=calls, document=documents, signature=signatures)
    @example(path="/v1/models/half_plus_two:predict", document={"instances": [1.0]}, signature="")
    @example(
        path="/v1/models/half_plus_two:regress", document={"examples": [{"x": 1}]}, signature="regress_x_to_y"
    )
    @example(path="/v1/models/m:predict", document={"inputs": {"a": [1], "b": [2**63]}}, signature="add")
    def documents_case(path: str, document: dict[str, Any], signature: str) -> None:
        if signature:
            document.setdefault("signature_name", signature)
        status, body = client.send("POST", path, json.dumps(document, allow_nan=True).encode())
        statuses[status] = statuses.get(status, 0) + 1
        _check(status, body)

    @settings(**FUZZ)
    @given(path=calls, data=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
    def bytes_case(path: str, data: bytes) -> None:
        status, body = client.send("POST", path, data)
        statuses[status] = statuses.get(status, 0) + 1
        _check(status, body)

    documents_case()
    bytes_case()
    rss_warm = psutil.Process().memory_info().rss
    # The same 1,000 requests again: memory that grows per request grows in both rounds, while what a
    # process late in a long test session allocates once (malloc arenas for new server threads, first-use
    # caches; 148 MiB in one CI run, 8 MiB in a fresh process) shows only in the first.
    documents_case()
    bytes_case()
    rss_after = psutil.Process().memory_info().rss
    rss = " -> ".join(f"{value / MIB:.0f}" for value in (rss_before, rss_warm, rss_after))
    print(f"REST fuzz: {statuses}, RSS {rss} MiB")
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0
    assert rss_warm - rss_before < 256 * MIB
    assert rss_after - rss_warm < 32 * MIB


path_parts = st.sampled_from(
    [
        "/v1",
        "/models",
        "/half_plus_two",
        "/m",
        "/nope",
        "/versions/",
        "/labels/",
        "/metadata",
        ":predict",
        ":classify",
        ":regress",
        ":PREDICT",
        "/",
        "%41",
        "%ff",
        "%zz",
        "/v2",
        "?q=1",
        "//",
    ]
)
digits = st.integers(min_value=0, max_value=10**30).map(str)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])


def test_fuzzed_methods_paths_and_versions_get_json_answers(client: Client) -> None:
    @settings(**FUZZ)
    @given(method=methods, parts=st.lists(path_parts | digits, max_size=7))
    def case(method: str, parts: list[str]) -> None:
        path = "/" + "".join(parts).lstrip("/")
        status, body = client.send(method, path, b"{}" if method in ("POST", "PUT", "PATCH") else None)
        if method != "HEAD":
            _check(status, body)
        else:
            assert status == 200 or status in CLIENT_ERRORS

    case()


def test_rest_and_grpc_answer_one_bad_request_identically(server: Any) -> None:
    from layertap.client._errors import code_name  # the client's own reading of a status

    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
    from layertap.proto import serving_pb2 as pb
    from layertap.wire import codec

    rest = Client(server.rest_port)

    @settings(**FUZZ)
    @given(
        name=st.sampled_from(["half_plus_two", "m"])
        | st.text("abcxyz_-.0123456789", min_size=1, max_size=12),
        version=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    )
    def case(name: str, version: int | None) -> None:
        if version in (None, 123, 1) and name in ("half_plus_two", "m"):
            version = 7  # a version that is not served: every case is a bad request
        spec = pb.ModelSpec(name=name)
        if version is not None:
            spec.version.value = version
        import numpy as np

        request = codec.encode_predict_request(spec, {"x": np.ones((1, 1), np.float32)})
        with pytest.raises(grpc.RpcError) as caught:
            predict(request, timeout=10)
        path = f"/v1/models/{name}" + (f"/versions/{version}" if version is not None else "") + ":predict"
        status, body = rest.send("POST", path, b'{"instances": [[1.0]]}')
        grpc_code = caught.value.code()
        assert code_name(caught.value) == grpc_code.name
        assert (status, body["error"]) == (http_status(grpc_code), caught.value.details())

    case()
    channel.close()


def test_a_hundred_thousand_nested_lists_get_a_json_error(client: Client) -> None:
    body = b'{"instances": ' + b"[" * 100_000 + b"1.0" + b"]" * 100_000 + b"}"
    status, answer = client.send("POST", "/v1/models/half_plus_two:predict", body)
    assert status == 400 and answer["error"].startswith("JSON Parse error: the document nests deeper"), answer
    assert client.send("GET", "/v1/models/half_plus_two")[0] == 200


def _raw(port: int, data: bytes, wait: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_huge_bodies_are_refused_before_they_are_read(server: Any) -> None:
    declared = (
        "POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    )
    answer = _raw(server.rest_port, declared.encode())  # nothing of the body is sent
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body)["error"].startswith(f"Request body of {MAX_BODY_BYTES + 1} bytes exceeds")
    # Chunked, so no length is declared: refused once the body grows past the limit.
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
    chunk = b" " * MIB
    # Four chunks past the limit, as a client streaming a file sends them: the server refuses once the
    # limit is passed and reads the rest away, so the client, still sending, gets the 413 and not a
    # connection reset by the server closing with the body unread.
    chunks = MAX_BODY_BYTES // MIB + 4
    connection.request(
        "POST", "/v1/models/half_plus_two:predict", body=iter([chunk] * chunks), encode_chunked=True
    )
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"].startswith(f"Request body of {chunks * MIB} bytes exceeds")
    connection.close()


def test_slow_clients_hold_no_thread_and_time_out_with_a_json_error(server: Any, client: Client) -> None:
    threads_before = threading.active_count()
    stalled = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", server.rest_port))
        sock.sendall(
            b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        )
        stalled.append(sock)
    try:
        time.sleep(0.5)
        assert threading.active_count() - threads_before < 8  # no thread per connection
        started = time.monotonic()
        status, body = client.send("POST", "/v1/models/half_plus_two:predict", b'{"instances": [[1.0]]}')
        assert status == 200 and body == {"predictions": [[2.5]]}
        assert time.monotonic() - started < 10
        # A body that never completes is answered once the REST deadline has passed.
        stalled[0].settimeout(30)
        answer = b""
        while chunk := stalled[0].recv(65536):
            answer += chunk
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        message = f"Request body not received within --rest_api_timeout_in_ms={REST_TIMEOUT_MS}"
        assert json.loads(payload) == {"error": message}
    finally:
        for sock in stalled:
            sock.close()


def test_concurrency_is_bounded_by_the_core(server: Any) -> None:
    # grpc_max_threads=2 and max_queued_requests=2 here: beyond four admitted, TF Serving's full queue.
    outcomes: list[tuple[int, Any]] = []
    body = json.dumps({"signature_name": "spin", "inputs": 40000}).encode()

    def spin() -> None:
        outcomes.append(Client(server.rest_port).send("POST", "/v1/models/m:predict", body))

    workers = [threading.Thread(target=spin) for _ in range(24)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    statuses = sorted({status for status, _ in outcomes})
    # Admitted requests finish (200) or run out of the REST deadline (504, on a loaded machine).
    assert len(outcomes) == 24 and set(statuses) <= {200, 503, 504}, outcomes
    refused = [answer for status, answer in outcomes if status == 503]
    assert refused and all(answer == {"error": QUEUE_FULL_MESSAGE} for answer in refused)
    assert len(refused) < 24
