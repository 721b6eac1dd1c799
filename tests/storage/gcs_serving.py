"""`layertap serve` reading gs:// in a child process, and plain object uploads to the emulator, for the tests.

The server runs with `TensorFlowGcs.environment()`, so its gs:// reads go through TensorFlow's own GCS client
to fake-gcs-server. Objects are written with the emulator's JSON API directly (one request per object, in the
order given), so a test controls exactly which objects of a version exist when the server polls.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from tests.cli_process import cli_command
from tests.storage.tensorflow_gcs import RelayProcess, TensorFlowGcs

__all__ = ["ServeProcess", "export_scale", "upload_file", "upload_folder", "version_files"]


def export_scale(path: Path, factor: float) -> None:
    """A SavedModel whose serving_default multiplies `x` (float32, [None, 2]) by `factor`, a variable."""
    import tensorflow as tf

    class Scale(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.factor = tf.Variable(factor)

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": x * self.factor}

    module = Scale()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def upload_file(endpoint: str, bucket: str, name: str, data: bytes) -> None:
    """Create (or replace) the object `name` in `bucket` with `data` (a simple media upload)."""
    request = urllib.request.Request(
        f"{endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name, safe='')}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        if response.status != 200:
            raise RuntimeError(f"upload of {name} refused: HTTP {response.status}")


def version_files(folder: Path) -> list[Path]:
    """The files of an exported version, `saved_model.pb` last (the order that makes it the commit point)."""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return sorted(files, key=lambda path: path.name == "saved_model.pb")


def upload_folder(endpoint: str, bucket: str, prefix: str, folder: Path, files: Iterable[Path] = ()) -> None:
    """Upload `files` (default: all of `folder`, `saved_model.pb` last) under `prefix/`, one at a time."""
    for path in files or version_files(folder):
        upload_file(endpoint, bucket, f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())


class ServeProcess:
    """`layertap serve FLAGS...` in a child process whose gs:// goes to the emulator; its log is collected."""

    def __init__(self, relay: TensorFlowGcs | RelayProcess, *flags: str) -> None:
        self.process = subprocess.Popen(
            cli_command("serve", "--port=0", *flags),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **relay.environment(), "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def log(self) -> str:
        """Everything the server has logged so far."""
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        """The first log line matching `pattern`; fails with the log when none comes within `timeout`."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        with self._changed:
            while True:
                for line in self.lines:
                    match = compiled.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no log line matches {pattern!r}:\n{''.join(self.lines)}")
                self._changed.wait(min(left, 1.0))

    def port(self) -> int:
        """The gRPC port, once the server has loaded its models and opened it."""
        return int(self.wait_for(r"Running gRPC ModelServer at 127\.0\.0\.1:(\d+)").group(1))

    def stop(self) -> int:
        """SIGTERM, then the exit code (SIGKILL after 60 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        return self.process.returncode
