"""Every error layertap raises, in one hierarchy.

Every message says what was wrong, what was received and what would be accepted.

    LayertapError                      root: `except LayertapError` catches everything layertap raises
    ├── UsageError (ValueError)        the caller asked for something that cannot be done as asked
    │   ├── LayerNotFoundError         a layer spec names no layer (lists the layers and nearest names)
    │   ├── AmbiguousLayerError        a shared layer was named without choosing which call
    │   ├── UnsupportedModelError      the model cannot be truncated (e.g. subclassed)
    │   ├── UnsafeModelError           the model carries code (Lambda layers) and no opt-in was given
    │   ├── InvalidInputError          inputs do not match a signature (client-side check)
    │   ├── TensorFormatError          a TensorProto cannot become an array (dtype, shape, content length)
    │   ├── ConfigError                a serving config file or setting is invalid
    │   │   └── ConfigParseError       a config file does not parse (carries the line number)
    │   └── LocationError              a base path or URI names no place layertap can use (scheme, extra)
    ├── ExportError                    exporting or publishing a SavedModel failed
    │   ├── VerificationError          the written SavedModel does not reproduce Keras' outputs
    │   ├── PublishError               the version could not be published into the repository
    │   └── RefusedVersionError        (also a UsageError) the target server cannot load it, or it failed
    │                                  `validate`; nothing was published
    ├── ServingError                   TF Serving (or `layertap serve`) answered with an error
    │   ├── ModelNotFoundError         NOT_FOUND: no such model or version loaded
    │   ├── SignatureNotFoundError     FAILED_PRECONDITION: no such signature (lists the layers)
    │   ├── InvalidArgumentError       INVALID_ARGUMENT: the server rejected the request
    │   ├── DeadlineExceededError      DEADLINE_EXCEEDED
    │   ├── ServerUnavailableError     UNAVAILABLE: server down or batch queue full (retryable)
    │   └── MessageTooLargeError       RESOURCE_EXHAUSTED: a message exceeded a size limit
    ├── ServerError                    `layertap serve` could not start or load as configured
    └── StorageError                   object storage (gs://, s3://) failed, after retries
        ├── StorageConflictError       a guarded write lost a race: the object changed since it was read
        └── IntegrityError             an uploaded object differs from the local file (size or CRC32C)
"""

from __future__ import annotations

__all__ = [
    "AmbiguousLayerError",
    "ConfigError",
    "ConfigParseError",
    "DeadlineExceededError",
    "ExportError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidInputError",
    "LayerNotFoundError",
    "LayertapError",
    "LocationError",
    "MessageTooLargeError",
    "ModelNotFoundError",
    "PublishError",
    "RefusedVersionError",
    "ServerError",
    "ServerUnavailableError",
    "ServingError",
    "SignatureNotFoundError",
    "StorageConflictError",
    "StorageError",
    "TensorFormatError",
    "UnsafeModelError",
    "UnsupportedModelError",
    "UsageError",
    "VerificationError",
]


class LayertapError(Exception):
    """Root of every error layertap raises."""


class UsageError(LayertapError, ValueError):
    """The caller asked for something that cannot be done as asked."""


class LayerNotFoundError(UsageError, KeyError):
    """A layer spec (name, index or path) resolves to no layer."""

    def __str__(self) -> str:
        # KeyError would repr() the message; show it as written.
        return str(self.args[0]) if self.args else ""


class AmbiguousLayerError(UsageError):
    """A layer called more than once was named without choosing which call's output."""


class UnsupportedModelError(UsageError):
    """The model's structure does not allow truncation (e.g. a subclassed model)."""


class UnsafeModelError(UsageError):
    """The model carries code (Lambda layers, custom objects) and loading it was not allowed."""


class InvalidInputError(UsageError):
    """Inputs do not match what the signature expects (checked before sending)."""


class TensorFormatError(UsageError):
    """A TensorProto cannot be converted to or from an array: unsupported dtype, bad shape, or
    content whose length disagrees with the shape."""


class ConfigError(UsageError):
    """A serving config file or setting is invalid."""


class ConfigParseError(ConfigError):
    """A config file does not parse; `line` and `column` are 1-based, or None when unknown; `reason` is
    the parser's own words (without position)."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        reason: str | None = None,
    ) -> None:
        where = ":".join(str(part) for part in (path, line) if part is not None)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.line = line
        self.column = column
        self.reason = reason if reason is not None else message


class LocationError(UsageError):
    """A base path or URI names no place layertap can use: an unsupported scheme, a malformed URI, or an
    object store whose extra (`layertap[gcs]`, `layertap[s3]`) is not installed. Raised before any work."""


class ExportError(LayertapError):
    """Exporting or publishing a SavedModel failed."""


class VerificationError(ExportError):
    """The written SavedModel does not reproduce the Keras model's outputs; nothing was published."""


class PublishError(ExportError):
    """The version could not be published into the model repository."""


class RefusedVersionError(ExportError, UsageError):
    """A staged version was checked and refused: the target TF Serving release cannot load it (`compat`),
    or it failed the pre-push rehearsal (`validate`). Nothing was published; exit code 2 (refused)."""


class ServingError(LayertapError):
    """The server answered with an error. `code` is the gRPC status code name, `details` its message."""

    def __init__(self, message: str, *, code: str | None = None, details: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class ModelNotFoundError(ServingError):
    """NOT_FOUND: the model, or the requested version, is not loaded."""


class SignatureNotFoundError(ServingError):
    """FAILED_PRECONDITION: the model has no such signature (layer)."""


class InvalidArgumentError(ServingError):
    """INVALID_ARGUMENT: the server rejected the request's contents."""


class DeadlineExceededError(ServingError):
    """DEADLINE_EXCEEDED: the call did not finish within its deadline."""


class ServerUnavailableError(ServingError):
    """UNAVAILABLE: the server is down, restarting, or its queue is full. Safe to retry."""


class MessageTooLargeError(ServingError):
    """RESOURCE_EXHAUSTED: a request or response exceeded a message size limit."""


class ServerError(LayertapError):
    """`layertap serve` could not start, or could not load what it was configured to serve."""


class StorageError(LayertapError):
    """Object storage (gs://, s3://) refused or failed a request, after the transient errors were retried."""


class StorageConflictError(StorageError):
    """A guarded write lost a race: the object was created or changed by someone else since it was read
    (a generation or If-None-Match precondition failed)."""


class IntegrityError(StorageError):
    """An uploaded object is not the local file: the size or CRC32C the store reports differs."""
