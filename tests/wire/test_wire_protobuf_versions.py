"""The codec and client under protobuf 4, 5, 6 and 7 (7 is the development environment's; 4.25 is what
TensorFlow 2.16 and 2.17 require)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import google.protobuf
import pytest

from tests.guarantees import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("protobuf_roundtrip.py")
# Markers of pip failing to reach the package registry, as opposed to a real install failure.
OFFLINE = ("Could not find a version", "No matching distribution", "NewConnectionError", "Temporary failure")


def run_script(python: str, major: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [python, str(SCRIPT), str(major)], capture_output=True, text=True, env=env, check=False, timeout=60
    )


def test_round_trip_with_the_installed_protobuf() -> None:
    major = int(google.protobuf.__version__.split(".")[0])
    result = run_script(sys.executable, major)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == f"ok protobuf {google.protobuf.__version__}"


def make_env(folder: Path, major: int) -> tuple[str, str]:
    """A throwaway venv with protobuf==major.*, numpy and grpcio; returns (python, pip output)."""
    # In a child process: a venv written by this process while another thread forks would leave the
    # new interpreter open for writing in that child ("Text file busy").
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True, timeout=60)
    python = str(folder / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"protobuf=={major}.*", "numpy", "grpcio"],
        capture_output=True,
        text=True,
        check=False,
        timeout=80,
    )
    if install.returncode != 0:
        return "", install.stdout + install.stderr
    return python, ""


@pytest.mark.slow
def test_round_trip_under_protobuf_4_5_and_6(tmp_path: Path) -> None:
    majors = (4, 5, 6)
    with ThreadPoolExecutor(2) as pool:
        made = dict(zip(majors, pool.map(lambda m: make_env(tmp_path / f"pb{m}", m), majors), strict=True))
    for major, (python, failure) in made.items():
        if not python:
            if any(marker in failure for marker in OFFLINE):
                skip_or_fail(
                    f"package registry unreachable, cannot install protobuf=={major}.*: {failure[-300:]}"
                )
            pytest.fail(f"installing protobuf=={major}.* failed: {failure[-2000:]}")
        result = run_script(python, major)
        assert result.returncode == 0, f"protobuf {major}: {result.stderr[-3000:]}"
        assert result.stdout.startswith(f"ok protobuf {major}."), result.stdout
