"""Publishing survives SIGKILL at 22 moments spread over tracing, writing variables, verifying, warmup,
fsync and rename.

A fresh child process (forked from one that imported TensorFlow once: reliability_export_child.py) exports
in a loop and is killed a chosen delay after a chosen progress line; the delays after
"publishing version" (0 to 120 ms) land inside fsync of the staging tree and around the rename. A poller lists
the model folder every 2 ms: each numeric directory must hold a complete SavedModel the first time it is seen
and never change afterwards; version 1 stays byte-identical; every version loads and answers through the real
server; the next export removes the leftovers and succeeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.client import LayerClient
from layertap.exporter import export
from layertap.exporter.publish import TEMP_PREFIX
from layertap.server.app import LayertapServer

CHILD = Path(__file__).with_name("reliability_export_child.py")
REQUIRED = {
    "saved_model.pb",
    "variables/variables.index",
    "variables/variables.data-00000-of-00001",
    "assets.extra/layertap.json",
    "assets.extra/tf_serving_warmup_requests",
}
PUBLISH = "publishing version"
#: (progress line prefix, seconds to wait after it) for each kill.
KILL_POINTS: list[tuple[str, float]] = [
    ("tracing signature 1/", 0.0),
    ("tracing signature 2/", 0.0),
    ("tracing signature 3/", 0.0),
    ("tracing signature 4/", 0.0),
    ("saving ", 0.0),  # writing saved_model.pb and the variables
    ("saving ", 0.05),
    ("saving ", 0.15),
    ("saving ", 0.3),
    ("verifying signature", 0.0),
    ("writing warmup requests", 0.0),
    ("writing warmup requests", 0.005),
    ("writing warmup requests", 0.02),
    (PUBLISH, 0.0),  # fsync of the staging tree ...
    (PUBLISH, 0.001),
    (PUBLISH, 0.002),
    (PUBLISH, 0.004),
    (PUBLISH, 0.008),
    (PUBLISH, 0.015),  # ... the rename ...
    (PUBLISH, 0.03),
    (PUBLISH, 0.06),
    (PUBLISH, 0.12),  # ... and the start of the next export
    ("building version", 0.0),
]


def _snapshot(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


class Poller(threading.Thread):
    """Lists the model folder every 2 ms and snapshots each numeric directory when first seen."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.first_seen: dict[str, dict[str, str]] = {}
        self.listings = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for entry in sorted(p.name for p in self.folder.iterdir()):
                if entry.isdigit() and entry not in self.first_seen:
                    self.first_seen[entry] = _snapshot(self.folder / entry)
            self.listings += 1
            time.sleep(0.002)


class ForkServer:
    """reliability_export_child.py: forks exporters from one process that imported TensorFlow once."""

    def __init__(self, model_path: Path, base: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), str(model_path), str(base)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        #: The exporters' progress lines, `PID message`.
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._answer() == ["ready"]

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.strip())

    def _answer(self) -> list[str]:
        assert self.process.stdout is not None
        return self.process.stdout.readline().split()

    def fork(self) -> int:
        """A new exporter; returns its pid."""
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        word, pid = self._answer()
        assert word == "started"
        return int(pid)

    def reap(self, pid: int) -> int:
        """The exporter's return code once it has died (-9: SIGKILL)."""
        word, exited, code = self._answer()
        assert [word, exited] == ["exited", str(pid)]
        return int(code)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _kill_at(prefix: str, delay: float, pid: int, lines: queue.Queue[str]) -> None:
    deadline = time.monotonic() + 120
    while True:
        owner, _, message = lines.get(timeout=120).partition(" ")
        if owner == str(pid) and message.startswith(prefix):
            break
        # Bounded: a prefix that never appears is a broken test, not a reason to export forever.
        assert time.monotonic() < deadline, f"the child never printed {prefix!r}"
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_sigkill_at_22_moments_never_exposes_a_partial_version(
    untrained_tutorial_cnn: Any, tmp_path: Path, serve: Callable[..., LayertapServer]
) -> None:
    model_path = tmp_path / "cnn.keras"
    untrained_tutorial_cnn.save(model_path)
    base = tmp_path / "repo"
    first = export(untrained_tutorial_cnn, ["conv_1"], base_path=base, name="cnn", verify=False)
    folder = first.path.parent
    version_1 = _snapshot(first.path)
    poller = Poller(folder)
    poller.start()
    leftovers = 0
    exporters = ForkServer(model_path, base)
    try:
        for prefix, delay in KILL_POINTS:
            pid = exporters.fork()
            try:
                _kill_at(prefix, delay, pid, exporters.lines)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            assert exporters.reap(pid) == -signal.SIGKILL
            leftovers += sum(entry.name.startswith(TEMP_PREFIX) for entry in folder.iterdir())
    finally:
        exporters.close()
        poller.stop.set()
        poller.join()

    versions = sorted(int(entry.name) for entry in folder.iterdir() if entry.name.isdigit())
    print(
        f"sigkill: {len(KILL_POINTS)} kills, {poller.listings} listings, "
        f"versions {versions}, leftovers {leftovers}"
    )
    assert poller.listings > 100
    assert leftovers >= 1  # kills did land in the middle of exports
    assert sorted(int(entry) for entry in poller.first_seen) == versions
    for entry, seen in poller.first_seen.items():
        assert set(seen) >= REQUIRED, (entry, sorted(seen))
        assert seen == _snapshot(folder / entry), entry  # complete when first seen, unchanged since
    assert _snapshot(first.path) == version_1

    # Every published version loads and answers on the real server (all versions served at once).
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "cnn" base_path: "{folder}" model_platform: "tensorflow" '
        "model_version_policy { all {} } } }\n"
    )
    server = serve(model_config_file=str(config))
    image = np.zeros((1, 28, 28, 1), np.float32)
    with LayerClient(server.address, "cnn", timeout=30) as client:
        client.wait_ready(timeout=120)
        assert sorted(s.version for s in client.status() if s.state == "AVAILABLE") == versions
    for version in versions:
        with LayerClient(server.address, "cnn", version=version, timeout=30) as client:
            assert client.predict(image, ["conv_1"])["conv_1"].shape == (1, 26, 26, 32)

    final = export(untrained_tutorial_cnn, ["conv_1"], base_path=base, name="cnn", verify=False)
    assert final.version == versions[-1] + 1
    assert [entry.name for entry in folder.iterdir() if entry.name.startswith(TEMP_PREFIX)] == []
