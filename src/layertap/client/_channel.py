"""gRPC channels as TF Serving needs them: any message size, TLS, gzip, keepalive, round-robin."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from layertap.errors import UsageError

if TYPE_CHECKING:  # _settings imports this module at run time
    from layertap.client._settings import ConnectionSettings

__all__ = ["COMPRESSIONS", "TLS", "channel_options", "create_channel", "credentials_for"]

# Layer activations are large: Python gRPC's 4 MB default rejects a ResNet50 conv2_block1_out
# reply at batch 8 (25.7 MB). -1 lifts the limit; the server's own limit (2 GiB) still holds.
UNLIMITED = -1
# The compression names a client accepts, and what gRPC calls them.
COMPRESSIONS = {None: None, "none": None, "gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}


@dataclass(frozen=True)
class TLS:
    """TLS settings. Each certificate is PEM bytes or a path to a PEM file.

    Args:
        ca_cert: the CA that signed the server's certificate; None trusts the system's roots.
        client_cert: this client's certificate chain, for mutual TLS (with `client_key`).
        client_key: this client's private key.
        server_name: the name to verify the server's certificate against, when it differs from the
            target's host (e.g. connecting by IP address).
    """

    ca_cert: bytes | str | Path | None = None
    client_cert: bytes | str | Path | None = None
    client_key: bytes | str | Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise UsageError("TLS: mutual TLS needs both client_cert and client_key, or neither")


def credentials_for(tls: TLS) -> Any:
    """grpc.ChannelCredentials for the TLS settings."""
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(tls.ca_cert),
        private_key=_pem(tls.client_key),
        certificate_chain=_pem(tls.client_cert),
    )


def channel_options(
    target: str,
    *,
    keepalive_seconds: float | None = 60.0,
    server_name: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> list[tuple[str, Any]]:
    """The channel arguments layertap uses; `extra` entries win."""
    options: dict[str, Any] = {
        "grpc.max_receive_message_length": UNLIMITED,
        "grpc.max_send_message_length": UNLIMITED,
    }
    if keepalive_seconds is not None:
        # Pings only while calls are in flight: gRPC servers (TF Serving included) answer pings on
        # idle connections more often than every 5 minutes with GOAWAY "too_many_pings". A dead idle
        # connection shows at the next call as UNAVAILABLE, which is retried.
        options["grpc.keepalive_time_ms"] = int(keepalive_seconds * 1000)
        options["grpc.keepalive_timeout_ms"] = 20_000
        options["grpc.keepalive_permit_without_calls"] = 0
    if _several_addresses(target):
        # One HTTP/2 connection would pin every call to one server: spread calls over all addresses.
        options["grpc.service_config"] = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
    if server_name is not None:
        options["grpc.ssl_target_name_override"] = server_name
    options.update(extra or {})
    return list(options.items())


def create_channel(settings: ConnectionSettings, *, aio: bool) -> Any:
    """A grpc (or grpc.aio, for the asyncio clients) channel as `settings` describe it."""
    tls = settings.tls if isinstance(settings.tls, TLS) else TLS() if settings.tls is True else None
    credentials = settings.credentials
    if credentials is None and tls is not None:
        credentials = credentials_for(tls)
    arguments = channel_options(
        settings.target,
        keepalive_seconds=settings.keepalive_seconds,
        server_name=tls.server_name if tls else None,
        extra=settings.options,
    )
    module: Any = grpc.aio if aio else grpc
    # ConnectionSettings has checked the compression's name.
    kwargs = {"options": arguments, "compression": COMPRESSIONS[settings.compression]}
    if credentials is not None:
        return module.secure_channel(settings.target, credentials, **kwargs)
    return module.insecure_channel(settings.target, **kwargs)


def _several_addresses(target: str) -> bool:
    scheme = target.split(":", 1)[0]
    return scheme in ("dns", "ipv4", "ipv6") and ("," in target or scheme == "dns")


def _pem(value: bytes | str | Path | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as error:
        raise UsageError(f"TLS: cannot read PEM file {value}: {error}") from None
