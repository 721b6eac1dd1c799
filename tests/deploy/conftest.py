"""The validators that check docker/ without a Docker engine or a cluster, run offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

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


@pytest.fixture
def validate() -> Validate:
    """`validate("hadolint", path)`: run a dev-extra validator offline and return its result."""
    return _run
