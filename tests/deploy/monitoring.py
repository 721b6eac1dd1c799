"""The real Prometheus tools (Debian's `prometheus` package: promtool and the server) for tests/deploy.

Installed with apt-get when missing (CI runs as root on a fresh machine); the server runs on loopback
with its own config and storage in the test's directory, and is stopped by the test.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_RULE = (
    REPO_ROOT / "docker" / "kustomize" / "components" / "prometheus-operator" / "prometheusrule.yaml"
)
RULE_TESTS = Path(__file__).parent / "promtool" / "rules_test.yaml"


def ensure_prometheus() -> tuple[str, str]:
    """Paths of `prometheus` and `promtool`, installing Debian's `prometheus` package when one is missing."""
    # Two pytest-xdist workers may both find the tools missing: the second waits for the first's
    # install (dpkg holds its own lock and would refuse a concurrent apt-get instead of waiting).
    with Path(tempfile.gettempdir(), "layertap-tests-prometheus.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shutil.which("prometheus") is None or shutil.which("promtool") is None:
            _install_prometheus()
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    assert prometheus is not None and promtool is not None
    return prometheus, promtool


def _install_prometheus() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail("tests/deploy need Prometheus' tools: `apt-get install prometheus` (Debian) as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900, check=False)
        assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}"


def write_rules(directory: Path, rule: Path = PROMETHEUS_RULE) -> Path:
    """The PrometheusRule's groups as a plain Prometheus rules file, `directory/rules.yaml`."""
    groups = yaml.safe_load(rule.read_text())["spec"]["groups"]
    target = directory / "rules.yaml"
    target.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return target


@dataclass
class PrometheusServer:
    """A Prometheus server on 127.0.0.1, scraping `targets` (address -> extra labels) every second."""

    binary: str
    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self, metrics_path: str, targets: dict[str, dict[str, str]]) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(write_rules(self.directory))],
            "scrape_configs": [
                {
                    "job_name": "layertap-serving",
                    "metrics_path": metrics_path,
                    "static_configs": [
                        {"targets": [address], "labels": labels} for address, labels in targets.items()
                    ],
                }
            ],
        }
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = (self.directory / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.wait_for(lambda: self._get("/-/ready") is not None, "Prometheus to be ready", timeout=60)

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as answer:
                return bytes(answer.read())
        except OSError:
            return None

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` evaluates to now (Prometheus' HTTP API)."""
        answer = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert answer is not None, f"Prometheus did not answer {expr!r}"
        body = json.loads(answer)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def wait_for(self, condition: Any, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, (
                self.directory / "prometheus.log"
            ).read_text()[-3000:]
            if condition():
                return
            time.sleep(0.25)
        raise AssertionError(
            f"timed out waiting for {what}:\n{(self.directory / 'prometheus.log').read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
