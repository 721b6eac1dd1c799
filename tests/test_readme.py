"""README.md is executable: every ```bash and ```python block runs, in order, against the demo model.

A block immediately preceded by a line `<!-- not run: REASON -->` is skipped (docker, a cluster, a
GPU, installing packages, long-running servers). The blocks run in a fresh working directory that
holds what the README's examples name: `model.keras` (the tutorial CNN, trained briefly),
`images.npy` and `inputs.npz`. Before the first block that talks to `localhost:8500`, `layertap serve`
is started for `models/tutorial_cnn` (which the earlier export blocks wrote) on a free port, and
`8500` in the blocks is replaced by that port, so the test never needs the fixed port.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^```(\w*)\s*$")
_NOT_RUN = re.compile(r"^<!-- not run: .+ -->$")
SERVED_PORT = "8500"


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # 1-based line of the opening fence
    skipped: bool


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of `text` with its language, in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        skipped = index > 0 and bool(_NOT_RUN.match(lines[index - 1].strip()))
        blocks.append(Block(opening.group(1), "\n".join(lines[index + 1 : end]), index + 1, skipped))
        index = end + 1
    return blocks


def test_the_marker_is_read_exactly() -> None:
    text = "x\n<!-- not run: needs docker -->\n```bash\ndocker ps\n```\n\n```python\nprint(1)\n```\n"
    assert [(b.language, b.code, b.line, b.skipped) for b in readme_blocks(text)] == [
        ("bash", "docker ps", 3, True),
        ("python", "print(1)", 7, False),
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from layertap.demo.tutorial_cnn import build_tutorial_cnn, synthetic_digits, train_briefly

    work = tmp_path_factory.mktemp("readme")
    model = build_tutorial_cnn()
    train_briefly(model, samples=256, epochs=1)
    model.save(work / "model.keras")
    images, _ = synthetic_digits(4, seed=1)
    np.save(work / "images.npy", images)
    np.savez(work / "inputs.npz", image=images)
    return work


class Server:
    """`layertap serve` for the README's model, started when a block first needs it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def ensure_started(self) -> None:
        if self.process is not None:
            return
        command = [
            sys.executable, "-m", "layertap.cli", "serve", f"--port={self.port}", "--model_name=tutorial_cnn",
            f"--model_base_path={self.work / 'models' / 'tutorial_cnn'}", "--file_system_poll_wait_seconds=1",
        ]  # fmt: skip
        log = (self.work / "serve.log").open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.work)
        from layertap.client import LayerClient

        with LayerClient(f"127.0.0.1:{self.port}", "tutorial_cnn") as client:
            client.wait_ready(timeout=120)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[Server]:
    running = Server(workdir)
    yield running
    running.stop()


def test_every_readme_block_runs_in_order(workdir: Path, server: Server) -> None:
    blocks = [
        block for block in readme_blocks(README.read_text("utf-8")) if block.language in ("bash", "python")
    ]
    assert blocks, "README.md has no bash or python blocks"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    ran = 0
    for block in blocks:
        if block.skipped:
            continue
        code = block.code
        if SERVED_PORT in code:
            server.ensure_started()
            code = code.replace(SERVED_PORT, str(server.port))
        command = (
            ["bash", "-euo", "pipefail", "-c", code]
            if block.language == "bash"
            else [sys.executable, "-c", code]
        )
        done = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, (
            f"README.md line {block.line} ({block.language}) failed with exit {done.returncode}:\n"
            f"{block.code}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
        ran += 1
    assert ran >= 4  # the exporter and client examples at least
