"""`ssl.config` (TF Serving's `--ssl_config_file`): TLS for the gRPC port.

TF Serving's `SSLConfig` holds the PEM text itself, not file paths: `server_key`, `server_cert`, an
optional `custom_ca` to verify clients with, and `client_verify` for mutual TLS.
"""

from __future__ import annotations

from layertap.config.files import ConfigFile, unchanged
from layertap.errors import ConfigError, ConfigParseError
from layertap.proto import serving_pb2 as pb

__all__ = [
    "SSL_CONFIG",
    "format_ssl_config",
    "parse_ssl_config",
    "read_ssl_config",
    "ssl_config",
    "write_ssl_config",
]


def ssl_config(
    server_key: str, server_cert: str, *, custom_ca: str = "", client_verify: bool = False
) -> pb.SSLConfig:
    """An `SSLConfig` from PEM text.

    Raises:
        ConfigError: a PEM block is missing or malformed, or `client_verify` is set without `custom_ca`.
    """
    config = pb.SSLConfig(
        server_key=server_key, server_cert=server_cert, custom_ca=custom_ca, client_verify=client_verify
    )
    problem = _problem(config)
    if problem:
        raise ConfigError(problem)
    return config


def _checked(config: pb.SSLConfig, text: str, path: str | None) -> pb.SSLConfig:
    problem = _problem(config)
    if problem:
        raise ConfigParseError(problem, path=path)
    return config


#: `ssl.config`: its PEM blocks checked on reading; written readable by its owner only (it holds a key).
SSL_CONFIG = ConfigFile(pb.SSLConfig, _checked, unchanged, mode=0o600)
parse_ssl_config, read_ssl_config = SSL_CONFIG.parse, SSL_CONFIG.read
format_ssl_config, write_ssl_config = SSL_CONFIG.format, SSL_CONFIG.write


def _problem(config: pb.SSLConfig) -> str | None:
    for field, kinds in (("server_key", ("PRIVATE KEY",)), ("server_cert", ("CERTIFICATE",))):
        value = getattr(config, field)
        if not value:
            return f"SSLConfig.{field} is empty; it needs the PEM text of the {kinds[0].lower()}"
        if not _is_pem(value, kinds):
            expected = f"'-----BEGIN ... {kinds[0]}-----'"
            return f"SSLConfig.{field} is not a PEM {kinds[0].lower()} (expected {expected})"
    if config.custom_ca and not _is_pem(config.custom_ca, ("CERTIFICATE",)):
        return "SSLConfig.custom_ca is not PEM certificate text"
    if config.client_verify and not config.custom_ca:
        return "SSLConfig.client_verify needs custom_ca: the CA that signs the client certificates"
    return None


def _is_pem(text: str, kinds: tuple[str, ...]) -> bool:
    stripped = text.strip()
    return any(
        stripped.startswith("-----BEGIN ")
        and f"{kind}-----" in stripped.splitlines()[0]
        and "-----END " in stripped
        for kind in kinds
    )
