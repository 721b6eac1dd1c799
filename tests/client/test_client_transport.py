"""Channels: TLS and mutual TLS, compression, round-robin over several servers, large messages."""

from __future__ import annotations

import socket
import threading

import grpc
import numpy as np
import pytest

from layertap import errors
from layertap.client import TLS, LayerClient
from layertap.client._channel import channel_options
from tests.fixtures.certificates import Certificates
from tests.fixtures.client_peer import MODEL, Peer, dense_1, start_server

X = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)


def tls_server(peer: Peer, certificates: Certificates, *, mutual: bool) -> tuple[grpc.Server, int]:
    credentials = grpc.ssl_server_credentials(
        [(certificates.server_key, certificates.server_cert)],
        root_certificates=certificates.ca if mutual else None,
        require_client_auth=mutual,
    )
    return start_server(peer, credentials=credentials)


def test_tls_with_a_private_ca(peer: Peer, certificates: Certificates, tmp_path: object) -> None:
    server, port = tls_server(peer, certificates, mutual=False)
    try:
        with LayerClient(f"localhost:{port}", MODEL, tls=TLS(ca_cert=certificates.ca)) as client:
            np.testing.assert_allclose(client.predict_layer(X, "dense_1"), dense_1(X), rtol=1e-6)
        # By IP address, the certificate is checked against the name given instead.
        settings = TLS(ca_cert=certificates.ca, server_name="localhost")
        with LayerClient(f"127.0.0.1:{port}", MODEL, tls=settings) as client:
            assert client.layers().version == 1
        # A plaintext client cannot talk to a TLS server.
        with (
            LayerClient(f"localhost:{port}", MODEL, retry=None, timeout=5) as client,
            pytest.raises(errors.ServerUnavailableError),
        ):
            client.layers()
    finally:
        server.stop(None)


def test_tls_refuses_a_server_signed_by_another_ca(peer: Peer, certificates: Certificates) -> None:
    server, port = tls_server(peer, certificates, mutual=False)
    try:
        with (
            LayerClient(
                f"localhost:{port}", MODEL, tls=TLS(ca_cert=certificates.client_cert), retry=None
            ) as client,
            pytest.raises(errors.ServerUnavailableError),
        ):
            client.layers()
    finally:
        server.stop(None)


def test_mutual_tls(peer: Peer, certificates: Certificates, tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "ca.pem").write_bytes(certificates.ca)
    (folder / "client.pem").write_bytes(certificates.client_cert)
    (folder / "client.key").write_bytes(certificates.client_key)
    server, port = tls_server(peer, certificates, mutual=True)
    try:
        # Certificates given as file paths this time.
        mutual = TLS(
            ca_cert=folder / "ca.pem",
            client_cert=str(folder / "client.pem"),
            client_key=folder / "client.key",
        )
        with LayerClient(f"localhost:{port}", MODEL, tls=mutual) as client:
            np.testing.assert_allclose(client.predict_layer(X, "dense_1"), dense_1(X), rtol=1e-6)
        with (
            LayerClient(f"localhost:{port}", MODEL, tls=TLS(ca_cert=certificates.ca), retry=None) as client,
            pytest.raises(errors.ServerUnavailableError),
        ):
            client.layers()  # no client certificate: the server hangs up
    finally:
        server.stop(None)
    with pytest.raises(errors.UsageError, match="both client_cert and client_key"):
        TLS(client_cert=certificates.client_cert)
    with pytest.raises(errors.UsageError, match="cannot read PEM file"):
        LayerClient("localhost:1", MODEL, tls=TLS(ca_cert=folder / "missing.pem"))


