"""gRPC channels as TF Serving needs them: any message size, TLS, gzip, keepalive, round-robin."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from layertap.errors import UsageError

__all__ = ["TLS", "channel_options", "create_channel", "credentials_for"]

# Layer activations are large: Python gRPC's 4 MB default rejects a ResNet50 conv2_block1_out
# reply at batch 8 (25.7 MB). -1 lifts the limit; the server's own limit (2 GiB) still holds.
UNLIMITED = -1
_COMPRESSIONS = {None: None, "none": None, "gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}


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
    extra: dict[str, Any] | None = None,
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


def create_channel(
    target: str,
    *,
    tls: TLS | bool | None = None,
    credentials: Any = None,
    compression: str | None = None,
    keepalive_seconds: float | None = 60.0,
    options: dict[str, Any] | None = None,
    aio: bool = False,
) -> Any:
    """A grpc (or grpc.aio) channel to `target`.

    Args:
        target: "host:port", or "dns:///name:port" / "ipv4:a:p,b:p" to balance over several servers.
        tls: TLS settings, True for TLS with the system's roots, None/False for plaintext.
        credentials: ready-made grpc.ChannelCredentials (overrides `tls`).
        compression: "gzip", "deflate" or None.
        keepalive_seconds: interval of HTTP/2 keepalive pings, None to send none.
        options: extra channel arguments.
        aio: create a grpc.aio channel for AsyncLayerClient.

    Raises:
        UsageError: an unknown compression name.
    """
    if compression not in _COMPRESSIONS:
        raise UsageError(f"compression {compression!r} is not supported; accepted: gzip, deflate, none")
    settings = tls if isinstance(tls, TLS) else TLS() if tls is True else None
    if credentials is None and settings is not None:
        credentials = credentials_for(settings)
    arguments = channel_options(
        target,
        keepalive_seconds=keepalive_seconds,
        server_name=settings.server_name if settings else None,
        extra=options,
    )
    module: Any = grpc.aio if aio else grpc
    kwargs = {"options": arguments, "compression": _COMPRESSIONS[compression]}
    if credentials is not None:
        return module.secure_channel(target, credentials, **kwargs)
    return module.insecure_channel(target, **kwargs)


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
