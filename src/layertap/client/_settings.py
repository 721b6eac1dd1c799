"""The connection settings of every client: declared and documented once, here.

`ConnectionSettings` is the value every client resolves its keyword arguments into. The four
client classes take the same keywords through `**settings: Unpack[SettingsKeywords]`: the
TypedDict only restates the field names and types so that type checkers check each keyword
(mypy checks `ConnectionSettings(target, model, **settings)` against the dataclass, and
tests/client/test_client_public_api.py checks that both list the same fields).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from layertap.client._channel import COMPRESSIONS, TLS
from layertap.client._retry import Retry
from layertap.errors import UsageError
from layertap.proto import serving_pb2 as pb

__all__ = ["DEFAULT", "ConnectionSettings", "Default", "SettingsKeywords", "Timeout", "model_spec"]


class Default(enum.Enum):
    """Marks a parameter left to the client's setting (None already means "no timeout")."""

    TOKEN = "default"


DEFAULT = Default.TOKEN
# A call's timeout: seconds, None for no deadline, or DEFAULT for the client's setting.
Timeout = float | Default | None


@dataclass(frozen=True)
class ConnectionSettings:
    """Where a client finds its model and how it talks to the server: every client's keywords.

    `LayerClient`, `AsyncLayerClient`, `ServingClient` and `AsyncServingClient` all take `target`
    and `model`, then these fields as keyword arguments, and expose them as `client.settings`.

    Args:
        target: "host:port", or "dns:///name:port" (or "ipv4:a:p,b:p") to balance calls over
            every address of a name.
        model: the served model's name.
        version: pin a version number (0 is a valid version).
        version_label: pin a label such as "stable" (exclusive with `version`).
        timeout: seconds per call of the client's API, retries included; None waits forever.
            Each method also takes `timeout=` for one call.
        retry: when to retry UNAVAILABLE answers (`Retry(...)`); None never retries.
        tls: TLS settings (`TLS(ca_cert=..., client_cert=..., client_key=...)`), True for the
            system's roots, None for plaintext.
        credentials: ready-made grpc.ChannelCredentials, instead of `tls`.
        compression: "gzip" (or "deflate") to compress requests; None or "none" sends them as they are.
        channel: a grpc.Channel (grpc.aio for the asyncio clients) to use instead of creating one;
            the caller closes it, and the channel settings here (tls, compression, ...) do not apply.
        keepalive_seconds: HTTP/2 keepalive ping interval while calls are in flight; None sends none.
        options: extra gRPC channel arguments; they win over layertap's own.

    Raises:
        UsageError: contradictory or out-of-range settings (a version and a label, a non-positive
            timeout, an unknown compression, an empty model name).
    """

    target: str
    model: str
    version: int | None = None
    version_label: str | None = None
    timeout: float | None = 10.0
    retry: Retry | None = Retry()  # noqa: RUF009 (a frozen value object, safe to share)
    tls: TLS | bool | None = None
    credentials: Any = None
    compression: str | None = None
    channel: Any = None
    keepalive_seconds: float | None = 60.0
    options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise UsageError("model must be a non-empty model name")
        if self.timeout is not None and self.timeout <= 0:
            raise UsageError(f"timeout must be positive seconds or None, got {self.timeout}")
        if self.compression not in COMPRESSIONS:
            raise UsageError(
                f"compression {self.compression!r} is not supported; accepted: gzip, deflate, none"
            )
        model_spec(self.model, version=self.version, version_label=self.version_label)

    def spec(self, signature: str = "") -> pb.ModelSpec:
        """The ModelSpec of a call to `signature` ("" lets the server use serving_default)."""
        return model_spec(
            self.model, version=self.version, version_label=self.version_label, signature=signature
        )

    def deadline(self, timeout: Timeout) -> float | None:
        """The `time.monotonic()` deadline of a call given its timeout (DEFAULT: the client's)."""
        seconds = self.timeout if timeout is DEFAULT else timeout
        return None if seconds is None else time.monotonic() + seconds


class SettingsKeywords(TypedDict, total=False):
    """`ConnectionSettings`' fields after target and model, as keyword arguments (see there)."""

    version: int | None
    version_label: str | None
    timeout: float | None
    retry: Retry | None
    tls: TLS | bool | None
    credentials: Any
    compression: str | None
    channel: Any
    keepalive_seconds: float | None
    options: Mapping[str, Any] | None


def model_spec(
    model: str, *, version: int | None, version_label: str | None, signature: str = ""
) -> pb.ModelSpec:
    """A ModelSpec; version 0 is a version like any other (never dropped for being falsy).

    Raises:
        UsageError: both a version and a label, or a negative version.
    """
    if version is not None and version_label is not None:
        raise UsageError(f"give a version ({version}) or a version_label ({version_label!r}), not both")
    if version is not None and version < 0:
        raise UsageError(f"version must be a non-negative integer, got {version}")
    spec = pb.ModelSpec(name=model, signature_name=signature)
    if version is not None:
        spec.version.value = version
    elif version_label is not None:
        spec.version_label = version_label
    return spec
