"""Model readiness from GetModelStatus (TF Serving's health service says SERVING with no model loaded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from layertap.proto import serving_pb2 as pb

__all__ = ["VersionStatus", "describe", "is_ready", "parse_status", "status_request"]


@dataclass(frozen=True)
class VersionStatus:
    """The state of one model version.

    Attributes:
        version: the version number.
        state: "START", "LOADING", "AVAILABLE", "UNLOADING" or "END".
        error_code: the gRPC status code (as a number) of the last transition, 0 for OK.
        error_message: why loading failed, when it did.
    """

    version: int
    state: str
    error_code: int = 0
    error_message: str = ""

    @property
    def available(self) -> bool:
        """Whether this version answers requests."""
        return self.state == "AVAILABLE"


def status_request(spec: pb.ModelSpec) -> bytes:
    """A GetModelStatusRequest (no signature: status is per model version)."""
    request = pb.GetModelStatusRequest()
    request.model_spec.CopyFrom(spec)
    request.model_spec.ClearField("signature_name")
    return request.SerializeToString()


def parse_status(data: bytes) -> list[VersionStatus]:
    """The versions in GetModelStatusResponse bytes, newest first."""
    response = pb.GetModelStatusResponse.FromString(data)
    versions = [
        VersionStatus(
            version=entry.version,
            state=_state_name(entry.state),
            error_code=entry.status.error_code,
            error_message=entry.status.error_message,
        )
        for entry in response.model_version_status
    ]
    return sorted(versions, key=lambda status: status.version, reverse=True)


def is_ready(versions: Sequence[VersionStatus], version: int | None) -> bool:
    """Whether the wanted version (any version when None) is AVAILABLE."""
    return any(v.available and (version is None or v.version == version) for v in versions)


def describe(versions: Sequence[VersionStatus]) -> str:
    """ "2: AVAILABLE, 1: END"-style text for messages."""
    return ", ".join(f"{v.version}: {v.state}" for v in versions) or "no versions"


def _state_name(state: int) -> str:
    try:
        return pb.ModelVersionStatus.State.Name(state)  # type: ignore[arg-type]
    except ValueError:
        return f"STATE_{state}"
