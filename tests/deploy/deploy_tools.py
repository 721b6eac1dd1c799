"""Paths of the deployment files, and running their validators (no Docker engine, no cluster)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
KUBERNETES_DIR = DOCKER_DIR / "kubernetes"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
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


def run_tool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a validator offline; the result is returned whatever its exit code."""
    env = {key: value for key, value in os.environ.items() if key.lower() != "no_proxy"} | _OFFLINE
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=120, cwd=cwd, env=env, check=False
    )
