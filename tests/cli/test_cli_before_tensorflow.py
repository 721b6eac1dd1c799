"""Every command checks its arguments and paths before TensorFlow is imported, and a client-only
install (no `tf` extra) gets the install hint, never an internal error.

Both run the real `layertap` entry point in a fresh interpreter: importing TensorFlow costs 10-30 s and
~0.9 GB, so a mistake reported after it is the slow refusal this guards against.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from layertap.cli import EXIT_FAILURE, EXIT_OK, EXIT_SERVING, EXIT_USAGE

REPO_ROOT = Path(__file__).resolve().parents[2]

# Installed, but importing it raises: `find_spec` still finds TensorFlow (the extra looks installed), so
# only an actual import is caught, whoever does it.
_BLOCK_IMPORT = """
import importlib.abc, importlib.machinery, json, sys

class Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise RuntimeError(f"{module.__name__} WAS IMPORTED")

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            return importlib.machinery.ModuleSpec(name, Refuse())
        return None

sys.meta_path.insert(0, Block())
"""

# A client-only install: every module of every extra is missing (None in sys.modules: ImportError).
_NO_EXTRAS = """
import json, sys
from layertap.cli.framework import EXTRA_MODULES
for modules in EXTRA_MODULES.values():
    for module in modules:
        sys.modules[module] = None
"""

_RUN_ALL = """
import contextlib, io
from layertap.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    results.append([code, err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""])
print(json.dumps(results))
"""


def run_commands(prelude: str, commands: list[list[str]], cwd: Path) -> list[tuple[int, str]]:
    """Each command's exit code and last stderr line, all in one fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", prelude + _RUN_ALL, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    return [(code, line) for code, line in json.loads(done.stdout)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a model file that exists (its content never read past the checks) and an empty folder."""
    root = tmp_path_factory.mktemp("cli_checks")
    (root / "empty").mkdir()
    (root / "version").mkdir()
    (root / "version" / "saved_model.pb").write_bytes(b"")  # passes compare's checks, never read
    (root / "notes.txt").write_text("not a model\n")
    (root / "weights.h5").write_bytes(b"not HDF5 at all")
    return root


def test_mistakes_are_reported_without_importing_tensorflow(workdir: Path) -> None:
    export = ["--layer", "dense", "--base-path", str(workdir / "repo"), "--name", "m"]
    cases = [
        (["export", "missing.keras", *export], "model file 'missing.keras' does not exist"),
        (["export", "notes.txt", *export], "has suffix '.txt'; accepted: .keras, .h5, .hdf5"),
        (["export", "weights.h5", *export], "weights.h5 is not a readable HDF5 model file"),
        (["export", "missing.h5", *export, "--server", "9.9.9"], "unknown TF Serving release '9.9.9'"),
        (["export", "missing.h5", "--layer", "d", "--base-path", "x", "--name", "a b"], "plain directory"),
        (["inspect", "missing.h5"], "model file 'missing.h5' does not exist"),
        (["inspect", "empty"], "model path 'empty' is a directory"),
        (["validate", "missing/1"], "version directory 'missing/1' does not exist"),
        (["validate", "notes.txt"], "version directory 'notes.txt' is not a directory"),
        (["validate", "empty", "--server", "1.0.0"], "unknown TF Serving release '1.0.0'"),
        (["compat", "missing/1"], "cannot read 'missing/1/saved_model.pb'"),
        (["compare", "missing/1", "empty"], "'missing/1' is not a version directory"),
        (["serve", "--model_config_file=missing.config"], "cannot read config file 'missing.config'"),
    ]
    results = run_commands(_BLOCK_IMPORT, [argv for argv, _ in cases], workdir)
    for (argv, expected), (code, line) in zip(cases, results, strict=True):
        assert "WAS IMPORTED" not in line, (argv, line)
        assert code == EXIT_USAGE, (argv, line)
        assert expected in line, (argv, line)


def test_the_blocker_catches_an_import(workdir: Path) -> None:
    # `validate` of an empty version folder fails its rehearsal without TensorFlow; an `export` of a
    # well-formed file passes every check and reaches Keras, which the blocker stops.
    import h5py

    with h5py.File(workdir / "model.h5", "w") as handle:
        handle.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": []}})
    export = ["export", "model.h5", "--layer", "d", "--base-path", "repo", "--name", "m"]
    results = run_commands(_BLOCK_IMPORT, [["validate", "empty", "--runs", "1"], export], workdir)
    assert results[0][0] == EXIT_USAGE  # a failed rehearsal, reported without loading anything
    assert results[1][0] == EXIT_FAILURE
    assert "WAS IMPORTED" in results[1][1], results[1]


def test_a_client_only_install_gets_the_install_hint_from_every_command(workdir: Path) -> None:
    hint = "install it with: pip install 'layertap[tf]'"
    model = ["model.keras", "--layer", "d", "--base-path", "repo", "--name", "m"]
    cases = [
        (["export", *model], EXIT_FAILURE, hint),
        (["inspect", "model.keras"], EXIT_FAILURE, hint),
        (["validate", "empty"], EXIT_FAILURE, hint),
        (["serve", "--port=0", "--model_base_path=empty"], EXIT_FAILURE, hint),
        (["serve", "--version"], EXIT_FAILURE, hint),
        (["compat", "empty"], EXIT_USAGE, "cannot read 'empty/saved_model.pb'"),
        (["compare", "version", "version"], EXIT_FAILURE, hint),
        (["layers", "--target", "127.0.0.1:1", "--model", "m", "--timeout", "1"], EXIT_SERVING, ""),
        (["config", "demo", "--out", "cfg"], EXIT_OK, ""),
    ]
    results = run_commands(_NO_EXTRAS, [argv for argv, _, _ in cases], workdir)
    for (argv, want_code, expected), (code, line) in zip(cases, results, strict=True):
        assert "internal error" not in line, (argv, line)
        assert code == want_code, (argv, line)
        assert expected in line, (argv, line)
    assert sorted(path.name for path in (workdir / "cfg").iterdir()) == [
        "batching.config",
        "models.config",
        "monitoring.config",
    ]
