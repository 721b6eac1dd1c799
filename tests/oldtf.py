"""The oldest supported TensorFlow, in a throwaway virtual environment the old-TensorFlow tests share.

TensorFlow 2.16.1 with its Keras 3 is the oldest pair `layertap[tf]` supports, and TF Serving 2.16.1 is built
on it, so one environment serves both proofs: its TF1 session loader is the old server's loader
(tests/compat), and layertap runs in it from this checkout's sources (PYTHONPATH) to export and serve.
The environment is created once under a cache directory (`LAYERTAP_TEST_CACHE`, default
`~/.cache/layertap-tests`) and reused while its requirements are unchanged; a marker file written last means
"complete", so an interrupted install is redone. Environments of other requirement sets are left alone:
another checkout (a worktree, CI) may be using them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.guarantees import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]
#: The oldest supported pair (see pyproject.toml's `tf` extra and docs/compatibility.md).
OLDEST = {"tensorflow": "tensorflow-cpu==2.16.1", "keras": "keras==3.3.3"}


def _requirements() -> tuple[str, ...]:
    """pyproject.toml's `tf` extra with TensorFlow and Keras pinned to the oldest pair (the CPU wheel of
    TensorFlow), so the environment follows the extra when it changes."""
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["tf"]
    pinned = []
    for requirement in extra:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()
        pinned.append(OLDEST.get(name, requirement))
    assert set(OLDEST.values()) <= set(pinned), extra
    return tuple(pinned)


REQUIREMENTS = _requirements()
# Markers of pip failing to reach the package registry, as opposed to a real install failure.
OFFLINE = ("Could not find a version", "No matching distribution", "NewConnectionError", "Temporary failure")


@dataclass(frozen=True)
class OldTensorFlow:
    """A Python with the old TensorFlow, and how to run it with this checkout's layertap."""

    python: Path
    tensorflow: str
    keras: str
    protobuf: str

    def env(self) -> dict[str, str]:
        """The environment of a child process: this checkout's sources, quiet TensorFlow, no GPU."""
        return dict(
            os.environ,
            PYTHONPATH=str(ROOT / "src"),
            TF_CPP_MIN_LOG_LEVEL="3",
            CUDA_VISIBLE_DEVICES="",
            KERAS_BACKEND="tensorflow",
        )

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run `python ARGS...` in the old environment (not checked)."""
        return subprocess.run(
            [str(self.python), *args],
            capture_output=True,
            text=True,
            env=self.env(),
            check=False,
            timeout=timeout,
            cwd=ROOT,
        )


def cache_dir() -> Path:
    return Path(os.environ.get("LAYERTAP_TEST_CACHE", Path.home() / ".cache" / "layertap-tests"))


def old_tensorflow() -> OldTensorFlow:
    """Create (or reuse) the environment; pytest.skip when the package registry is unreachable."""
    digest = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()[:12]
    folder = cache_dir() / f"tf-2.16.1-{digest}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    marker = folder / "complete"
    # Parallel pytest processes (or developers) wait for one install instead of racing.
    with (folder.parent / f"{folder.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.is_file() and (folder / "bin" / "python").exists()):
            shutil.rmtree(folder, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120)
            install = subprocess.run(
                [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
                capture_output=True,
                text=True,
                check=False,
                timeout=1500,
            )
            if install.returncode != 0:
                shutil.rmtree(folder, ignore_errors=True)
                failure = install.stdout + install.stderr
                if any(marker_text in failure for marker_text in OFFLINE):
                    skip_or_fail(
                        f"package registry unreachable, cannot install TensorFlow 2.16: {failure[-300:]}"
                    )
                pytest.fail(f"installing {' '.join(REQUIREMENTS)} failed: {failure[-3000:]}")
            marker.write_text("\n".join(REQUIREMENTS))
    python = folder / "bin" / "python"
    versions = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; "
            "print(*(m.version(p) for p in ('tensorflow-cpu', 'keras', 'protobuf')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return OldTensorFlow(python, *versions)
