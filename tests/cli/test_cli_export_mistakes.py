"""Every class of mistake on `layertap export`/`inspect`: one line, its exit code, nothing left behind.

The broken inputs are made here from a good model file: truncated, bit-flipped, random bytes,
truncated weights inside a valid archive, a directory. Each test also snapshots the model repository
before and after, and requires it unchanged.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from layertap.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A base path that already holds version 1 of another model, which must survive every mistake."""
    base = tmp_path / "models"
    (base / "other" / "1").mkdir(parents=True)
    (base / "other" / "1" / "saved_model.pb").write_bytes(b"keep")
    return base


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root with the hash of its content (directories as 'dir')."""
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
    }


def one_error_line(err: str, command: str = "export") -> str:
    """The single error line a mistake must produce (progress lines may precede it)."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if re.match(rf"layertap {command}: (error|failed): ", line)]
    assert len(errors) == 1, err
    assert err.strip().splitlines()[-1] == errors[0], err
    assert "\x1b" not in err
    return errors[0]


def export_argv(model: Path | str, base: Path, *extra: str) -> list[str]:
    return ["export", str(model), "--layer", "conv_1", "--base-path", str(base), "--name", "m", *extra]


def broken_keras_files(good: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (broken file, text its error line must contain)."""
    data = good.read_bytes()
    truncated = folder / "truncated.keras"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = folder / "flipped.keras"
    corrupted = bytearray(data)
    with zipfile.ZipFile(good) as archive:
        weights = archive.getinfo("model.weights.h5")
    # Flip one bit in the middle of the weights member's stored bytes.
    corrupted[weights.header_offset + 30 + len(weights.filename) + weights.compress_size // 2] ^= 0x10
    flipped.write_bytes(bytes(corrupted))
    weightless = folder / "truncated_weights.keras"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(weightless, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            target.writestr(item, content[: len(content) // 3] if item.filename.endswith(".h5") else content)
    random_h5 = folder / "random.h5"
    random_h5.write_bytes(os.urandom(4096))
    directory = folder / "model.keras"
    directory.mkdir()
    not_zip = folder / "text.keras"
    not_zip.write_text("this is not a model\n")
    return {
        "truncated": (truncated, "is not a valid .keras file"),
        "bit-flipped": (flipped, "fails its checksum"),
        "truncated weights": (weightless, "could not be loaded as a Keras model"),
        "random h5": (random_h5, "is not a readable HDF5 model file"),
        "directory": (directory, "is a directory, not a model file"),
        "text": (not_zip, "no zip directory found"),
        "missing": (folder / "missing.keras", "does not exist"),
    }


@pytest.fixture(scope="module")
def broken(
    trained_tutorial_cnn_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, str]]:
    return broken_keras_files(trained_tutorial_cnn_file, tmp_path_factory.mktemp("broken"))


@pytest.mark.parametrize(
    "kind", ["truncated", "bit-flipped", "truncated weights", "random h5", "directory", "text", "missing"]
)
def test_broken_model_files_are_one_line_exit_2_repository_unchanged(
    kind: str, broken: dict[str, tuple[Path, str]], repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, expected = broken[kind]
    before = snapshot(repository)
    assert main(export_argv(path, repository)) == EXIT_USAGE
    assert expected in one_error_line(capsys.readouterr().err)
    assert snapshot(repository) == before
    assert main(["inspect", str(path)]) == EXIT_USAGE
    assert expected in one_error_line(capsys.readouterr().err, "inspect")


def test_legacy_h5_truncated(
    trained_tutorial_cnn: Any, tmp_path: Path, repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "cnn.h5"
    trained_tutorial_cnn.save(good)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    before = snapshot(repository)
    assert main(export_argv(truncated, repository)) == EXIT_USAGE
    assert "is not a readable HDF5 model file" in one_error_line(capsys.readouterr().err)
    assert snapshot(repository) == before


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--version", "-3"], "argument --version: invalid value '-3': expected an integer >= 0"),
        (["--version", "three"], "argument --version: invalid value 'three'"),
        (["--seed"], "argument --seed: expected one argument"),
    ],
)
def test_bad_arguments_are_refused_before_loading(
    extra: list[str],
    expected: str,
    trained_tutorial_cnn_file: Path,
    repository: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = snapshot(repository)
    with pytest.raises(SystemExit) as caught:
        main(export_argv(trained_tutorial_cnn_file, repository, *extra))
    assert caught.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert expected in one_error_line(err)
    assert "loading the model" not in err
    assert snapshot(repository) == before


def test_repository_mistakes_are_refused_before_loading(
    trained_tutorial_cnn_file: Path, repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(repository)
    argv = ["export", str(trained_tutorial_cnn_file), "--layer", "conv_1", "--base-path", str(repository)]
    assert main([*argv, "--name", "other", "--version", "1"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "version 1 of 'other' already exists" in one_error_line(err)
    assert "loading the model" not in err
    assert main([*argv, "--name", "bad name"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "is not a plain directory name" in one_error_line(err)
    assert "loading the model" not in err
    (repository / "afile").write_text("x")
    before = snapshot(repository)
    assert main([*argv, "--name", "afile"]) == EXIT_FAILURE
    assert "exists but is not a directory" in one_error_line(capsys.readouterr().err)
    assert snapshot(repository) == before


@pytest.mark.parametrize("existing", [False, True])
def test_failed_export_leaves_the_repository_exactly_as_it_was(
    existing: bool,
    trained_tutorial_cnn_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: Any,
) -> None:
    # A failure after the version was reserved (here: a layer TensorFlow cannot trace), into a
    # base path that does not exist yet, or into a model folder that already has a version.
    from layertap.errors import ExportError
    from layertap.exporter import stages

    def fail(*args: Any, **kwargs: Any) -> None:
        raise ExportError("TensorFlow could not trace or save the model: injected failure")

    monkeypatch.setattr(stages, "write_savedmodel", fail)
    base = tmp_path / "new" / "models"
    if existing:
        (base / "m" / "3").mkdir(parents=True)
        (base / "m" / "3" / "saved_model.pb").write_bytes(b"v3")
    before = snapshot(tmp_path)
    assert main(export_argv(trained_tutorial_cnn_file, base)) == EXIT_FAILURE
    assert "injected failure" in one_error_line(capsys.readouterr().err)
    after = snapshot(tmp_path)
    if existing:
        after.pop("new/models/m/.layertap.lock", None)  # the lock of an existing folder may stay
    assert after == before
    assert base.exists() == existing


def test_tensorflow_logs_are_silent_by_default_and_shown_with_verbose(
    trained_tutorial_cnn_file: Path,
) -> None:
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "layertap.cli", "inspect", str(trained_tutorial_cnn_file)]

    # Both at once: each spends seconds importing TensorFlow, and there are two cores.
    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)

    with ThreadPoolExecutor(2) as pool:
        quiet, loud = pool.map(run, [command, [*command[:3], "-v", *command[3:]]])
    assert quiet.returncode == EXIT_OK, quiet.stderr
    for noise in ("absl::InitializeLog", "oneDNN", "cuda", "cuInit", "Warning", "deprecat"):
        assert noise.lower() not in quiet.stderr.lower(), quiet.stderr
    assert loud.returncode == EXIT_OK, loud.stderr
    assert "oneDNN" in loud.stderr or "absl" in loud.stderr
    assert quiet.stdout == loud.stdout
