"""ssl.config for --ssl_config_file: PEM text embedded, checked, written owner-only, usable by gRPC."""

from __future__ import annotations

import stat
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.config import read_ssl_config, ssl_config
from layertap.errors import ConfigError, ConfigParseError
from tests.fixtures.certificates import self_signed


@pytest.fixture(scope="module")
def key_and_cert() -> tuple[str, str]:
    return self_signed()


def test_cli_writes_an_owner_only_config_that_grpc_accepts(
    tmp_path: Path, key_and_cert: tuple[str, str]
) -> None:
    key_pem, cert_pem = key_and_cert
    (tmp_path / "key.pem").write_text(key_pem)
    (tmp_path / "cert.pem").write_text(cert_pem)
    out = tmp_path / "ssl.config"
    args = ["config", "ssl", "--key", str(tmp_path / "key.pem"), "--cert", str(tmp_path / "cert.pem")]
    assert main([*args, "--out", str(out)]) == EXIT_OK
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    config = read_ssl_config(out)
    assert (config.server_key, config.server_cert, config.custom_ca, config.client_verify) == (
        key_pem,
        cert_pem,
        "",
        False,
    )
    # The embedded PEM pair is what a gRPC server needs: binding a TLS port with it succeeds.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    credentials = grpc.ssl_server_credentials([(config.server_key.encode(), config.server_cert.encode())])
    assert server.add_secure_port("127.0.0.1:0", credentials) > 0
    server.start()
    server.stop(None)
    # Mutual TLS needs the client CA.
    assert main([*args, "--client-verify", "--out", str(out)]) == EXIT_USAGE


def test_bad_pem_is_refused(key_and_cert: tuple[str, str]) -> None:
    key_pem, cert_pem = key_and_cert
    with pytest.raises(ConfigError, match="server_key is not a PEM private key"):
        ssl_config(cert_pem, cert_pem)
    with pytest.raises(ConfigError, match="server_cert is empty"):
        ssl_config(key_pem, "")
    with pytest.raises(ConfigError, match="client_verify needs custom_ca"):
        ssl_config(key_pem, cert_pem, client_verify=True)
    assert ssl_config(key_pem, cert_pem, custom_ca=cert_pem, client_verify=True).client_verify


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ssl.config"
    path.write_text('server_key: "x"\nserver_crt: "y"\n')
    with pytest.raises(ConfigParseError) as caught:
        read_ssl_config(path)
    assert caught.value.line == 2
