"""`ssl.config` (TF Serving's `--ssl_config_file`): TLS for the gRPC port.

TF Serving's `SSLConfig` holds the PEM text itself, not file paths: `server_key`, `server_cert`, an
optional `custom_ca` to verify clients with, and `client_verify` for mutual TLS.
"""

from __future__ import annotations

import os

from layertap.config.textformat import format_text, parse_text, read_config_text, write_text_file
from layertap.errors import ConfigError, ConfigParseError
from layertap.proto import serving_pb2 as pb

__all__ = ["format_ssl_config", "parse_ssl_config", "read_ssl_config", "ssl_config", "write_ssl_config"]


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


def parse_ssl_config(text: str, path: str | None = None) -> pb.SSLConfig:
    """Parse an `ssl.config` strictly and check its PEM blocks.

    Raises:
        ConfigParseError: the text does not parse, or a PEM block is missing or malformed.
    """
    config = parse_text(text, pb.SSLConfig, path)
    problem = _problem(config)
    if problem:
        raise ConfigParseError(problem, path=path)
    return config


def read_ssl_config(path: str | os.PathLike[str]) -> pb.SSLConfig:
    """Read and check an `ssl.config` file."""
    return parse_ssl_config(read_config_text(path), os.fspath(path))


def format_ssl_config(config: pb.SSLConfig) -> str:
    """`config` in text format (the PEM text escaped into strings)."""
    return format_text(config)


def write_ssl_config(path: str | os.PathLike[str], config: pb.SSLConfig) -> None:
    """Write `config` atomically; the file holds a private key, so it is made readable by its owner only."""
    write_text_file(path, format_ssl_config(config), mode=0o600)


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
