"""Security and limits on a real `layertap serve`: TLS and mutual TLS (TF Serving's --ssl_config_file) with
certificates made in the test, message size limits on both sides, loopback by default, safe names.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from layertap.client import TLS, LayerClient
from layertap.errors import MessageTooLargeError, ServerUnavailableError, UsageError
from layertap.exporter.publish import Repository
from layertap.server import ServerOptions
from layertap.server.app import LayertapServer

IMAGE = np.zeros((1, 28, 28, 1), np.float32)


@dataclass(frozen=True)
class Pair:
    key: str
    cert: str


def _key() -> object:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _issue(
    common_name: str, issuer: tuple[object, object] | None, *, ca: bool = False
) -> tuple[object, object]:
    """A certificate (and its key) for `common_name`, signed by `issuer` (key, cert) or self-signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer_key, signer_cert = issuer if issuer else (key, None)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_cert.subject if signer_cert else name)  # type: ignore[attr-defined]
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return key, builder.sign(signer_key, hashes.SHA256())  # type: ignore[arg-type]


def _pem(key_and_cert: tuple[object, object]) -> Pair:
    from cryptography.hazmat.primitives import serialization

    key, cert = key_and_cert
    key_pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return Pair(key_pem, cert.public_bytes(serialization.Encoding.PEM).decode())  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Pki:
    ca: Pair
    server: Pair
    client: Pair
    other_ca: Pair
    stranger: Pair  # a client certificate from the other CA


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = _issue("layertap test CA", None, ca=True)
    other = _issue("another CA", None, ca=True)
    return Pki(
        ca=_pem(ca),
        server=_pem(_issue("localhost", ca)),
        client=_pem(_issue("client", ca)),
        other_ca=_pem(other),
        stranger=_pem(_issue("stranger", other)),
    )


def _ssl_config(path: Path, pki: Pki, *, mutual: bool) -> str:
    def quoted(text: str) -> str:
        return '"' + text.replace("\n", "\\n") + '"'

    lines = [f"server_key: {quoted(pki.server.key)}", f"server_cert: {quoted(pki.server.cert)}"]
    if mutual:
        lines += [f"custom_ca: {quoted(pki.ca.cert)}", "client_verify: true"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _answers(server: LayertapServer, tls: TLS | None) -> bool:
    with LayerClient(server.address, "cnn", tls=tls, timeout=10, retry=None) as client:
        return client.predict(IMAGE, ["conv_1"])["conv_1"].shape == (1, 26, 26, 32)


def test_tls_refuses_plaintext_and_clients_trusting_another_ca(
    pki: Pki, serve: Callable[..., LayertapServer], model_base: Callable[..., Path], tmp_path: Path
) -> None:
    config = _ssl_config(tmp_path / "ssl.config", pki, mutual=False)
    server = serve(model_name="cnn", model_base_path=str(model_base()), ssl_config_file=config)
    assert _answers(server, TLS(ca_cert=pki.ca.cert.encode()))
    with pytest.raises(ServerUnavailableError):
        _answers(server, None)  # plaintext
    with pytest.raises(ServerUnavailableError):
        _answers(server, TLS(ca_cert=pki.other_ca.cert.encode()))


def test_mutual_tls_refuses_clients_without_a_certificate_or_from_another_ca(
    pki: Pki, serve: Callable[..., LayertapServer], model_base: Callable[..., Path], tmp_path: Path
) -> None:
    config = _ssl_config(tmp_path / "ssl.config", pki, mutual=True)
    server = serve(model_name="cnn", model_base_path=str(model_base()), ssl_config_file=config)
    ca = pki.ca.cert.encode()
    mutual = TLS(ca_cert=ca, client_cert=pki.client.cert.encode(), client_key=pki.client.key.encode())
    assert _answers(server, mutual)
    with pytest.raises(ServerUnavailableError):
        _answers(server, TLS(ca_cert=ca))  # no client certificate
    stranger = TLS(ca_cert=ca, client_cert=pki.stranger.cert.encode(), client_key=pki.stranger.key.encode())
    with pytest.raises(ServerUnavailableError):
        _answers(server, stranger)
    with pytest.raises(ServerUnavailableError):
        _answers(server, None)


def test_server_message_limit_is_configurable_and_reported(
    serve: Callable[..., LayertapServer], model_base: Callable[..., Path]
) -> None:
    server = serve(
        model_name="cnn",
        model_base_path=str(model_base()),
        grpc_channel_arguments="grpc.max_receive_message_length=65536",
    )
    with LayerClient(server.address, "cnn", timeout=10, retry=None) as client:
        assert client.predict(IMAGE, ["conv_1"])["conv_1"].shape == (1, 26, 26, 32)  # 3 KiB request
        with pytest.raises(MessageTooLargeError) as caught:
            client.predict(np.zeros((32, 28, 28, 1), np.float32), ["conv_1"])  # 100 KiB request
    assert "65536" in str(caught.value)


def test_client_message_limit_is_configurable_and_reported(
    serve: Callable[..., LayertapServer], model_base: Callable[..., Path]
) -> None:
    server = serve(model_name="cnn", model_base_path=str(model_base()))
    options = {"grpc.max_receive_message_length": 50_000}
    with LayerClient(server.address, "cnn", timeout=10, retry=None, options=options) as client:
        assert client.predict(IMAGE, ["flatten"])["flatten"].shape == (1, 1600)  # 6 KiB reply
        with pytest.raises(MessageTooLargeError) as caught:
            client.predict(IMAGE, ["conv_1"])  # 86 KiB reply
    assert "50000" in str(caught.value)


def test_nothing_listens_beyond_loopback_unless_asked(
    serve: Callable[..., LayertapServer], model_base: Callable[..., Path]
) -> None:
    import psutil

    assert ServerOptions().bind_address == "127.0.0.1"
    with socket.socket() as probe:  # a free port for the REST API (0 would disable it, as in TF Serving)
        probe.bind(("127.0.0.1", 0))
        rest_port = int(probe.getsockname()[1])
    server = serve(model_name="cnn", model_base_path=str(model_base()), rest_api_port=rest_port)
    ours = psutil.Process().net_connections(kind="inet")
    listening = {c.laddr.port: c.laddr.ip for c in ours if c.status == psutil.CONN_LISTEN}
    assert _loopback(listening[server.port])
    assert server.rest_port in listening
    assert all(_loopback(ip) for ip in listening.values()), listening


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def test_model_names_are_plain_directory_names(tmp_path: Path) -> None:
    for name in ["", "..", "../escape", "a/b", ".hidden", "a\\b", "a b", "a\0b", "tab\tname"]:
        with pytest.raises(UsageError, match="not a plain directory name"):
            Repository(tmp_path, name)
    for name in ["mnist_cnn", "ResNet50-v2", "m.1"]:
        assert Repository(tmp_path, name).path == tmp_path / name
