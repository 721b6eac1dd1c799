"""`layertap config ...` end to end through the real dispatcher: files written, output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layertap.cli import EXIT_FAILURE, EXIT_OK, EXIT_SERVING, EXIT_USAGE, main
from layertap.config import demo_files, models
from tests.fixtures.config_repos import RestStatusServer, VersionWriter
from tests.fixtures.graphedit import edit_graph, use_op

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_committed_serving_config_is_current() -> None:
    assert main(["config", "demo", "--out", str(REPO_ROOT / "serving_config"), "--check"]) == EXIT_OK
    for name, text in demo_files().items():
        assert (REPO_ROOT / "serving_config" / name).read_text() == text


def test_demo_check_detects_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "demo", "--out", str(tmp_path)]) == EXIT_OK
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "batching.config",
        "models.config",
        "monitoring.config",
    ]
    assert main(["config", "demo", "--out", str(tmp_path), "--check"]) == EXIT_OK
    (tmp_path / "batching.config").write_text("max_batch_size {\n  value: 8\n}\n")
    assert main(["config", "demo", "--out", str(tmp_path), "--check"]) == EXIT_FAILURE
    assert f"stale: {tmp_path / 'batching.config'}" in capsys.readouterr().err


def test_models_editing_and_label_move(
    tmp_path: Path,
    write_version: VersionWriter,
    rest_status_server: RestStatusServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "models.config"
    mount = ["--mount", f"{tmp_path / 'models'}:/models"]

    def models_cli(*args: str) -> int:
        return main(["config", "models", *args, "--config", str(config)])

    def label(*args: str) -> int:
        return models_cli("label", "cnn", "stable", *args, *mount)

    write_version("cnn", 1)
    write_version("cnn", 2)
    assert models_cli("set", "other", "--base-path", "/models/other") == EXIT_OK
    assert models_cli("set", "cnn", "--base-path", "/models/cnn", "--specific", "1") == EXIT_OK
    # Without --mount the container path is not on this machine: said so.
    assert models_cli("label", "cnn", "stable", "1") == EXIT_USAGE
    assert "pass --mount HOST:CONTAINER" in capsys.readouterr().err
    write_version("cnn", 4, drop=("variables",))
    assert label("4") == EXIT_USAGE
    assert "version 4 is incomplete (missing variables/" in capsys.readouterr().err
    assert label("1") == EXIT_OK
    # Straight to version 2: refused, with the two-step hint; the file is unchanged.
    before = config.read_text()
    assert label("2") == EXIT_USAGE
    assert "--step 1" in capsys.readouterr().err
    assert config.read_text() == before
    # Not on disk: refused.
    assert label("3", "--step", "1") == EXIT_USAGE
    assert "version 3 is not on disk (versions present: [1, 2])" in capsys.readouterr().err
    assert label("2", "--step", "1") == EXIT_OK
    entry = models.find_model(models.read_model_server_config(config), "cnn")
    assert (list(entry.model_version_policy.specific.versions), dict(entry.version_labels)) == (
        [1, 2],
        {"stable": 1},
    )
    # Step 2 waits for AVAILABLE when a server is named.
    with rest_status_server({"cnn": {1: "AVAILABLE", 2: "LOADING"}}) as url:
        assert label("2", "--step", "2", "--server", url) == EXIT_USAGE
        assert "version 2 of model 'cnn' is LOADING" in capsys.readouterr().err
    with rest_status_server({}) as url:
        assert label("2", "--step", "2", "--server", url) == EXIT_SERVING
    with rest_status_server({"cnn": {1: "AVAILABLE", 2: "AVAILABLE"}}) as url:
        assert label("2", "--step", "2", "--server", url, "--retire-unlabelled") == EXIT_OK
    entry = models.find_model(models.read_model_server_config(config), "cnn")
    assert (list(entry.model_version_policy.specific.versions), dict(entry.version_labels)) == (
        [2],
        {"stable": 2},
    )
    capsys.readouterr()
    assert models_cli("show", "--json") == EXIT_OK
    assert json.loads(capsys.readouterr().out) == [
        {"name": "other", "base_path": "/models/other", "policy": "latest 1", "labels": {}},
        {"name": "cnn", "base_path": "/models/cnn", "policy": "specific 2", "labels": {"stable": 2}},
    ]
    assert models_cli("unlabel", "cnn", "stable") == EXIT_OK
    assert models_cli("policy", "cnn", "--latest", "2") == EXIT_OK
    assert models_cli("remove", "other") == EXIT_OK
    assert config.read_text() == (
        'model_config_list {\n  config {\n    name: "cnn"\n    base_path: "/models/cnn"\n'
        '    model_platform: "tensorflow"\n    model_version_policy {\n      latest {\n'
        "        num_versions: 2\n      }\n    }\n  }\n}\n"
    )
    capsys.readouterr()
    assert models_cli("remove", "cnn", "--dry-run") == EXIT_OK
    assert capsys.readouterr().out == "model_config_list {\n}\n"


def test_parse_error_exit_code_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "models.config"
    config.write_text('model_config_list {\n  config {\n    nme: "x"\n  }\n}\n')
    assert main(["config", "models", "show", "--config", str(config)]) == EXIT_USAGE
    assert f"{config}:3: " in capsys.readouterr().err


def test_batching_and_monitoring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "batching.config"
    args = ["config", "batching", "--gpu-defaults", "--cores", "8", "--max-batch-size", "128"]
    assert main([*args, "--allowed-batch-sizes", "32", "64", "128", "--out", str(out)]) == EXIT_OK
    assert "allowed_batch_sizes: 128\n" in out.read_text()
    assert "num_batch_threads {\n  value: 8\n}" in out.read_text()
    assert main([*args, "--out", str(out)]) == EXIT_USAGE  # 128 with allowed sizes ending at 64
    assert "must equal max_batch_size (128)" in capsys.readouterr().err
    assert main(["config", "batching", "--check", str(REPO_ROOT / "serving_config" / "batching.config")]) == 0
    assert (
        main(
            ["config", "batching", "--from", str(out), "--enable-large-batch-splitting", "true", "--out", "-"]
        )
        == EXIT_USAGE
    )
    capsys.readouterr()
    assert main(["config", "monitoring", "--path", "/metrics", "--out", "-"]) == EXIT_OK
    assert capsys.readouterr().out == 'prometheus_config {\n  enable: true\n  path: "/metrics"\n}\n'


def test_check_command(
    tmp_path: Path, write_version: VersionWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    write_version("tutorial_cnn", 3)
    serving_config = REPO_ROOT / "serving_config"
    base = [
        "config", "check",
        "--config", str(serving_config / "models.config"),
        "--batching", str(serving_config / "batching.config"),
        "--monitoring", str(serving_config / "monitoring.config"),
        "--mount", f"{tmp_path / 'models'}:/models",
    ]  # fmt: skip
    assert main([*base, "--signature", "conv_2"]) == EXIT_OK
    assert "tutorial_cnn: serves versions [3]" in capsys.readouterr().out
    assert main([*base, "--signature", "tutorial_cnn:dense_1", "--json"]) == EXIT_USAGE
    assert json.loads(capsys.readouterr().out) == {
        "ok": False,
        "served": {"tutorial_cnn": [3]},
        "findings": [
            {
                "level": "error",
                "model": "tutorial_cnn",
                "message": "version 3 has no signature dense_1; it has: conv_2, pool_2, serving_default",
            }
        ],
    }
    # The served version's graph is checked against the server release's op registry.
    assert main([*base, "--server", "2.19.0", "--strict"]) == EXIT_OK
    assert "ok, 0 error(s), 0 warning(s)" in capsys.readouterr().err
    edit_graph(tmp_path / "models" / "tutorial_cnn" / "3", use_op("DecodeWebP"))
    assert main([*base, "--server", "2.19.0"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Op type not registered 'DecodeWebP' in TensorFlow 2.19.0, the server's" in err
    assert "FAILED, 1 error(s), 0 warning(s)" in err
    assert main([*base, "--image-tensorflow", "2.21.0"]) == EXIT_OK  # the former flag names the release
    capsys.readouterr()
    assert main([*base, "--server", "2.15.0"]) == EXIT_USAGE
    assert "unknown TF Serving release '2.15.0'" in capsys.readouterr().err
    assert main(["config", "check", "--config", str(serving_config / "models.config")]) == EXIT_USAGE
