"""Fixtures for the reliability tests: model base paths and in-process servers on loopback.

The export is the shared `untrained_cnn_version` (tests/fixtures/tutorial_cnn.py), built once per session and
copied into each test's own model base path, so tests that publish, break or remove versions never disturb
each other.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from layertap.server import ServerOptions, create_server
from layertap.server.app import LayertapServer


@pytest.fixture
def model_base(tmp_path: Path, untrained_cnn_version: Path) -> Callable[..., Path]:
    """model_base(versions=(1,)) copies the session export into <tmp>/cnn/<v> for each version."""

    def make(versions: tuple[int, ...] = (1,)) -> Path:
        base = tmp_path / "cnn"
        base.mkdir(exist_ok=True)
        for version in versions:
            shutil.copytree(untrained_cnn_version, base / str(version))
        return base

    return make


@pytest.fixture
def serve() -> Iterator[Callable[..., LayertapServer]]:
    """serve(**flags) runs create_server on 127.0.0.1, port 0; every server is stopped after the test."""
    running: list[LayertapServer] = []

    def start(**flags: Any) -> LayertapServer:
        settings: dict[str, Any] = {"port": 0, "max_num_load_retries": 0, "grpc_max_threads": 4}
        server, _ = create_server(ServerOptions(**{**settings, **flags}))
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop(grace=1.0)


@pytest.fixture
def channel_to() -> Iterator[Callable[..., grpc.Channel]]:
    """channel_to(server) opens an insecure channel to it, closed after the test."""
    channels: list[grpc.Channel] = []

    def open_channel(server: LayertapServer) -> grpc.Channel:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        channels.append(channel)
        return channel

    yield open_channel
    for channel in channels:
        channel.close()
