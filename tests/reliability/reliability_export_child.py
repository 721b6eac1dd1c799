"""Exporters for the SIGKILL test, forked from one process that has imported TensorFlow once.

Usage: python reliability_export_child.py MODEL.keras BASE_PATH
Imports layertap's exporter (TensorFlow, Keras) and prints `ready` on stdout. Then, for each line read on
stdin, forks an exporter and prints `started PID` on stdout; the exporter loads the model and exports it in a
loop until killed, printing `PID message` on stderr for each progress line, so the parent can kill it at a
chosen moment; when it has died, this process prints `exited PID STATUS` (STATUS as `subprocess` reports a
return code: -9 for SIGKILL) and reads the next line. It exits at the end of stdin.

Why a fork server: a fresh interpreter spends seconds importing TensorFlow and Keras before it exports, 22
times. The fork happens before TensorFlow has run any op (nothing here loads a model or builds a graph), so
each exporter starts TensorFlow's runtime itself, as a fresh process would.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _export_until_killed(model_path: str, base_path: str, server: int) -> None:
    from layertap.exporter import export
    from layertap.exporter.loading import load_model

    def progress(message: str) -> None:
        if os.getppid() != server:  # the fork server died: stop instead of exporting forever
            os._exit(1)
        print(f"{os.getpid()} {message}", file=sys.stderr, flush=True)

    model = load_model(model_path)
    progress("ready")
    while True:
        export(model, ["conv_1", "pool_1", "flatten"], base_path=base_path, name="cnn", progress=progress)


def main() -> None:
    # Imported before the fork, once (layertap's exporter imports them lazily). Importing runs no op:
    # TensorFlow has not created its runtime (the eager context, its thread pools) when exporters are forked.
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    model_path, base_path = sys.argv[1:3]
    print("ready", flush=True)
    for _ in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                _export_until_killed(model_path, base_path, os.getppid())
            finally:
                os._exit(1)
        print(f"started {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(f"exited {pid} {code}", flush=True)


if __name__ == "__main__":
    main()
