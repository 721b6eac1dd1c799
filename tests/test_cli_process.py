"""tests/cli_process.py: `layertap` through the fork server behaves as `python -m layertap.cli` does (output,
exit code, cwd, environment, signals), and what would start differently runs in a fresh interpreter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import psutil

from layertap.cli import EXIT_OK, EXIT_USAGE
from tests.cli_fork_server import effective_environment, warm_enough
from tests.cli_process import _fork_server, cli_command

COLD = [sys.executable, "-m", "layertap.cli"]


def _forked(before: set[int]) -> list[psutil.Process]:
    """The fork server's children that were not there before."""
    return [p for p in psutil.Process(_fork_server().process.pid).children() if p.pid not in before]


def _children() -> set[int]:
    return {p.pid for p in psutil.Process(_fork_server().process.pid).children()}


def _line_with(stream: IO[str], text: str) -> str:
    """The first line of `stream` that holds `text` (fails at its end)."""
    for line in stream:
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r}")


def test_a_command_answers_as_in_a_fresh_interpreter(tmp_path: Path) -> None:
    missing = [
        subprocess.run([*prefix, "inspect", "missing.keras"], capture_output=True, text=True, check=False)
        for prefix in (cli_command(), COLD)
    ]
    warm, cold = missing
    assert (warm.returncode, warm.stdout, warm.stderr) == (cold.returncode, cold.stdout, cold.stderr)
    assert warm.returncode == EXIT_USAGE
    # A relative path is read in the caller's cwd: this file exists there (and holds nothing).
    (tmp_path / "empty.keras").write_bytes(b"")
    empty = subprocess.run(
        cli_command("inspect", "empty.keras"), cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert (empty.returncode, empty.stdout) == (EXIT_USAGE, "")
    assert empty.stderr == (
        "layertap inspect: loading empty.keras (0.0 MB)\n"
        "layertap inspect: error: empty.keras is not a valid .keras file (a .keras file is a zip archive "
        "holding config.json and the weights): no zip directory found (0 bytes); it may be truncated or "
        "corrupted; save the model again with model.save(...)\n"
    )


def test_help_goes_to_stdout_with_exit_0() -> None:
    warm = subprocess.run(cli_command("serve", "--help"), capture_output=True, text=True, check=False)
    cold = subprocess.run([*COLD, "serve", "--help"], capture_output=True, text=True, check=False)
    assert (warm.returncode, warm.stdout, warm.stderr) == (EXIT_OK, cold.stdout, "")
    assert warm.stdout.startswith("usage: layertap serve")


def test_signals_reach_the_forked_command_and_its_death_is_reported(tmp_path: Path) -> None:
    before = _children()
    argv = cli_command("serve", "--port=0", "--model_name=m", f"--model_base_path={tmp_path / 'none'}")
    stopped = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    assert stopped.stderr is not None
    _line_with(stopped.stderr, "No versions of servable m found")
    [command] = _forked(before)  # forked, not started afresh
    assert command.cmdline() == psutil.Process(_fork_server().process.pid).cmdline()
    stopped.send_signal(signal.SIGTERM)  # the server's own handler: a clean stop
    _, err = stopped.communicate(timeout=60)
    assert stopped.returncode == 0
    assert "Received SIGTERM while loading models: stopping" in err

    killed = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    assert killed.stderr is not None
    _line_with(killed.stderr, "No versions of servable m found")
    killed.send_signal(signal.SIGUSR1)  # no handler: the command dies of it, and so does the launcher
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGUSR1


def test_a_killed_launcher_takes_its_command_along(tmp_path: Path) -> None:
    before = _children()
    argv = cli_command("serve", "--port=0", "--model_name=m", f"--model_base_path={tmp_path / 'none'}")
    launcher = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    assert launcher.stderr is not None
    _line_with(launcher.stderr, "No versions of servable m found")
    [command] = _forked(before)
    launcher.kill()
    launcher.wait(timeout=30)
    deadline = time.monotonic() + 30
    while command.is_running() and command.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not command.is_running() or command.status() == psutil.STATUS_ZOMBIE


def test_what_would_import_differently_runs_in_a_fresh_interpreter() -> None:
    suite = effective_environment(dict(os.environ))
    assert warm_enough(["export", "m.keras", "--layer", "d"], suite)
    assert warm_enough(["serve", "--port=0"], {**suite, "STORAGE_EMULATOR_HOST": "http://127.0.0.1:1"})
    assert not warm_enough(["-v", "export", "m.keras"], suite)  # TensorFlow's import logs are shown
    assert not warm_enough(["export", "m.keras", "--verbose"], suite)
    assert not warm_enough(["config", "check"], suite)  # no TensorFlow: it must not be in the process
    assert not warm_enough(["export", "m.keras"], {**suite, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert not warm_enough(["export", "m.keras"], {**suite, "PYTHONPATH": "/elsewhere"})
    assert not warm_enough(["serve"], {**suite, "CUDA_VISIBLE_DEVICES": ""})


def test_a_cold_command_is_the_launcher_itself() -> None:
    before = _children()
    done = subprocess.run(
        cli_command("config", "--help"), capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == EXIT_OK and done.stdout.startswith("usage: layertap config")
    assert _forked(before) == []
