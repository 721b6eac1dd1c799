"""Run `layertap serve` as its own process for a benchmark, the way production runs a server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from layertap.client import LayerClient
from layertap.config import format_model_server_config, latest_versions, set_model
from layertap.proto import serving_pb2 as pb


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(models: Mapping[str, Path], *, extra_flags: tuple[str, ...] = ()) -> Iterator[str]:
    """Serve `models` (name -> base path) from one `layertap serve` process; yields its target.

    The server is stopped with SIGTERM (it drains) and killed if it does not exit.
    """
    port = free_port()
    config = pb.ModelServerConfig()
    for name, base_path in models.items():
        config = set_model(config, name, str(base_path), policy=latest_versions(1))
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "models.config"
        config_path.write_text(format_model_server_config(config))
        log = (Path(tmp) / "server.log").open("w")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "layertap.cli",
                "serve",
                f"--port={port}",
                f"--model_config_file={config_path}",
                *extra_flags,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        )
        target = f"127.0.0.1:{port}"
        try:
            for name in models:
                with LayerClient(target, name) as client:
                    client.wait_ready(timeout=300)
            yield target
        except BaseException:
            log.flush()
            sys.stderr.write(Path(log.name).read_text()[-4000:])
            raise
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


@contextlib.contextmanager
def echo_server() -> Iterator[Callable[[int, int], Callable[[], bytes]]]:
    """A gRPC server on loopback that answers any request with N zero bytes: the transport floor.

    Yields `make_call(request_bytes, reply_bytes)`, a factory of calls moving exactly those sizes
    through gRPC Python, so a benchmark can show how much of a served call is data movement alone.
    """
    from concurrent import futures

    import grpc

    unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    replies: dict[int, bytes] = {}

    def answer(request: bytes, context: object) -> bytes:
        size = int.from_bytes(request[:8], "little")
        return replies.setdefault(size, bytes(size))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=unlimited)
    handler = grpc.unary_unary_rpc_method_handler(answer)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=unlimited)
    echo = channel.unary_unary("/bench.Echo/Echo")

    def make_call(request_bytes: int, reply_bytes: int) -> Callable[[], bytes]:
        request = reply_bytes.to_bytes(8, "little") + bytes(max(0, request_bytes - 8))
        return lambda: echo(request)

    try:
        yield make_call
    finally:
        channel.close()
        server.stop(grace=None)
