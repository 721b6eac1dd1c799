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


def pip_target(folder: Path, *requirements: str) -> str:
    """`pip install --target folder requirements`; returns pip's output on failure, "" on success."""
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--target",
            str(folder),
            *requirements,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return "" if install.returncode == 0 else install.stdout + install.stderr


def run_isolated(path: list[Path], major: int) -> subprocess.CompletedProcess[str]:
    """The round trip in an interpreter that sees the standard library, `path` and layertap's source only:
    `-S` skips site-packages (this environment's protobuf and everything else installed here)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in [*path, ROOT / "src"]))
    return subprocess.run(
        [sys.executable, "-S", str(SCRIPT), str(major)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


@pytest.mark.slow
def test_round_trip_under_protobuf_4_5_and_6(tmp_path: Path) -> None:
    # numpy and grpcio once, each protobuf major in a folder of its own: three environments holding nothing
    # but protobuf, grpcio and numpy, without installing numpy and grpcio three times.
    majors = (4, 5, 6)
    folders = {"shared": tmp_path / "numpy-grpcio", **{major: tmp_path / f"pb{major}" for major in majors}}
    requirements = {"shared": ("numpy", "grpcio"), **{major: (f"protobuf=={major}.*",) for major in majors}}
    with ThreadPoolExecutor(2) as pool:
        failures = dict(
            zip(
                folders,
                pool.map(lambda key: pip_target(folders[key], *requirements[key]), folders),
                strict=True,
            )
        )
    for key, failure in failures.items():
        if failure:
            if any(marker in failure for marker in OFFLINE):
                skip_or_fail(
                    f"package registry unreachable, cannot install {requirements[key]}: {failure[-300:]}"
                )
            pytest.fail(f"installing {requirements[key]} failed: {failure[-2000:]}")
    for major in majors:
        result = run_isolated([folders[major], folders["shared"]], major)
        assert result.returncode == 0, f"protobuf {major}: {result.stderr[-3000:]}"
        assert result.stdout.startswith(f"ok protobuf {major}."), result.stdout