class CountingProxy:
    """A TCP relay on 127.0.0.1 that counts the bytes the client sends, to see compression on the wire."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.sent = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(downstream, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if count:
                    self.sent += len(chunk)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            sink.close()

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_gzip_compresses_requests_on_the_wire(peer_target: str, peer: Peer, compression: str | None) -> None:
    proxy = CountingProxy(int(peer_target.rsplit(":", 1)[1]))
    x = np.zeros((65536, 4), np.float32)  # 1 MiB of zeros: gzip shrinks it a hundredfold
    try:
        with LayerClient(f"127.0.0.1:{proxy.port}", MODEL, compression=compression) as client:
            client.layers()
            before = proxy.sent
            np.testing.assert_allclose(client.predict_layer(x, "dense_1"), dense_1(x), rtol=1e-6)
            sent = proxy.sent - before
    finally:
        proxy.close()
    if compression is None:
        assert sent > x.nbytes
    else:
        assert sent < x.nbytes // 20


def test_several_addresses_share_the_calls(peer: Peer) -> None:
    first, second = peer.twin(), peer.twin()
    servers = [start_server(first), start_server(second)]
    try:
        target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for _, port in servers)
        with LayerClient(target, MODEL) as client:
            client.layers()  # connects; round-robin then alternates over the ready connections
            for _ in range(20):
                client.predict_layer(X, "dense_1")
        assert first.count("Predict") + second.count("Predict") == 20
        assert first.count("Predict") >= 5 and second.count("Predict") >= 5  # round-robin, not pinned
        with LayerClient(f"dns:///localhost:{servers[0][1]}", MODEL) as client:
            np.testing.assert_allclose(client.predict_layer(X, "dense_1"), dense_1(X), rtol=1e-6)
    finally:
        for server, _ in servers:
            server.stop(None)


def test_channel_options() -> None:
    plain = dict(channel_options("localhost:8500"))
    assert plain["grpc.max_receive_message_length"] == -1 and plain["grpc.max_send_message_length"] == -1
    assert plain["grpc.keepalive_time_ms"] == 60_000 and "grpc.service_config" not in plain
    balanced = dict(channel_options("dns:///serving.internal:8500", keepalive_seconds=None))
    assert '"round_robin"' in balanced["grpc.service_config"] and "grpc.keepalive_time_ms" not in balanced


def test_replies_larger_than_grpc_default_limit(peer_target: str, peer: Peer) -> None:
    peer.settings.tensor_content = True
    x = np.arange(8 * 1024 * 1024, dtype=np.float32)  # 32 MB each way, past Python gRPC's 4 MB default
    with LayerClient(peer_target, MODEL, timeout=60) as client:
        out = client.predict_layer(x, "echo_float32")
    assert out.shape == x.shape and out[-1] == x[-1] and np.array_equal(out, x)


def test_a_reply_over_a_lowered_limit_is_message_too_large(peer_target: str, peer: Peer) -> None:
    options = {"grpc.max_receive_message_length": 4096}
    with LayerClient(peer_target, MODEL, options=options, retry=None) as client:
        client.layers()
        with pytest.raises(errors.MessageTooLargeError) as raised:
            client.predict_layer(np.zeros(10_000, np.float32), "echo_float32")
    assert raised.value.code == "RESOURCE_EXHAUSTED" and "larger than max" in str(raised.value)


def test_an_injected_channel_is_used_and_left_open(peer_target: str, peer: Peer) -> None:
    channel = grpc.insecure_channel(peer_target)
    try:
        with LayerClient("ignored:1", MODEL, channel=channel) as client:
            np.testing.assert_allclose(client.predict_layer(X, "dense_1"), dense_1(X), rtol=1e-6)
        # The client did not close the caller's channel: it still works.
        grpc.channel_ready_future(channel).result(timeout=10)
        with LayerClient("ignored:1", MODEL, channel=channel) as again:
            assert again.layers().version == 1
    finally:
        channel.close()


def test_ready_made_credentials(peer: Peer, certificates: Certificates) -> None:
    server, port = tls_server(peer, certificates, mutual=False)
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=certificates.ca)
        with LayerClient(f"localhost:{port}", MODEL, credentials=credentials) as client:
            np.testing.assert_allclose(client.predict_layer(X, "dense_1"), dense_1(X), rtol=1e-6)
    finally:
        server.stop(None)
