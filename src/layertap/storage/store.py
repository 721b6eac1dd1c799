"""One small interface over the object stores layertap writes to, and `open_store` to get one.

The publish protocol (`layertap.storage.publish`) and the models.config editor need only these operations;
each store implements them with its maker's own client (`layertap.storage.gcs`, `layertap.storage.s3`), so the
protocol is written once and tests can hand a publisher any `ObjectStore` (a real emulator, or a real emulator
behind a wrapper that corrupts uploads).

Every object carries a `token` that changes whenever it is rewritten (the GCS generation, the S3 ETag): a
guarded write names the token it read and fails with `StorageConflictError` if the object has changed since.
"""

from __future__ import annotations

import base64
import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from layertap.storage.uri import ObjectLocation, require_backend

__all__ = [
    "CountingReader",
    "ObjectInfo",
    "ObjectStore",
    "ProgressCallback",
    "crc32c_of_bytes",
    "crc32c_of_file",
    "open_store",
]

#: Called with the number of bytes just sent (from worker threads).
ProgressCallback = Callable[[int], None]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    """What the store reports about one object.

    `crc32c` is the store's own CRC32C of the stored bytes, base64 of the big-endian 4 bytes as both GCS and
    S3 report it (None if the store keeps none). `token` is the GCS generation or the S3 ETag. `updated` is
    the store's clock at the last write.
    """

    key: str
    size: int
    crc32c: str | None
    token: str
    updated: datetime


class ObjectStore(Protocol):
    """The operations the publish protocol needs, on one bucket. Keys are full object names."""

    location: ObjectLocation

    def stat(self, key: str) -> ObjectInfo | None:
        """The object's metadata, or None if there is none."""
        ...

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose name starts with `prefix`."""
        ...

    def children(self, prefix: str) -> list[str]:
        """The names one level below `prefix` (what a directory listing would show, `/` trimmed)."""
        ...

    def read(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and token, or None if there is none."""
        ...

    def create(self, key: str, data: bytes) -> str:
        """Write a new object only if none exists (GCS ifGenerationMatch=0, S3 If-None-Match: *).

        Raises:
            StorageConflictError: the object already exists.
        """
        ...

    def replace(self, key: str, data: bytes, token: str) -> str:
        """Overwrite the object only if it is still at `token`; returns the new token.

        Raises:
            StorageConflictError: the object changed (or vanished) since `token` was read.
        """
        ...

    def upload(
        self, path: Path, key: str, crc32c: str, progress: ProgressCallback | None = None
    ) -> ObjectInfo:
        """Upload a local file (whose CRC32C is `crc32c`) and return what the store reports about it."""
        ...

    def copy(self, source: str, key: str) -> ObjectInfo:
        """Server-side copy of `source` to `key` within the bucket; returns what the store reports."""
        ...

    def delete(self, key: str, token: str | None = None) -> bool:
        """Delete the object (only if still at `token`, when given); False if it was not there."""
        ...


class CountingReader(io.RawIOBase):
    """A file that reports each read's size to a progress callback (seekable, so retries can rewind)."""

    def __init__(self, raw: io.BufferedReader, progress: ProgressCallback) -> None:
        super().__init__()
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self._progress(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def crc32c_of_file(path: Path) -> str:
    """The CRC32C of a file, encoded as the stores report it (base64 of 4 big-endian bytes)."""
    checksum: Any = importlib.import_module("google_crc32c").Checksum()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode()


def crc32c_of_bytes(data: bytes) -> str:
    """The CRC32C of `data`, encoded as the stores report it."""
    value: int = importlib.import_module("google_crc32c").value(data)
    return base64.b64encode(value.to_bytes(4, "big")).decode()


def open_store(location: ObjectLocation) -> ObjectStore:
    """The store for a gs:// or s3:// location, configured from the standard places.

    GCS: Application Default Credentials, or anonymous access when `STORAGE_EMULATOR_HOST` points at an
    emulator. S3: the AWS credential chain; `AWS_ENDPOINT_URL` points at another endpoint.

    Raises:
        LocationError: the extra for that store is not installed.
    """
    require_backend(location)
    if location.scheme == "gs":
        from layertap.storage.gcs import GcsStore

        return GcsStore(location)
    from layertap.storage.s3 import S3Store

    return S3Store(location)
