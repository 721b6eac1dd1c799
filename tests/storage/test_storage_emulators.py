"""The emulators the storage tests rely on: on loopback, conditional creates honoured, CRC32C reported."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import google_crc32c
import psutil
import pytest

from tests.storage.emulators import FakeGcs, MotoS3


def _listening_addresses(pid: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="inet") if c.status == "LISTEN"}


def test_emulators_listen_on_loopback_only(fake_gcs: FakeGcs, moto_s3: MotoS3) -> None:
    assert _listening_addresses(fake_gcs.process.pid) == {"127.0.0.1"}
    moto = psutil.Process(moto_s3.process.pid)
    addresses = _listening_addresses(moto.pid) | {
        address for child in moto.children(recursive=True) for address in _listening_addresses(child.pid)
    }
    assert addresses == {"127.0.0.1"}


def test_fake_gcs_generation_preconditions_and_crc32c(gcs_bucket: str) -> None:
    from google.api_core.exceptions import PreconditionFailed
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="layertap-test", credentials=AnonymousCredentials())
    blob = client.bucket(gcs_bucket).blob("m/_claims/1")
    blob.upload_from_string(b"hello", if_generation_match=0)
    blob.reload()
    assert blob.size == 5
    assert base64.b64decode(blob.crc32c) == google_crc32c.value(b"hello").to_bytes(4, "big")
    with pytest.raises(PreconditionFailed):
        client.bucket(gcs_bucket).blob("m/_claims/1").upload_from_string(b"other", if_generation_match=0)
    assert blob.download_as_bytes() == b"hello"


def test_moto_if_none_match(s3_bucket: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3")
    s3.put_object(Bucket=s3_bucket, Key="m/_claims/1", Body=b"hello", IfNoneMatch="*")
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket=s3_bucket, Key="m/_claims/1", Body=b"other", IfNoneMatch="*")
    assert caught.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=s3_bucket, Key="m/_claims/1")["Body"].read() == b"hello"


def test_child_processes_reach_the_emulators(fake_gcs: FakeGcs, gcs_bucket: str) -> None:
    # What a SIGKILL test's child sees: only the environment variables, no fixture.
    code = (
        "from google.cloud import storage\n"
        "from google.auth.credentials import AnonymousCredentials\n"
        f"print([b.name for b in storage.Client(credentials=AnonymousCredentials()).list_buckets()"
        f" if b.name == {gcs_bucket!r}])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **fake_gcs.env()},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == repr([gcs_bucket]), result.stderr
