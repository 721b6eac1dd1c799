"""Transports: TLS with TF Serving's SSLConfig (PEM inline), and a UNIX socket (--grpc_socket_path)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from layertap.errors import ConfigParseError
from tests.fixtures.certificates import self_signed


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


def test_an_ssl_config_the_checked_reader_refuses_fails_before_any_model_loads(
    start_server: Callable[..., tuple], tmp_path: Path
) -> None:
    key, cert = self_signed()
    config = tmp_path / "ssl.config"
    config.write_text(f"server_key: {key!r}\nserver_cert: {cert!r}\nclient_verify: true\n".replace("'", '"'))
    # No model at the base path: had the file been read after loading, loading would have failed first.
    absent = tmp_path / "no_models" / "m"
    with pytest.raises(ConfigParseError) as caught:
        start_server(model_name="m", model_base_path=str(absent), ssl_config_file=str(config))
    assert str(caught.value) == (
        f"{config}: SSLConfig.client_verify needs custom_ca: the CA that signs the client certificates"
    )


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
