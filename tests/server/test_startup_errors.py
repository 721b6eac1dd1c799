"""Start-up mistakes said plainly and in TF Serving's words, before any model is loaded."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from layertap.cli import main
from layertap.errors import ConfigError
from layertap.server import ServerOptions, create_server
from layertap.server.management.lifecycle import Lifecycle, single_model_config
from layertap.server.management.registry import Registry


def test_malformed_model_config_is_refused_as_tf_serving_words_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "models.config"
    config.write_text('model_config_list {\n  config {\n    name: "m"\n    base_pat: "/models/m"\n  }\n}\n')
    with caplog.at_level(logging.INFO):
        code = main(["serve", "--port=0", f"--model_config_file={config}"])
    assert code != 0
    assert (
        "Error parsing text-format tensorflow.serving.ModelServerConfig: 4:5: "
        'Message type "tensorflow.serving.ModelConfig" has no field named "base_pat".'
    ) in caplog.messages
    failed = f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{config}'"
    assert failed in capsys.readouterr().err
    assert not [m for m in caplog.messages if m.startswith("Loading servable")]


def test_a_port_in_use_is_refused_before_any_model_loads(
    make_repo: Callable[..., Path], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    base = make_repo("m", {1: "1"})
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with caplog.at_level(logging.INFO):
            code = main(["serve", f"--port={port}", "--model_name=m", f"--model_base_path={base}"])
            with pytest.raises(ConfigError, match=rf"^--rest_api_port={port}: cannot listen on 127\.0\.0\.1"):
                create_server(
                    ServerOptions(port=0, rest_api_port=port, model_name="m", model_base_path=str(base))
                )
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"layertap serve: error: --port={port}: cannot listen on 127.0.0.1:{port}: already in use; stop what "
        "holds it or choose another port (no model was loaded)"
    ]
    assert not [m for m in caplog.messages if m.startswith("Loading servable")]


def test_a_missing_base_path_is_said_plainly_once_not_every_poll(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "modles" / "m"
    lifecycle = Lifecycle(ServerOptions(file_system_poll_wait_seconds=1), Registry(), loader=None)
    config = single_model_config("m", str(missing))
    with caplog.at_level(logging.WARNING, logger="layertap.server.management.lifecycle"):
        lifecycle.reload(config, wait=False)
        for _ in range(5):  # five polls, as five seconds of the poller would make
            lifecycle.poll()
    said = [m for m in caplog.messages if m.startswith("No versions of servable m")]
    assert said == [
        f"No versions of servable m found under base path {missing}. Did you forget to name your leaf "
        f"directory as a number (eg. '/1/')? The base path {missing} does not exist."
    ]
    # Once the directory exists (still without versions) the message changes, so it is said again.
    missing.mkdir(parents=True)
    lifecycle.poll()
    assert [m for m in caplog.messages if m.startswith("No versions of servable m")][1:] == [
        f"No versions of servable m found under base path {missing}. Did you forget to name your leaf "
        "directory as a number (eg. '/1/')?"
    ]
    lifecycle.stop()
