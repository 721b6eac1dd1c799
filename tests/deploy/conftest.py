"""tests/deploy fixtures: offline validators, Prometheus' tools, `layertap serve` replicas on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deploy.serving import Replica
from tests.fixtures.tutorial_cnn import UNTRAINED_CNN_LAYERS

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    """A validator installed by the dev extra, next to this interpreter (or on PATH)."""
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `make install` (it comes with the dev extra)")
    return found


# Every proxy points at a closed local port: a validator that tried to download a schema would fail, so a
# passing suite shows that each one works offline, as CI needs.
_OFFLINE = {name: "http://127.0.0.1:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}


def _run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run validator `name` offline; the result is returned whatever its exit code."""
    env = {key: value for key, value in os.environ.items() if key.lower() != "no_proxy"} | _OFFLINE
    return subprocess.run(
        [_tool(name), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


Validate = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def validate() -> Validate:
    """`validate("hadolint", path)`: run a dev-extra validator offline and return its result."""
    return _run


@pytest.fixture(scope="session")
def prometheus_tools() -> tuple[str, str]:
    """(prometheus, promtool): Debian's package, installed by apt-get on first use when missing."""
    from tests.deploy.monitoring import ensure_prometheus

    return ensure_prometheus()


@pytest.fixture(scope="session")
def cnn_versions(untrained_cnn_version: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two exports of the tutorial CNN with different weights, as version directories 1 and 2: the shared
    `untrained_cnn_version` (seed 3) and the same layers of the seed-4 CNN."""
    from layertap.demo.tutorial_cnn import build_tutorial_cnn
    from layertap.exporter import export

    root = tmp_path_factory.mktemp("cnn_seed4")
    export(build_tutorial_cnn(seed=4), UNTRAINED_CNN_LAYERS, base_path=root, name="cnn", verify=False)
    return {1: untrained_cnn_version, 2: root / "cnn" / "1"}


@pytest.fixture(scope="module")
def replicas(
    cnn_versions: dict[int, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Replica]]:
    """Three `layertap serve` processes on 127.0.0.1-3, same ports, each serving version 1 of `cnn` from its
    own copy of the repository (so a rollout can go replica by replica), with metrics on the REST port.
    Module-scoped: test_deploy_replicas.py shares them, and they stop when it ends."""
    from tests.deploy.serving import MONITORING_CONFIG, Replica, free_port

    root = tmp_path_factory.mktemp("replicas")
    monitoring = root / "monitoring.config"
    monitoring.write_text(MONITORING_CONFIG)
    addresses = [f"127.0.0.{i}" for i in (1, 2, 3)]
    port = free_port(addresses)
    rest_port = free_port(addresses, taken=port)
    started = []
    try:
        for index, address in enumerate(addresses, start=1):
            base = root / f"replica{index}" / "cnn"
            base.mkdir(parents=True)
            shutil.copytree(cnn_versions[1], base / "1")
            replica = Replica(address, port, rest_port, "cnn", base, monitoring, root / f"replica{index}.log")
            replica.start()
            started.append(replica)
        for replica in started:
            replica.wait_until({1: "AVAILABLE"})
        yield started
    finally:
        for replica in started:
            replica.stop()
