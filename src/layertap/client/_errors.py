"""The one place gRPC status codes become layertap errors, keeping the server's own message."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import grpc

from layertap import errors

__all__ = ["RETRYABLE", "code_name", "from_rpc_error", "nearest"]

# UNAVAILABLE covers a server that is down or restarting and TF Serving's full batch queue.
RETRYABLE = frozenset({"UNAVAILABLE"})

_BY_CODE: dict[str, type[errors.ServingError]] = {
    "NOT_FOUND": errors.ModelNotFoundError,
    "FAILED_PRECONDITION": errors.ServingError,
    "INVALID_ARGUMENT": errors.InvalidArgumentError,
    "DEADLINE_EXCEEDED": errors.DeadlineExceededError,
    "UNAVAILABLE": errors.ServerUnavailableError,
    "RESOURCE_EXHAUSTED": errors.MessageTooLargeError,
}


def code_name(error: grpc.RpcError) -> str:
    """The status code name of a failed call ("UNAVAILABLE"), or "UNKNOWN"."""
    code = error.code() if hasattr(error, "code") else None
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def from_rpc_error(
    error: grpc.RpcError, *, target: str, model: str, layers: Sequence[str] = ()
) -> errors.ServingError:
    """The layertap error for a failed gRPC call; raise it `from error`.

    Args:
        error: what grpc raised (sync or asyncio).
        target: the server address, to say where the error came from.
        model: the model asked for.
        layers: the layers the model offers, listed when a signature is not found.
    """
    code = code_name(error)
    details = (error.details() if hasattr(error, "details") else None) or ""
    where = f"model {model!r} at {target}"
    cls = _BY_CODE.get(code, errors.ServingError)
    message = f"{details} ({code} from {where})"
    if code == "FAILED_PRECONDITION" and "signature" in details.lower():
        cls = errors.SignatureNotFoundError
        message = f"{details} Layers of {where}: {', '.join(layers) or '(unknown)'}."
        wanted = _quoted(details)
        close = nearest(wanted, layers) if wanted else []
        if close:
            message += f" Nearest: {', '.join(close)}."
    elif code == "INVALID_ARGUMENT" and "version label" in details.lower():
        # TF Serving answers an unknown label with INVALID_ARGUMENT; to the caller it is a missing version.
        cls = errors.ModelNotFoundError
    elif code == "RESOURCE_EXHAUSTED" and not _about_size(details):
        cls = errors.ServingError
    elif code == "RESOURCE_EXHAUSTED":
        message += (
            "; layertap's channels accept any size unless options= lowers the limit, so check the "
            "server's (TF Serving: 2 GiB) and any proxy's"
        )
    elif code == "UNAVAILABLE":
        message = f"server unavailable: {details} ({code} from {where})"
    return cls(message, code=code, details=details)


def nearest(name: str, candidates: Sequence[str]) -> list[str]:
    """Up to three candidates that look like `name`, best first."""
    return difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)


def _quoted(details: str) -> str:
    parts = details.split('"')
    return parts[1] if len(parts) >= 3 else ""


def _about_size(details: str) -> bool:
    lowered = details.lower()
    return "message" in lowered and ("larger than" in lowered or "size" in lowered or "max" in lowered)
