"""README.md and the docs pages are executable: every ```bash and ```python block runs, in order.

The pages run in reading order, README.md first and then the pages of mkdocs.yml's `nav` (a page's
`--8<-- "FILE"` includes are read in place), all in ONE working directory, since later pages use what
earlier ones wrote (the client guide asks for the layers the exporting guide exported). One test per
page, so a failure names its page; selecting a later page alone (`-k client.md`) can fail for want of
what the earlier ones write. The front page repeats some of the guide's examples word for word: a block
identical to one that already ran in this working directory is not run twice (the test's time is
part of CI's).

A block immediately preceded by a line `<!-- not run: REASON -->` is skipped (docker, a cluster, a
GPU, installing packages, long-running servers). The working directory holds what the examples name:
`model.keras` (the tutorial CNN, trained briefly), `images.npy` and `inputs.npz`. Before the first
block that talks to `localhost:8500`, `layertap serve` is started for `models/tutorial_cnn` (which the
earlier export blocks wrote) on a free port, and `8500` in the blocks is replaced by that port, so the
test never needs the fixed port. The blocks' `layertap`, and that server, are tests/cli_process.py's
launcher: the same CLI, forked for the TensorFlow commands from a process that imported TensorFlow once.
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
import yaml

from tests.cli_process import cli_command, layertap_on_path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MKDOCS = ROOT / "mkdocs.yml"
_FENCE = re.compile(r"^```(\w*)\s*$")
_NOT_RUN = re.compile(r"^<!-- not run: .+ -->$")
_SNIPPET = re.compile(r'^--8<-- "([^"]+)"$')
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
        command = cli_command(
            "serve", f"--port={self.port}", "--model_name=tutorial_cnn",
            f"--model_base_path={self.work / 'models' / 'tutorial_cnn'}", "--file_system_poll_wait_seconds=1",
        )  # fmt: skip
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


def _nav_pages(nav: object) -> Iterator[str]:
    """The page files of an mkdocs `nav`, depth first, in the order the site lists them."""
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for entry in nav:
            yield from _nav_pages(entry)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_pages(value)


class _MkdocsLoader(yaml.SafeLoader):
    """Reads mkdocs.yml without running it: `!!python/name:` and `!ENV` tags become None."""


_MkdocsLoader.add_multi_constructor("", lambda loader, suffix, node: None)


def pages_in_order() -> list[Path]:
    """README.md, then every Markdown page of mkdocs.yml's nav in nav order."""
    config = yaml.load(MKDOCS.read_text("utf-8"), Loader=_MkdocsLoader)
    docs = ROOT / config.get("docs_dir", "docs")
    return [README, *(docs / page for page in _nav_pages(config["nav"]) if page.endswith(".md"))]


def page_text(page: Path) -> str:
    """The page as mkdocs renders it: `--8<-- "FILE"` lines (pymdownx.snippets) replaced by FILE."""
    lines = []
    for line in page.read_text("utf-8").splitlines():
        included = _SNIPPET.match(line.strip())
        lines.append((ROOT / included.group(1)).read_text("utf-8") if included else line)
    return "\n".join(lines)


def test_pages_follow_the_nav_and_include_files() -> None:
    pages = pages_in_order()
    names = [page.relative_to(ROOT).as_posix() for page in pages]
    assert names[:3] == ["README.md", "docs/index.md", "docs/exporting.md"]
    assert [name for name, page in zip(names, pages, strict=True) if not page.is_file()] == []
    benchmarks = page_text(ROOT / "docs" / "benchmarks.md")
    assert benchmarks == (ROOT / "BENCHMARKS.md").read_text("utf-8")


PAGES = pages_in_order()


def test_every_docs_page_is_in_the_nav() -> None:
    # A page outside the nav would have its blocks left unrun here (and `mkdocs build --strict` refuses it).
    docs = ROOT / "docs"
    missing = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md") if p not in set(PAGES))
    assert missing == [], f"add these pages to mkdocs.yml's nav: {missing}"


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the `layertap` the blocks run: the CLI, forked from a process that imported
    TensorFlow once for the TensorFlow commands (tests/cli_process.py)."""
    return layertap_on_path(tmp_path_factory.mktemp("launcher"))


@pytest.fixture(scope="module")
def ran() -> set[tuple[str, str]]:
    """(language, code) of every block that has run so far, across pages."""
    return set()


@pytest.mark.parametrize("page", PAGES, ids=[page.relative_to(ROOT).as_posix() for page in PAGES])
def test_every_block_runs_in_order(
    page: Path, workdir: Path, server: Server, launcher: Path, ran: set[tuple[str, str]]
) -> None:
    blocks = [block for block in readme_blocks(page_text(page)) if block.language in ("bash", "python")]
    name = page.relative_to(ROOT).as_posix()
    path = os.pathsep.join([str(launcher), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path}
    for block in blocks:
        if block.skipped or (block.language, block.code) in ran:
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
            f"{name} line {block.line} ({block.language}) failed with exit {done.returncode}:\n"
            f"{block.code}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
        ran.add((block.language, block.code))


def test_the_readme_runs_an_example_of_each_part() -> None:
    run = [b.code for b in readme_blocks(README.read_text("utf-8")) if not b.skipped]
    assert any("layertap export" in code for code in run)
    assert any("LayerClient" in code for code in run)
    assert any("layertap config check" in code for code in run)


def test_no_page_cites_what_the_repository_does_not_hold() -> None:
    # A reader must be able to follow every reference from the repository alone: facts about TF Serving
    # cite their upstream sources (tensorflow/serving files and issues), never notes kept elsewhere.
    citing = [page.name for page in PAGES if re.search(r"REFERENCE(\.md| §)", page_text(page))]
    assert citing == []
