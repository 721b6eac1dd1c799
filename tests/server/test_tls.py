"""Transports: TLS with TF Serving's SSLConfig (PEM inline), and a UNIX socket (--grpc_socket_path)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from tests.certificates import self_signed


def test_tls_serving_with_tf_serving_ssl_config(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple], tmp_path: Path
) -> None:
    key, cert = self_signed()
    config = tmp_path / "ssl.config"
    config.write_text(f"server_key: {key!r}\nserver_cert: {cert!r}\nclient_verify: false\n".replace("'", '"'))
    base = make_repo("m", {1: "1"})
    server, _ = start_server(model_name="m", model_base_path=str(base), ssl_config_file=str(config))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.encode())
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "m"
    with grpc.secure_channel(
        f"127.0.0.1:{server.port}", credentials, options=[("grpc.ssl_target_name_override", "localhost")]
    ) as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    assert [s.version for s in response.model_version_status] == [1]
    # A plaintext client cannot talk to it.
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel, pytest.raises(grpc.RpcError) as caught:
        model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_unix_socket_beside_the_tcp_port(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple], tmp_path: Path
) -> None:
    base = make_repo("m", {1: "1"})
    socket_path = tmp_path / "serving.sock"
    start_server(model_name="m", model_base_path=str(base), grpc_socket_path=str(socket_path))
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "m"
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    assert [s.version for s in response.model_version_status] == [1]
