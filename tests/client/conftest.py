"""Fixtures of the client tests: the toy SavedModel, the official-stub peer serving it, certificates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.client_peer import (
    Certificates,
    Peer,
    PeerSettings,
    build_saved_model,
    make_certificates,
    start_server,
)


@pytest.fixture(scope="session")
def saved_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_saved_model(tmp_path_factory.mktemp("toy") / "1")


@pytest.fixture(scope="session")
def _peer_server(saved_model_dir: Path) -> Iterator[tuple[Peer, int]]:
    peer = Peer(saved_model_dir)
    server, port = start_server(peer)
    yield peer, port
    server.stop(None)


@pytest.fixture
def peer(_peer_server: tuple[Peer, int]) -> Peer:
    """The running peer, with default settings for each test."""
    served, _ = _peer_server
    served.settings = PeerSettings()
    return served


@pytest.fixture
def target(_peer_server: tuple[Peer, int], peer: Peer) -> str:
    return f"127.0.0.1:{_peer_server[1]}"


@pytest.fixture(scope="session")
def certificates() -> Certificates:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made here."""
    return make_certificates()
