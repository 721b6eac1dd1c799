"""The server's errors: one exception type per outcome, each carrying its `grpc.StatusCode`.

Everything below the transports (lifecycle, registry, session runner, request checks) raises a
`StatusError`; each transport maps it once (gRPC: `context.abort(error.status, ...)`, REST: the HTTP
status TF Serving answers for that code). The classes also derive from the `layertap.errors`
hierarchy the client uses, so `except ModelNotFoundError` reads the same on both sides, and keep that
hierarchy's `code` (the status name) and `details` (the message).
"""

# The classes are named after the gRPC codes they carry (like absl's NotFoundError(...) helpers and
# grpc.StatusCode), not with an Error suffix: `raise NotFound(...)` reads as the status it sends.
# ruff: noqa: N818

from __future__ import annotations

import grpc

from layertap.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    ModelNotFoundError,
    ServerUnavailableError,
    ServingError,
    SignatureNotFoundError,
)

__all__ = [
    "QUEUE_FULL_MESSAGE",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "SignatureNotFound",
    "StatusError",
    "Unavailable",
    "Unimplemented",
    "status_error",
]

#: TF Serving's words when a batch queue is full (`shared_batch_scheduler.h`). layertap answers every
#: refusal for load with them (admission, batch queues, REST's body budget), so a client has one
#: retryable UNAVAILABLE message to recognise.
QUEUE_FULL_MESSAGE = "The batch scheduling queue to which this task was submitted is full"


class StatusError(ServingError):
    """A request or load failed with `status` and `message` (TF Serving's words)."""

    #: The status of this class; `status_error` picks the class for a code.
    default_status = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, status: grpc.StatusCode | None = None) -> None:
        self.status: grpc.StatusCode = status or self.default_status
        super().__init__(message, code=self.status.name, details=message)
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.status))


class InvalidArgument(StatusError, InvalidArgumentError):
    """INVALID_ARGUMENT: the request cannot be served as sent."""

    default_status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(StatusError, ModelNotFoundError):
    """NOT_FOUND: no such model, version or file."""

    default_status = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(StatusError):
    """FAILED_PRECONDITION: the request is valid but the server's state refuses it."""

    default_status = grpc.StatusCode.FAILED_PRECONDITION


class SignatureNotFound(FailedPrecondition, SignatureNotFoundError):
    """FAILED_PRECONDITION: `Serving signature key "x" not found.`"""


class Unavailable(StatusError, ServerUnavailableError):
    """UNAVAILABLE: full queue, unloaded version, stopping server; retryable."""

    default_status = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(StatusError, DeadlineExceededError):
    """DEADLINE_EXCEEDED: the request's deadline passed."""

    default_status = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(StatusError):
    """INTERNAL: the server failed in a way the request did not cause."""

    default_status = grpc.StatusCode.INTERNAL


class Unimplemented(StatusError):
    """UNIMPLEMENTED: the server does not offer this call."""

    default_status = grpc.StatusCode.UNIMPLEMENTED


_BY_STATUS: dict[grpc.StatusCode, type[StatusError]] = {
    cls.default_status: cls
    for cls in (InvalidArgument, NotFound, FailedPrecondition, Unavailable, DeadlineExceeded, Internal)
}
_BY_STATUS[grpc.StatusCode.UNIMPLEMENTED] = Unimplemented


def status_error(status: grpc.StatusCode | int, message: str) -> StatusError:
    """The exception for `status` (a StatusCode or its number, as TensorFlow's error codes are)."""
    if isinstance(status, int):
        status = next((code for code in grpc.StatusCode if code.value[0] == status), grpc.StatusCode.UNKNOWN)
    return _BY_STATUS.get(status, StatusError)(message, status)
