"""Reading version states from TF Serving's REST status endpoint."""

from __future__ import annotations

import socket

import pytest

from layertap.config.status import fetch_version_states
from layertap.errors import ModelNotFoundError, ServerUnavailableError, ServingError
from tests.fixtures.config_repos import RestStatusServer


def test_states_by_version(rest_status_server: RestStatusServer) -> None:
    with rest_status_server({"cnn": {1: "AVAILABLE", 2: "LOADING"}}) as url:
        assert fetch_version_states(url, "cnn") == {1: "AVAILABLE", 2: "LOADING"}
        assert fetch_version_states(url + "/", "cnn") == {1: "AVAILABLE", 2: "LOADING"}
        with pytest.raises(ModelNotFoundError, match="does not serve model 'nope'"):
            fetch_version_states(url, "nope")


def test_unreachable_and_bad_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ServerUnavailableError, match="cannot reach"):
        fetch_version_states(f"http://127.0.0.1:{port}", "cnn", timeout=2)
    with pytest.raises(ServingError, match="must start with http"):
        fetch_version_states("file:///etc", "cnn")
