"""Shared test set-up. Fixtures one package uses live in its conftest; those several packages use live in
tests/fixtures/ (registered here as plugins), half_plus_two and the old TensorFlow below."""

import os
from pathlib import Path

import pytest

from tests.oldtf import OldTensorFlow
from tests.oldtf import old_tensorflow as create_old_tensorflow

# Quiet TensorFlow's C++ logging and keep Keras on the TensorFlow backend in every test process.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Session fixtures shared across packages (each module's docstring says what it builds and who uses it).
# They import TensorFlow, Keras and layertap's server lazily: loading them costs a TF-free test nothing.
pytest_plugins = [
    "tests.fixtures.client_peer",
    "tests.fixtures.config_repos",
    "tests.fixtures.gate_repo",
    "tests.fixtures.server_repos",
    "tests.fixtures.tutorial_cnn",
    "tests.fixtures.wide_export",
]


@pytest.fixture(scope="session")
def half_plus_two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model base path holding TF Serving's test model half_plus_two as version 00000123
    (tests/half_plus_two.py). Read-only: tests that change a repository copy it first."""
    from tests import half_plus_two as model

    base = tmp_path_factory.mktemp("half_plus_two_base") / "half_plus_two"
    model.build(base / f"{model.VERSION:08d}")
    return base


@pytest.fixture(scope="session")
def half_plus_two_tf2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model base path holding half_plus_two saved the TF2 way (`build_tf2` in tests/half_plus_two.py):
    the same signatures, all with method_name `tensorflow/serving/predict`. Read-only."""
    from tests import half_plus_two as model

    base = tmp_path_factory.mktemp("half_plus_two_tf2_base") / "half_plus_two"
    model.build_tf2(base / f"{model.VERSION:08d}")
    return base


@pytest.fixture(scope="session")
def old_tensorflow() -> OldTensorFlow:
    """TensorFlow 2.16.1 (the oldest supported) in a cached throwaway venv; see tests/oldtf.py."""
    return create_old_tensorflow()
