"""The CLI's mistake handling on the client commands: one line, exit code, JSON error objects, pipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from layertap.cli import EXIT_FAILURE, EXIT_OK, EXIT_SERVING, EXIT_USAGE, main
from tests.fixtures.client_peer import MODEL, Peer

X = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)


def _one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"layertap {command}: "), err
    return lines[0]


def _predict(target: str, tmp_path: Path, *extra: str) -> list[str]:
    np.save(tmp_path / "x.npy", X)
    return ["predict", "--target", target, "--model", MODEL, *extra, str(tmp_path / "x.npy")]


def test_bad_argument_is_one_line_exit_2_and_a_json_object(
    peer_target: str, peer: Peer, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["layers", "--target", peer_target, "--model", MODEL, "--timeout", "soon"])
    assert caught.value.code == EXIT_USAGE
    captured = capsys.readouterr()
    line = _one_error_line(captured.err, "layers")
    assert "argument --timeout: invalid float value: 'soon'" in line
    assert "see 'layertap layers --help'" in line
    assert captured.out == ""
    with pytest.raises(SystemExit):
        main(["layers", "--target", peer_target, "--model", MODEL, "--timeout", "soon", "--json"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["exit_code"] == EXIT_USAGE
    assert error["meaning"] == "bad input or refused request"
    assert "invalid float value" in error["message"]


def test_json_failure_prints_an_error_object_with_the_exit_code_meaning(
    peer_target: str, peer: Peer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["layers", "--target", peer_target, "--model", "other", "--json"]) == EXIT_SERVING
    captured = capsys.readouterr()
    assert "Servable not found" in _one_error_line(captured.err, "layers")
    error = json.loads(captured.out)["error"]
    assert error == {
        "exit_code": EXIT_SERVING,
        "meaning": "the server refused the request or could not be reached",
        "type": error["type"],
        "message": error["message"],
    }
    assert error["type"] == "ModelNotFoundError"
    assert "Servable not found" in error["message"]


@pytest.mark.parametrize(
    "case",
    [
        ("missing/out.npz", "dense_1", "the folder"),
        ("out.txt", "dense_1", "unknown suffix '.txt'; accepted: .npz"),
        ("out", "dense_1", "unknown suffix '(none)'"),
        ("out.npy", "dense_1,scores", "a .npy file holds one array, but 2 layers"),
    ],
)
def test_output_path_is_checked_before_the_request(
    peer_target: str,
    peer: Peer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, str, str],
) -> None:
    output, layers, expected = case
    argv = _predict(peer_target, tmp_path, "--layer", layers, "-o", str(tmp_path / output))
    assert main(argv) == EXIT_USAGE
    assert expected in _one_error_line(capsys.readouterr().err, "predict")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # nothing written
    assert peer.count("Predict") == 0  # refused before asking the server


def test_output_file_is_written_exactly_as_named(
    peer_target: str, peer: Peer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(_predict(peer_target, tmp_path, "--layer", "dense_1", "-o", str(tmp_path / "d.npy"))) == EXIT_OK
    )
    assert "wrote " + str(tmp_path / "d.npy") in capsys.readouterr().err
    assert np.load(tmp_path / "d.npy").shape == (1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npy", "x.npy"]


def test_closed_stdout_ends_quietly(peer_target: str, peer: Peer) -> None:
    # The reader is gone before the command writes: what `layertap ... --json | head -c0` does.
    command = [
        sys.executable,
        "-m",
        "layertap.cli",
        "layers",
        "--target",
        peer_target,
        "--model",
        MODEL,
        "--json",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read().decode()
    process.wait(timeout=60)
    assert "BrokenPipeError" not in err and "Traceback" not in err, err
    assert process.returncode == 141
    assert err == ""


@pytest.mark.parametrize("command", ["export", "inspect", "serve"])
def test_client_only_install_names_the_extra(command: str, tmp_path: Path) -> None:
    # A client-only install: TensorFlow, Keras and h5py cannot be imported.
    code = (
        "import sys\n"
        "for name in ('tensorflow', 'keras', 'h5py'): sys.modules[name] = None\n"
        "from layertap.cli import main\n"
        f"sys.exit(main({[command, *_tf_command_args(command, tmp_path)]!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == EXIT_FAILURE, done.stderr
    line = _one_error_line(done.stderr, command)
    assert "is not installed; install it with: pip install 'layertap[tf]'" in line


def _tf_command_args(command: str, tmp_path: Path) -> list[str]:
    model = str(tmp_path / "m.keras")
    if command == "export":
        return [model, "--layer", "x", "--base-path", str(tmp_path), "--name", "m"]
    if command == "inspect":
        return [model]
    return ["--port=0", "--model_name=m", f"--model_base_path={tmp_path}"]


def test_unreadable_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    argv = ["predict", "--target", "127.0.0.1:1", "--model", "m", "--layer", "x"]
    assert main([*argv, str(tmp_path / "objects.npy")]) == EXIT_USAGE
    assert "cannot read input" in _one_error_line(capsys.readouterr().err, "predict")


def test_predict_accepts_a_group_name_that_layers_lists(
    peer_target: str, peer: Peer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["layers", "--target", peer_target, "--model", MODEL]) == EXIT_OK
    assert "group features: dense_1, dense_2" in capsys.readouterr().out
    assert main(_predict(peer_target, tmp_path, "--layer", "features", "--json")) == EXIT_OK
    assert sorted(json.loads(capsys.readouterr().out)) == ["dense_1", "dense_2"]
    assert peer.count("Predict") == 1  # the group's own signature answers both


def test_layers_table_columns_are_separated(
    peer_target: str, peer: Peer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["layers", "--target", peer_target, "--model", MODEL]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    header = lines[1]
    assert header.split() == ["LAYER", "SIGNATURE", "OUTPUT", "SPACE", "INPUTS"]
    start = header.index("INPUTS")
    for line in lines[2:]:
        if line.startswith("group "):
            continue
        assert line[start - 2 : start] == "  ", line  # OUTPUT and INPUTS never run together
