"""The Ray Data job of docs/extract.md, run as the page shows it (`read_images`, `map_batches` with the
actor class, `write_parquet`) on a real Ray node against `layertap serve`: its features equal
`layertap extract`'s for the same images, bit for bit.

The node is a `ray start --head --block` child of this test, started so that it comes up on a loaded
2-core machine (see `ray_head`); the page's code runs as a script whose `ray.init()` joins it through
RAY_ADDRESS.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.extract.conftest import CNN_LAYERS, column
from tests.guarantees import import_or_skip, skip_or_fail
from tests.test_readme import readme_blocks

DOCS = Path(__file__).resolve().parents[2] / "docs" / "extract.md"
ROOT = Path(__file__).resolve().parents[2]
# Ray reads these in every process it starts (and in this driver):
RAY_ENV = {
    # Loopback only: Ray otherwise advertises (and binds) the machine's address; this is the switch Ray
    # itself uses on macOS and Windows (ray/_private/ray_constants.py, ENABLE_RAY_CLUSTER).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # A node on loopback, used by this test only: no token to hand from the node to the driver.
    "RAY_AUTH_MODE": "disabled",
    # Stop at once on SIGTERM instead of draining for 30 s (ray/_private/node.py).
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    # No idle workers started ahead "to be ready": they cost seconds of CPU on a busy machine.
    "RAY_enable_worker_prestart": "0",
    # A worker that takes long to import Ray on a loaded machine is waited for, not killed.
    "RAY_worker_register_timeout_seconds": "300",
}
START_TIMEOUT = 300.0
START_ATTEMPTS = 3
JOB_TIMEOUT = 300.0


def ray_pythonpath() -> str:
    return os.pathsep.join([str(ROOT / "src"), str(ROOT)])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Node:
    """One `ray start --head --block` child (in a process group of its own) and its temporary root."""

    def __init__(self) -> None:
        # A short root: Ray's UNIX socket paths under it must stay within 107 bytes.
        self.temp = Path(tempfile.mkdtemp(prefix="lt-ray-", dir="/tmp"))
        self.gcs = _free_port()
        ports = {
            "--port": self.gcs,
            "--ray-client-server-port": _free_port(),
            "--dashboard-port": _free_port(),
            "--dashboard-agent-grpc-port": _free_port(),
            "--dashboard-agent-listen-port": _free_port(),
            "--metrics-export-port": _free_port(),
            "--runtime-env-agent-port": _free_port(),
        }
        argv = [
            str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
            "--node-ip-address=127.0.0.1", *(f"{flag}={port}" for flag, port in ports.items()),
            "--min-worker-port=0", "--max-worker-port=0", "--num-cpus=4", "--include-dashboard=false",
            "--include-log-monitor=false", "--disable-usage-stats", f"--temp-dir={self.temp}",
        ]  # fmt: skip
        env = {**os.environ, **RAY_ENV, "PYTHONPATH": ray_pythonpath()}  # the workers import layertap
        self.log = self.temp / "ray-start.log"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                argv, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def ready(self, deadline: float) -> bool:
        """Wait until the node is up (True), or until it failed or the deadline passed (False)."""
        while "block forever" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)  # the node stops every process it started
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group this test started, and nothing else
            self.process.wait(10)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A one-node Ray cluster on loopback; its GCS address.

    `ray.init()` alone starts the node with port 0 for its agents, and the raylet then waits a fixed
    15 s (not configurable in Ray 2.60) for the dashboard agent to write its port to a file: on a
    loaded machine the agent's Python start-up takes longer and the raylet aborts ("Timed out waiting
    for file .../metrics_agent_port_..."). Given every port, the raylet waits for no file. `ray start`
    itself gives the raylet a fixed 30 s to register with the GCS, which a machine at load 20 can
    miss: a node that fails to start is started again, within START_TIMEOUT in all.
    """
    import_or_skip("ray")
    deadline = time.monotonic() + START_TIMEOUT
    failures: list[str] = []
    node: _Node | None = None
    while node is None and len(failures) < START_ATTEMPTS and time.monotonic() < deadline:
        candidate = _Node()
        if candidate.ready(deadline):
            node = candidate
        else:
            failures.append(candidate.output()[-2000:])
            candidate.stop()
    if node is None:
        skip_or_fail(f"the Ray node did not start ({len(failures)} attempts); the last said: {failures[-1:]}")
        return
    try:
        yield f"127.0.0.1:{node.gcs}"
    finally:
        node.stop()


def ray_block() -> str:
    """The page's Ray Data job, with the address and name of this test's server."""
    (block,) = [b for b in readme_blocks(DOCS.read_text("utf-8")) if "ray.init()" in b.code]
    return block.code


def test_the_documented_ray_job_writes_extracts_features(
    tmp_path: Path, ray_head: str, cnn_target: str, digits: np.ndarray
) -> None:
    import pyarrow.parquet as pq
    from PIL import Image

    from layertap.extract import ImagePreprocessing, extract

    pixels = np.round(digits[:10, :, :, 0] * 255).astype(np.uint8)
    (tmp_path / "digits").mkdir()
    for index, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / "digits" / f"{index:03d}.png")
    code = ray_block()
    for placeholder in ('"localhost:8500"', '"tutorial_cnn"'):
        assert code.count(placeholder) == 1, placeholder  # the page still names the docs' server once
    (tmp_path / "ray_job.py").write_text(
        code.replace('"localhost:8500"', repr(cnn_target)).replace('"tutorial_cnn"', '"digits"')
    )
    # The driver is a process of its own, as a user's would be: Ray reads RAY_ENV when it is imported,
    # and its `ray.init()` joins the node named by RAY_ADDRESS.
    env = {**os.environ, **RAY_ENV, "RAY_ADDRESS": ray_head, "PYTHONPATH": ray_pythonpath()}
    try:
        done = subprocess.run(
            [sys.executable, "ray_job.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=JOB_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the Ray job did not end within {JOB_TIMEOUT:.0f} s: {str(error.stderr)[-3000:]}")
    assert done.returncode == 0, done.stderr[-5000:]

    written = pq.read_table(tmp_path / "extracted" / "ray")
    order = np.argsort([Path(path).name for path in written.column("id").to_pylist()])
    summary = extract(
        tmp_path / "digits", CNN_LAYERS, tmp_path / "out", targets=[cnn_target], model="digits",
        preprocessing=ImagePreprocessing(scale=1 / 255),
    )  # fmt: skip
    assert summary.rows == len(written) == 10
    expected = pq.read_table(tmp_path / "out")
    names = [Path(path).name for path in written.column("id").to_pylist()]
    assert [names[i] for i in order] == expected.column("id").to_pylist()
    for name in CNN_LAYERS:
        got = np.stack(written.column(name).to_numpy(zero_copy_only=False))[order]
        np.testing.assert_array_equal(got, column(expected, name, [-1]))
