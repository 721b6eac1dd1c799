"""Running `layertap` as a child process in the tests, without paying TensorFlow's import every time.

`cli_command("export", ...)` is the argv of a child that behaves as `python -m layertap.cli export ...`: same
stdin/stdout/stderr, cwd, environment, exit code (or death by signal); SIGTERM, SIGINT, SIGHUP, SIGQUIT and
SIGUSR1/2 sent to it reach the command. A TensorFlow command (export, inspect, serve, validate; not `-v`) is
forked from one process that imported TensorFlow once (tests/cli_fork_server.py, started on first use),
which saves the ~12 CPU seconds of that import per call. Anything else (another command, `-v`, an
environment that changes how TensorFlow or Keras import, no fork server) is executed by the same child in a
fresh interpreter. Either way the code that runs is `layertap.cli.main`. `layertap_on_path(folder)` writes a
`layertap` executable that does the same, for shell scripts (the README's bash blocks).

Not for tests whose point is a fresh process: arguments checked before TensorFlow is imported, import time,
TensorFlow's start-up logs, a SIGKILL or a process-group signal sent to the command (the process a test
holds is this launcher; the fork server kills the command when the launcher dies, but not at that instant),
or what `psutil` says about the command's process.

Run as a script, this module is that launcher: `python tests/cli_process.py SOCKET ARGS...`. It imports
nothing but the standard library, so it starts in a few hundredths of a second.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import sys
from pathlib import Path

__all__ = ["cli_command", "layertap_on_path", "stop_fork_server"]

_HERE = Path(__file__).resolve().parent
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
#: The suite's environment when this module was imported (conftest.py's settings included), which the fork
#: server imports TensorFlow under: not whatever a test that happens to start it has patched.
_SUITE_ENVIRONMENT = dict(os.environ)


def send_request(conn: socket.socket, args: list[str]) -> None:
    """argv, cwd and environment, with this process's stdin, stdout and stderr attached."""
    body = json.dumps({"argv": args, "cwd": str(Path.cwd()), "env": dict(os.environ)}).encode()
    socket.send_fds(conn, [len(body).to_bytes(8, "big")], [0, 1, 2])
    conn.sendall(body)


def launch(path: str, args: list[str]) -> None:
    """The launcher: run `layertap ARGS` through the fork server at `path`, and exit as the command did."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    answers = conn.makefile("r")
    try:
        conn.connect(path)
        send_request(conn, args)
        first = json.loads(answers.readline() or '{"cold": true}')
    except OSError:
        first = {"cold": True}
    if first.get("cold"):
        conn.close()
        os.execv(sys.executable, [sys.executable, "-m", "layertap.cli", *args])
    pid = int(first["pid"])

    def forward(received: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, received)

    for number in _FORWARDED:
        signal.signal(number, forward)
    line = answers.readline()
    if not line:  # the fork server died under the command
        sys.exit(1)
    code = int(json.loads(line)["status"])
    if code < 0:  # die of the same signal, so that the caller sees the same return code
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


class _ForkServer:
    """tests/cli_fork_server.py in a child process; it stops at the end of its stdin, so also when this
    process dies."""

    def __init__(self) -> None:
        import subprocess
        import tempfile

        from tests.cli_fork_server import effective_environment

        self._folder = Path(tempfile.mkdtemp(prefix="layertap-cli-"))
        self.path = str(self._folder / "socket")
        # Bound and listening before the server starts: a launcher may connect at once, and waits for its
        # answer while the server imports TensorFlow.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(self.path)
            listener.listen(64)
            self.process = subprocess.Popen(
                [sys.executable, str(_HERE / "cli_fork_server.py"), str(listener.fileno())],
                stdin=subprocess.PIPE,
                pass_fds=[listener.fileno()],
                env=effective_environment(_SUITE_ENVIRONMENT),
            )

    def stop(self) -> None:
        import shutil

        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)
        shutil.rmtree(self._folder, ignore_errors=True)


@functools.cache
def _fork_server() -> _ForkServer:
    import atexit

    server = _ForkServer()
    atexit.register(stop_fork_server)
    return server


def stop_fork_server() -> None:
    """Stop the fork server if it runs (the next `cli_command` starts another)."""
    if _fork_server.cache_info().currsize:
        _fork_server().stop()
        _fork_server.cache_clear()


def cli_command(*args: str) -> list[str]:
    """The argv of a child process that runs `layertap ARGS` (see the module docstring)."""
    return [sys.executable, str(Path(__file__).resolve()), _fork_server().path, *args]


def layertap_on_path(folder: Path) -> Path:
    """Write `folder/layertap`, an executable that runs `layertap "$@"` as `cli_command` does; returns the
    folder, to put first on PATH."""
    script = folder / "layertap"
    launcher = " ".join(f'"{part}"' for part in cli_command())
    script.write_text(f'#!/bin/sh\nexec {launcher} "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return folder


if __name__ == "__main__":
    launch(sys.argv[1], sys.argv[2:])
