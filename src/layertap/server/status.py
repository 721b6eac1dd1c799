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

from typing import Any

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


_BY_STATUS: dict[grpc.StatusCode, type[StatusError]] = {}


class StatusError(ServingError):
    """A request or load failed with `status` and `message` (TF Serving's words).

    A subclass names its status in its header, `class NotFound(StatusError, status=NOT_FOUND)`: the
    status it carries by default, and the code `status_error` answers with it.
    """

    default_status = grpc.StatusCode.UNKNOWN

    def __init_subclass__(cls, status: grpc.StatusCode | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.default_status = status
            _BY_STATUS[status] = cls

    def __init__(self, message: str, status: grpc.StatusCode | None = None) -> None:
        self.status: grpc.StatusCode = status or self.default_status
        super().__init__(message, code=self.status.name, details=message)
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.status))


class InvalidArgument(StatusError, InvalidArgumentError, status=grpc.StatusCode.INVALID_ARGUMENT):
    """INVALID_ARGUMENT: the request cannot be served as sent."""


class NotFound(StatusError, ModelNotFoundError, status=grpc.StatusCode.NOT_FOUND):
    """NOT_FOUND: no such model, version or file."""


class FailedPrecondition(StatusError, status=grpc.StatusCode.FAILED_PRECONDITION):
    """FAILED_PRECONDITION: the request is valid but the server's state refuses it."""


class SignatureNotFound(FailedPrecondition, SignatureNotFoundError):
    """FAILED_PRECONDITION: `Serving signature key "x" not found.`"""


class Unavailable(StatusError, ServerUnavailableError, status=grpc.StatusCode.UNAVAILABLE):
    """UNAVAILABLE: full queue, unloaded version, stopping server; retryable."""


class DeadlineExceeded(StatusError, DeadlineExceededError, status=grpc.StatusCode.DEADLINE_EXCEEDED):
    """DEADLINE_EXCEEDED: the request's deadline passed."""


class Internal(StatusError, status=grpc.StatusCode.INTERNAL):
    """INTERNAL: the server failed in a way the request did not cause."""


class Unimplemented(StatusError, status=grpc.StatusCode.UNIMPLEMENTED):
    """UNIMPLEMENTED: the server does not offer this call."""


def status_error(status: grpc.StatusCode | int, message: str) -> StatusError:
    """The exception for `status` (a StatusCode or its number, as TensorFlow's error codes are)."""
    if isinstance(status, int):
        status = next((code for code in grpc.StatusCode if code.value[0] == status), grpc.StatusCode.UNKNOWN)
    return _BY_STATUS.get(status, StatusError)(message, status)
