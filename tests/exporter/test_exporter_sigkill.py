"""A real export process SIGKILLed at many points never leaves a partial numeric version.

While children export in a loop and get killed at chosen stages (tracing, saving, verifying,
publishing) and at timed moments, a poller lists the model folder every 2 ms: every numeric
directory must be complete the first time it is seen. Afterwards every version loads through the
session loader, version 1 is byte-identical, and the next export removes the leftovers.
"""

from __future__ import annotations

import hashlib
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

from layertap.exporter import export
from layertap.exporter.publish import TEMP_PREFIX

SessionRunner = Callable[[Path, str, dict[str, np.ndarray]], dict[str, np.ndarray]]

CHILD = Path(__file__).with_name("export_loop_child.py")
REQUIRED = {
    "saved_model.pb",
    "variables/variables.index",
    "variables/variables.data-00000-of-00001",
    "assets.extra/layertap.json",
    "assets.extra/tf_serving_warmup_requests",
}
# Where each child is killed: after the first progress line starting with this text, or after
# this many seconds of exporting.
KILL_POINTS: list[str | float] = [
    "tracing signature 2/",
    "saving 3 signatures",
    "verifying signature conv_1",
    "publishing version",
    0.8,
    2.0,
]


def _names(folder: Path) -> list[str]:
    return [entry.name for entry in folder.iterdir()]


def _snapshot(directory: Path) -> dict[str, int]:
    return {
        str(path.relative_to(directory)): path.stat().st_size
        for path in directory.rglob("*")
        if path.is_file()
    }


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


class Poller(threading.Thread):
    """Lists the model folder every 2 ms, recording each numeric directory when first seen."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.first_seen: dict[str, dict[str, int]] = {}
        self.listings = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for entry in _names(self.folder):
                if entry.isdigit() and entry not in self.first_seen:
                    self.first_seen[entry] = _snapshot(self.folder / entry)
            self.listings += 1
            time.sleep(0.002)


def _kill_at(point: str | float, process: subprocess.Popen[str]) -> str:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line.strip())

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 120
    while lines.get(timeout=120) != "ready":
        pass
    started = time.monotonic()
    seen = "ready"
    while time.monotonic() < deadline:
        if isinstance(point, float):
            time.sleep(max(0.0, started + point - time.monotonic()))
            break
        seen = lines.get(timeout=120)
        if seen.startswith(point):
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    return seen


@pytest.mark.slow
def test_sigkill_never_leaves_a_partial_version(
    cnn: Any, digits: np.ndarray, run_in_session: SessionRunner, tmp_path: Path
) -> None:
    model_path = tmp_path / "cnn.keras"
    cnn.save(model_path)
    base = tmp_path / "repo"
    first = export(cnn, ["conv_1"], base_path=base, name="mnist")
    folder = first.path.parent
    version_1 = _digest(first.path)

    poller = Poller(folder)
    poller.start()
    leftovers_seen = 0
    try:
        for point in KILL_POINTS:
            child = subprocess.Popen(
                [sys.executable, str(CHILD), str(model_path), str(base), "mnist"],
                stderr=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                text=True,
            )
            try:
                _kill_at(point, child)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            assert child.returncode == -signal.SIGKILL
            leftovers_seen += sum(entry.startswith(TEMP_PREFIX) for entry in _names(folder))
    finally:
        poller.stop.set()
        poller.join()

    assert poller.listings > 100
    assert leftovers_seen >= 1  # some kills did land in the middle of an export
    versions = sorted(int(entry) for entry in _names(folder) if entry.isdigit())
    for entry, first_snapshot in poller.first_seen.items():
        assert set(first_snapshot) >= REQUIRED, (entry, sorted(first_snapshot))
        assert first_snapshot == _snapshot(folder / entry), entry  # complete when first seen
    assert sorted(int(entry) for entry in poller.first_seen) == versions
    assert _digest(first.path) == version_1  # older versions untouched
    for version in versions:
        output = run_in_session(folder / str(version), "conv_1", {"image": digits[:2]})["conv_1"]
        assert output.shape == (2, 26, 26, 32)

    final = export(cnn, ["conv_2"], base_path=base, name="mnist")
    assert final.version == versions[-1] + 1
    assert [entry for entry in _names(folder) if entry.startswith(TEMP_PREFIX)] == []
