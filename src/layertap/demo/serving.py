"""The demo's serving half: config files, `layertap serve` in the background, layers over gRPC vs Keras.

After the export half has published a version under `demo_models/<model>`, this writes the production
`serving_config/models.config` (base path `/models/<model>`, the container layout) and a local
`demo_models/models.config` (the local absolute path), starts `layertap serve` as a background process
on a free loopback port, waits until the model is AVAILABLE, asks for every layer through
`layertap.client`, and prints shape and latency next to the same computation in-process with Keras.
The server process is stopped on the way out, also on errors and Ctrl-C.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from layertap.errors import ServerError

__all__ = ["compare_layers", "run_serving_half", "running_server", "write_serving_configs"]

#: The line `layertap serve` logs once it listens; --port=0 makes it pick a free port.
_LISTENING = re.compile(r"Running gRPC ModelServer at 127\.0\.0\.1:(\d+)")
STARTUP_TIMEOUT = 120.0


def write_serving_configs(
    model_name: str, local_base_path: Path, *, serving_config_dir: Path, local_config: Path
) -> tuple[Path, Path]:
    """Write the production models.config (container paths) and a local one (this machine's path).

    Returns:
        (production file, local file).
    """
    from layertap.config import demo_files, write_demo_files, write_model_server_config
    from layertap.config.models import latest_versions, set_model
    from layertap.proto import serving_pb2 as pb

    # The production files come from the config package's single source, so they match the committed ones.
    container_base_path = f"/models/{model_name}"
    written = write_demo_files(serving_config_dir, model_name, container_base_path)
    production = next(path for path in written if path.name == "models.config")
    if production.read_text() != demo_files(model_name, container_base_path)["models.config"]:
        raise ServerError(f"{production} does not read back as written")
    local = set_model(
        pb.ModelServerConfig(), model_name, str(local_base_path.resolve()), policy=latest_versions(1)
    )
    local_config.parent.mkdir(parents=True, exist_ok=True)
    write_model_server_config(local_config, local)
    return production, local_config


@contextmanager
def running_server(model_config: Path, *, log: Callable[[str], None] = print) -> Iterator[int]:
    """Run `layertap serve --port=0 --model_config_file=...` in the background; yields its port.

    The process gets SIGTERM (it drains and exits) when the block ends, and SIGKILL if it lingers.

    Raises:
        ServerError: the server exited or did not listen within STARTUP_TIMEOUT seconds.
    """
    command = [
        sys.executable,
        "-m",
        "layertap.cli",
        "serve",
        "--port=0",
        f"--model_config_file={model_config}",
        "--file_system_poll_wait_seconds=1",
    ]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment)
    lines: list[str] = []
    try:
        port = _wait_for_port(process, lines)
        log(f"layertap serve (pid {process.pid}) listening on 127.0.0.1:{port}")
        yield port
    finally:
        _stop(process)
        log(f"layertap serve stopped (exit code {process.returncode})")


def _wait_for_port(process: subprocess.Popen[str], lines: list[str]) -> int:
    assert process.stderr is not None
    found: list[int] = []

    def read(stream: IO[str]) -> None:
        # Keep draining stderr for the life of the process, so it never blocks on a full pipe.
        for line in stream:
            lines.append(line)
            match = _LISTENING.search(line)
            if match and not found:
                found.append(int(match.group(1)))

    threading.Thread(target=read, args=(process.stderr,), daemon=True).start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not found:
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "".join(lines[-15:])
            raise ServerError(f"layertap serve did not start (exit code {process.returncode}):\n{tail}")
        time.sleep(0.05)
    return found[0]


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def compare_layers(
    model: Any,
    model_name: str,
    port: int,
    layers: Sequence[str],
    images: np.ndarray,
    *,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Ask the server for each layer and compute the same with Keras; print both. Returns max |diff|."""
    import keras

    from layertap.client import LayerClient

    differences: dict[str, float] = {}
    with LayerClient(f"127.0.0.1:{port}", model_name, timeout=30.0) as client:
        status = client.wait_ready(timeout=60.0)
        log(
            f"model {model_name!r} is AVAILABLE (version {status[0].version}); "
            f"{len(images)} images per request"
        )
        client.predict(images[:1], list(layers))  # first call fetches the signatures and opens the channel
        log("  median of 3 calls each, after one untimed call")
        log(f"  {'layer':<10} {'shape':<22} {'layertap serve':>15} {'Keras predict':>15} {'max |diff|':>11}")
        for layer in layers:
            # What people do today: a sub-model per layer, asked in-process with Model.predict.
            sub_model = keras.Model(model.inputs, model.get_layer(layer).output)
            served, served_ms = _timed(functools.partial(client.predict_layer, images, layer))
            local, local_ms = _timed(functools.partial(sub_model.predict, images, verbose=0))
            differences[layer] = float(np.max(np.abs(served - local)))
            log(
                f"  {layer:<10} {served.shape!s:<22} {served_ms:>12.1f} ms {local_ms:>12.1f} ms"
                f" {differences[layer]:>11.1e}"
            )
    return differences


def _timed(call: Callable[[], np.ndarray], repeats: int = 3) -> tuple[np.ndarray, float]:
    """The result of `call` and its median latency in ms over `repeats` runs, after one untimed run."""
    result = call()  # first calls trace functions and pick kernels; neither side should pay for that here
    latencies = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        latencies.append((time.perf_counter() - started) * 1000)
    return result, float(np.median(latencies))


def run_serving_half(
    model: Any,
    model_name: str,
    base_path: Path,
    layers: Sequence[str],
    *,
    serving_config_dir: Path = Path("serving_config"),
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Config files, background server, layers over gRPC next to Keras; the server is stopped at the end."""
    from layertap.demo.tutorial_cnn import synthetic_digits

    production, local = write_serving_configs(
        model_name,
        base_path / model_name,
        serving_config_dir=serving_config_dir,
        local_config=base_path / "models.config",
    )
    log(f"wrote {production} (container base path /models/{model_name}) and {local} (this machine)")
    images, _ = synthetic_digits(32, seed=7)
    with running_server(local, log=log) as port:
        return compare_layers(model, model_name, port, layers, images, log=log)
