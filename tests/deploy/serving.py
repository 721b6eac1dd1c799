"""`layertap serve` as real processes on loopback, the way replicas run behind a Service: one address
each (127.0.0.1, 127.0.0.2, ...), the same gRPC and REST ports, metrics on the REST port as TF Serving's."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from layertap.config.status import fetch_version_states
from layertap.errors import LayertapError

METRICS_PATH = "/monitoring/prometheus/metrics"
MONITORING_CONFIG = f'prometheus_config {{\n  enable: true\n  path: "{METRICS_PATH}"\n}}\n'


def free_port(addresses: list[str], taken: int | None = None) -> int:
    """A TCP port free on every address (each replica listens on its own address, all on this port)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        if port == taken:
            continue
        try:
            for address in addresses[1:]:
                with socket.socket() as other:
                    other.bind((address, port))
        except OSError:
            continue
        return port
    raise AssertionError(f"no port free on all of {addresses}")


@dataclass
class Replica:
    """One `layertap serve` process: `start()`, `kill()` (SIGKILL), `stop()`; its log is kept in `log`."""

    address: str
    port: int
    rest_port: int
    model: str
    base_path: Path
    monitoring_config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def rest_url(self) -> str:
        return f"http://{self.address}:{self.rest_port}"

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "layertap.cli",
            "serve",
            f"--bind_address={self.address}",
            f"--port={self.port}",
            f"--rest_api_port={self.rest_port}",
            f"--model_name={self.model}",
            f"--model_base_path={self.base_path}",
            f"--monitoring_config_file={self.monitoring_config}",
            "--file_system_poll_wait_seconds=1",
            "--max_num_load_retries=0",
        ]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)

    def states(self) -> dict[int, str]:
        try:
            return fetch_version_states(self.rest_url, self.model, timeout=2)
        except LayertapError:
            return {}

    def wait_until(self, states: dict[int, str], timeout: float = 180) -> None:
        """Wait until the server reports exactly these version states (the process must stay alive)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, (
                f"layertap serve on {self.address} exited:\n{self.log.read_text()[-3000:]}"
            )
            if self.states() == states:
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.address}: {self.states()} after {timeout} s, expected {states}")

    def metrics(self) -> str:
        with urllib.request.urlopen(self.rest_url + METRICS_PATH, timeout=5) as answer:
            return str(answer.read().decode())

    def predicts_served(self) -> int:
        """Predict calls answered OK, from the server's own latency histogram count (labelled by API)."""
        pattern = r'^:tensorflow:serving:request_latency_count\{[^}]*API="Predict"[^}]*\} (\S+)$'
        return sum(int(float(value)) for value in re.findall(pattern, self.metrics(), re.MULTILINE))

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill()
        self.process.wait(timeout=30)
