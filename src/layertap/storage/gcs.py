"""`ObjectStore` on Google Cloud Storage, through Google's own client (google-cloud-storage).

Why Google's client rather than fsspec/gcsfs: the publish protocol stands on three things that client exposes
directly and documents: generation preconditions on every write and delete (`if_generation_match=0` is the
conditional create that claims a version number), the CRC32C GCS computes for each stored object (checked
against the local file after every upload), and retry policies that retry a write only when a precondition
makes it idempotent (`DEFAULT_RETRY`, exponential backoff with jitter from 1 s, on 408/429/5xx and connection
errors). It reads Application Default Credentials and honours `STORAGE_EMULATOR_HOST`; gcsfs hides generations
behind a file-system view and retries on its own terms.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from layertap.errors import IntegrityError, StorageConflictError, StorageError
from layertap.storage.store import CountingReader, ObjectInfo, ProgressCallback
from layertap.storage.uri import ObjectLocation

__all__ = ["GcsStore"]


class GcsStore:
    """One GCS bucket (`location.bucket`); see `layertap.storage.store.ObjectStore`."""

    def __init__(self, location: ObjectLocation, client: Any | None = None) -> None:
        from google.api_core.retry import Retry
        from google.cloud import storage
        from google.cloud.storage.retry import DEFAULT_RETRY

        self.location = location
        if client is None:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                # An emulator takes no credentials; asking for ADC would fail or reach Google's metadata
                # server.
                from google.auth import credentials

                project = os.environ.get("GOOGLE_CLOUD_PROJECT", "layertap")
                anonymous: Any = credentials.AnonymousCredentials
                client = storage.Client(project=project, credentials=anonymous())
            else:
                # Without credentials the client fails here, before any request: say so in layertap's words.
                with self._mapped("open", ""):
                    client = storage.Client()
        self._client = client
        self._bucket = client.bucket(location.bucket)
        self._retry: Retry = DEFAULT_RETRY

    def stat(self, key: str) -> ObjectInfo | None:
        with self._mapped("stat", key):
            blob = self._bucket.get_blob(key, retry=self._retry)
        return None if blob is None else _info(blob)

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        with self._mapped("list", prefix):
            return [
                _info(blob)
                for blob in self._client.list_blobs(self._bucket, prefix=prefix, retry=self._retry)
            ]

    def children(self, prefix: str) -> list[str]:
        with self._mapped("list", prefix):
            pages = self._client.list_blobs(self._bucket, prefix=prefix, delimiter="/", retry=self._retry)
            names = [blob.name[len(prefix) :] for blob in pages]
            names += [folder[len(prefix) :].rstrip("/") for folder in pages.prefixes]
        return sorted(set(names))

    def read(self, key: str) -> tuple[bytes, str] | None:
        from google.api_core.exceptions import NotFound

        with self._mapped("read", key):
            blob = self._bucket.get_blob(key, retry=self._retry)
            if blob is None:
                return None
            try:
                data = blob.download_as_bytes(if_generation_match=blob.generation, retry=self._retry)
            except NotFound:  # deleted or rewritten between the two requests
                return None
        return data, str(blob.generation)

    def create(self, key: str, data: bytes) -> str:
        return self._write(key, data, generation=0)

    def replace(self, key: str, data: bytes, token: str) -> str:
        return self._write(key, data, generation=int(token))

    def _write(self, key: str, data: bytes, *, generation: int) -> str:
        blob = self._bucket.blob(key)
        with self._mapped("write", key):
            blob.upload_from_string(
                data,
                content_type="application/octet-stream",
                if_generation_match=generation,
                checksum="crc32c",
                retry=self._retry,
            )
        return str(blob.generation)

    def upload(
        self, path: Path, key: str, crc32c: str, progress: ProgressCallback | None = None
    ) -> ObjectInfo:
        blob = self._bucket.blob(key)
        size = path.stat().st_size
        with self._mapped("upload", key), path.open("rb") as raw:
            stream = CountingReader(raw, progress) if progress is not None else raw
            # checksum="crc32c": the client also compares the CRC32C GCS reports with what it sent.
            blob.upload_from_file(
                stream,
                size=size,
                content_type="application/octet-stream",
                checksum="crc32c",
                retry=self._retry,
            )
        return _info(blob)

    def copy(self, source: str, key: str) -> ObjectInfo:
        destination = self._bucket.blob(key)
        with self._mapped("copy", f"{source} -> {key}"):
            token, _, _ = destination.rewrite(self._bucket.blob(source), retry=self._retry)
            # Large copies between locations or storage classes take several calls.
            while token is not None:
                token, _, _ = destination.rewrite(self._bucket.blob(source), token=token, retry=self._retry)
        return _info(destination)

    def delete(self, key: str, token: str | None = None) -> bool:
        from google.api_core.exceptions import NotFound

        blob = self._bucket.blob(key)
        with self._mapped("delete", key):
            try:
                blob.delete(if_generation_match=None if token is None else int(token), retry=self._retry)
            except NotFound:
                return False
        return True

    @contextlib.contextmanager
    def _mapped(self, operation: str, key: str) -> Iterator[None]:
        """Google's errors as layertap's, naming the operation and the object."""
        from google.api_core import exceptions as gexc
        from google.auth.exceptions import DefaultCredentialsError
        from google.resumable_media.common import DataCorruption

        where = f"gs://{self.location.bucket}/{key}"
        try:
            yield
        except gexc.PreconditionFailed as error:
            raise StorageConflictError(
                f"{operation} {where}: the object was created or changed by someone else meanwhile "
                "(generation precondition failed)"
            ) from error
        except DataCorruption as error:
            raise IntegrityError(
                f"{operation} {where}: GCS stored other bytes than were sent: {error}"
            ) from error
        except gexc.NotFound as error:
            raise StorageError(
                f"{operation} {where}: not found ({_reason(error)}); does the bucket exist?"
            ) from error
        except (gexc.Forbidden, gexc.Unauthorized) as error:
            raise StorageError(
                f"{operation} {where}: access denied ({_reason(error)}); check the credentials "
                "(Application Default Credentials, GOOGLE_APPLICATION_CREDENTIALS)"
            ) from error
        except gexc.GoogleAPIError as error:
            raise StorageError(f"{operation} {where} failed after retries: {_reason(error)}") from error
        except DefaultCredentialsError as error:
            raise StorageError(
                f"{operation} {where}: no Google credentials found ({error}); run `gcloud auth "
                "application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or point "
                "STORAGE_EMULATOR_HOST at an emulator"
            ) from error
        except OSError as error:  # connection refused or reset once retries gave up
            raise StorageError(f"{operation} {where} failed: {error}") from error


def _info(blob: Any) -> ObjectInfo:
    return ObjectInfo(
        key=blob.name,
        size=int(blob.size),
        crc32c=blob.crc32c,
        token=str(blob.generation),
        updated=blob.updated,
    )


def _reason(error: Any) -> str:
    message = getattr(error, "message", None) or str(error)
    return " ".join(str(message).split())[:300]
