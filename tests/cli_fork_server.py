"""The warm side of tests/cli_process.py: one process that imported TensorFlow once forks a `layertap`
command per request.

    python tests/cli_fork_server.py LISTENING_FD

LISTENING_FD is a listening Unix socket made by the test process (so it exists before this starts). Each
connection sends one request (see `tests.cli_process.send_request`: argv, cwd, environment, and the caller's
stdin, stdout and stderr as file descriptors); this process answers `{"cold": true}` when a fresh interpreter
would start differently from it (see `warm_enough`), else forks a child that runs `layertap.cli.main(argv)`
on those descriptors, answers `{"pid": PID}` and, once the child has died, `{"status": CODE}` (CODE as
`subprocess` reports it: -N for signal N). A connection closed before then (the caller was SIGKILLed) gets its
child SIGKILLed. End of stdin (the test process is gone) stops everything.

Fork safety: the fork happens before TensorFlow has run any op or made its runtime (importing TensorFlow and
listing devices start none of its thread pools), as in tests/reliability/reliability_export_child.py; the
process is single-threaded in Python and the native threads present at import (OpenBLAS, jemalloc) register
their own fork handlers.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import io
import json
import os
import select
import signal
import socket
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

#: Environment variables read while TensorFlow and Keras are imported (or by the interpreter at start):
#: a request whose values differ from this process's runs in a fresh interpreter instead.
IMPORT_TIME_PREFIXES = (
    "TF_", "KERAS_", "XLA_", "JAX_", "CUDA", "NVIDIA", "OMP_", "MKL", "ONEDNN", "TENSORFLOW", "PYTHON",
    "LD_", "GRPC_", "ABSL", "HOME", "TMPDIR",
)  # fmt: skip
#: The commands that import TensorFlow (`EXTRAS = ("tf",)`); the others start in a fraction of a second.
WARM_COMMANDS = ("export", "inspect", "serve", "validate")
_VERBOSE = ("-v", "--verbose")


def effective_environment(env: dict[str, str]) -> dict[str, str]:
    """The environment a `layertap` TensorFlow command imports TensorFlow under (layertap.cli sets these)."""
    effective = {**env, "KERAS_BACKEND": "tensorflow"}
    effective.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return effective


def _import_time(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in effective_environment(env).items() if k.startswith(IMPORT_TIME_PREFIXES)}


def warm_enough(argv: list[str], env: dict[str, str]) -> bool:
    """Whether a child forked from here runs `layertap ARGV` exactly as a fresh interpreter would: a
    TensorFlow command, not verbose (-v shows TensorFlow's import logs, which happened here once), under the
    same import-time environment as this process."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return (
        command in WARM_COMMANDS
        and not any(flag in argv for flag in _VERBOSE)
        and _import_time(env) == _import_time(dict(os.environ))
    )


def _import_tensorflow() -> bytes:
    """Import TensorFlow as the CLI does (quietly, through layertap.cli.tflogs); returns what that wrote to
    stderr after filtering, which every child writes again, as it would have in a fresh interpreter."""
    from layertap.cli.tflogs import quiet_tensorflow

    quiet_tensorflow(verbose=False)
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            importlib.import_module("tensorflow")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        return captured.read()


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    head, fds, _, _ = socket.recv_fds(conn, 8, 3)
    while len(head) < 8:
        more = conn.recv(8 - len(head))
        if not more:
            raise ConnectionError("request cut short")
        head += more
    size = int.from_bytes(head, "big")
    body = b""
    while len(body) < size:
        more = conn.recv(size - len(body))
        if not more:
            raise ConnectionError("request cut short")
        body += more
    return json.loads(body), fds


def _closed(conn: socket.socket) -> bool:
    """Whether the caller has gone (a caller sends nothing after its request)."""
    try:
        return not conn.recv(1)
    except OSError:
        return True


def _answer(conn: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(message).encode() + b"\n")


def _standard_streams() -> None:
    """sys.stdin/stdout/stderr on the new descriptors 0, 1, 2, buffered as a fresh interpreter would."""
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    buffering = 0 if unbuffered else -1
    # They live as long as the process, as the interpreter's own do: no context manager.
    sys.stdin = io.TextIOWrapper(open(0, "rb", closefd=False))  # noqa: SIM115
    out = open(1, "wb", closefd=False, buffering=buffering)  # noqa: SIM115
    sys.stdout = io.TextIOWrapper(out, line_buffering=os.isatty(1), write_through=unbuffered)
    err = open(2, "wb", closefd=False, buffering=buffering)  # noqa: SIM115
    sys.stderr = io.TextIOWrapper(err, errors="backslashreplace", line_buffering=True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def _run_child(request: dict[str, Any], fds: list[int], import_stderr: bytes) -> None:
    """In the forked child: become `python -m layertap.cli ARGV` started in the caller's cwd and
    environment."""
    code = 1
    try:
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        import layertap.cli

        sys.argv = [str(Path(layertap.cli.__file__).with_name("__main__.py")), *request["argv"]]
        sys.path[0] = str(Path.cwd())  # what `python -m` puts first
        importlib.invalidate_caches()  # files the test wrote since this process started
        _standard_streams()
        if import_stderr:
            sys.stderr.buffer.write(import_stderr)
            sys.stderr.flush()
        try:
            code = layertap.cli.main(request["argv"])
        except SystemExit as exit_:
            if exit_.code is None or isinstance(exit_.code, int):
                code = exit_.code or 0
            else:
                print(exit_.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:
            traceback.print_exc()
            atexit._run_exitfuncs()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def serve(listener: socket.socket) -> None:
    import_stderr = _import_tensorflow()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    callers: dict[int, socket.socket] = {}  # child pid -> the caller's connection
    while True:
        waiting = [listener.fileno(), 0, wake_read, *(conn.fileno() for conn in callers.values())]
        ready, _, _ = select.select(waiting, [], [])
        if 0 in ready and not os.read(0, 4096):
            break
        if wake_read in ready:
            os.read(wake_read, 4096)
        for pid, conn in list(callers.items()):
            if conn.fileno() in ready and _closed(conn):  # the caller died: so does its command
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        while callers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = callers.pop(pid, None)
            if conn is not None:
                _answer(conn, {"status": os.waitstatus_to_exitcode(status)})
                conn.close()
        if listener.fileno() in ready:
            conn, _ = listener.accept()
            try:
                request, fds = _receive(conn)
            except (ConnectionError, OSError, ValueError):
                conn.close()
                continue
            if len(fds) != 3 or not warm_enough(request["argv"], request["env"]):
                for fd in fds:
                    os.close(fd)
                _answer(conn, {"cold": True})
                conn.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                for fd in (listener.fileno(), wake_read, wake_write, *(c.fileno() for c in callers.values())):
                    os.close(fd)
                conn.close()
                _run_child(request, fds, import_stderr)
            for fd in fds:
                os.close(fd)
            callers[pid] = conn
            _answer(conn, {"pid": pid})
    for pid in callers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
