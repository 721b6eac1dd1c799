"""`ObjectStore` on Amazon S3 (and S3-compatible stores), through AWS's own client (boto3).

Why boto3 rather than fsspec/s3fs: the protocol needs S3's conditional writes exactly as AWS defines them
(`If-None-Match: *` to claim a version number, `If-Match: <ETag>` for guarded rewrites), the CRC32C checksum
S3 verifies on receipt and reports back (`x-amz-checksum-crc32c`; botocore computes CRC32C through awscrt,
hence `boto3[crt]`), and botocore's "standard" retry mode (exponential backoff with jitter on throttling, 5xx
and connection errors). boto3 reads the AWS credential chain (environment, shared files, SSO, instance roles)
and honours `AWS_ENDPOINT_URL`.

Single PUT and COPY requests are limited to 5 GiB per object by S3; a larger file is refused with that reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from layertap.errors import IntegrityError, StorageConflictError, StorageError
from layertap.storage.store import CountingReader, ObjectInfo, ProgressCallback
from layertap.storage.uri import ObjectLocation

__all__ = ["S3Store"]

#: S3's limit for one PUT or COPY request.
MAX_SINGLE_REQUEST = 5 * 1024**3

_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict"}
_ACCESS = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}


class S3Store:
    """One S3 bucket (`location.bucket`); see `layertap.storage.store.ObjectStore`."""

    def __init__(self, location: ObjectLocation, client: Any | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.location = location
        self._client = client or boto3.client(
            "s3", config=Config(retries={"mode": "standard", "max_attempts": 8})
        )

    def stat(self, key: str) -> ObjectInfo | None:
        with self._mapped("stat", key):
            try:
                head = self._client.head_object(Bucket=self.location.bucket, Key=key, ChecksumMode="ENABLED")
            except Exception as error:
                if _code(error) in {"404", "NoSuchKey", "NotFound"}:
                    return None
                raise
        return _info(
            key, head["ContentLength"], head.get("ChecksumCRC32C"), head["ETag"], head["LastModified"]
        )

    def list_objects(self, prefix: str) -> list[ObjectInfo]:
        found: list[ObjectInfo] = []
        with self._mapped("list", prefix):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    found.append(_info(item["Key"], item["Size"], None, item["ETag"], item["LastModified"]))
        return found

    def children(self, prefix: str) -> list[str]:
        names: set[str] = set()
        with self._mapped("list", prefix):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                names.update(item["Key"][len(prefix) :] for item in page.get("Contents", []))
                names.update(
                    item["Prefix"][len(prefix) :].rstrip("/") for item in page.get("CommonPrefixes", [])
                )
        return sorted(names)

    def read(self, key: str) -> tuple[bytes, str] | None:
        with self._mapped("read", key):
            try:
                response = self._client.get_object(Bucket=self.location.bucket, Key=key)
            except Exception as error:
                if _code(error) in {"404", "NoSuchKey", "NotFound"}:
                    return None
                raise
            return response["Body"].read(), str(response["ETag"])

    def create(self, key: str, data: bytes) -> str:
        with self._mapped("create", key):
            response = self._client.put_object(
                Bucket=self.location.bucket, Key=key, Body=data, IfNoneMatch="*"
            )
        return str(response["ETag"])

    def replace(self, key: str, data: bytes, token: str) -> str:
        with self._mapped("write", key):
            response = self._client.put_object(Bucket=self.location.bucket, Key=key, Body=data, IfMatch=token)
        return str(response["ETag"])

    def upload(
        self, path: Path, key: str, crc32c: str, progress: ProgressCallback | None = None
    ) -> ObjectInfo:
        size = path.stat().st_size
        if size > MAX_SINGLE_REQUEST:
            raise StorageError(
                f"upload s3://{self.location.bucket}/{key}: {path} is {size} bytes; S3 takes at most "
                "5 GiB in one request and layertap does not split objects yet"
            )
        with self._mapped("upload", key), path.open("rb") as raw:
            body = CountingReader(raw, progress) if progress is not None else raw
            # Sending our CRC32C makes S3 check the bytes it received (BadDigest otherwise).
            self._client.put_object(
                Bucket=self.location.bucket,
                Key=key,
                Body=body,
                ContentLength=size,
                ChecksumAlgorithm="CRC32C",
                ChecksumCRC32C=crc32c,
            )
        info = self.stat(key)
        if info is None:
            raise StorageError(
                f"upload s3://{self.location.bucket}/{key}: the object is missing right after its PUT"
            )
        return info

    def copy(self, source: str, key: str) -> ObjectInfo:
        with self._mapped("copy", f"{source} -> {key}"):
            self._client.copy_object(
                Bucket=self.location.bucket,
                Key=key,
                CopySource={"Bucket": self.location.bucket, "Key": source},
            )
        info = self.stat(key)
        if info is None:
            raise StorageError(
                f"copy to s3://{self.location.bucket}/{key}: the object is missing after the copy"
            )
        return info

    def delete(self, key: str, token: str | None = None) -> bool:
        if self.stat(key) is None:
            return False
        with self._mapped("delete", key):
            if token is None:
                self._client.delete_object(Bucket=self.location.bucket, Key=key)
            else:
                self._client.delete_object(Bucket=self.location.bucket, Key=key, IfMatch=token)
        return True

    @contextlib.contextmanager
    def _mapped(self, operation: str, key: str) -> Iterator[None]:
        """botocore's errors as layertap's, naming the operation and the object."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"s3://{self.location.bucket}/{key}"
        try:
            yield
        except ClientError as error:
            code = _code(error)
            message = error.response.get("Error", {}).get("Message", "")
            if code in _CONFLICT:
                raise StorageConflictError(
                    f"{operation} {where}: the object was created or changed by someone else meanwhile "
                    f"({code})"
                ) from error
            if code == "BadDigest":
                raise IntegrityError(
                    f"{operation} {where}: S3 received other bytes than were sent ({message})"
                ) from error
            if code in _ACCESS:
                raise StorageError(
                    f"{operation} {where}: access denied ({code}: {message}); check the AWS credentials"
                ) from error
            if code == "NoSuchBucket":
                raise StorageError(
                    f"{operation} {where}: the bucket {self.location.bucket!r} does not exist"
                ) from error
            raise StorageError(f"{operation} {where} failed after retries: {code}: {message}") from error
        except NoCredentialsError as error:
            raise StorageError(
                f"{operation} {where}: no AWS credentials found (environment, ~/.aws, SSO or an "
                "instance role); AWS_ENDPOINT_URL points at another endpoint"
            ) from error
        except BotoCoreError as error:
            raise StorageError(f"{operation} {where} failed after retries: {error}") from error


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _info(key: str, size: int, crc32c: str | None, etag: str, updated: datetime) -> ObjectInfo:
    return ObjectInfo(key=key, size=int(size), crc32c=crc32c, token=str(etag), updated=updated)
