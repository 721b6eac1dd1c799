"""Shared test set-up: the environment every test process runs with, the fixture modules of
tests/fixtures (the fixtures more than one package uses), registered for every test, and the order
`make test`'s workers take the modules in (tests/scheduling.py). A fixture one package uses lives in
that package's conftest."""

import os

# Quiet TensorFlow's C++ logging and keep Keras on the TensorFlow backend in every test process.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Each module's docstring says what it builds and who uses it. They import TensorFlow, Keras and
# layertap's server lazily: loading them costs a TF-free test nothing.
pytest_plugins = [
    "tests.fixtures.client_peer",
    "tests.fixtures.config_repos",
    "tests.fixtures.gate_repo",
    "tests.fixtures.half_plus_two",
    "tests.fixtures.oldtf",
    "tests.fixtures.server_repos",
    "tests.fixtures.tutorial_cnn",
    "tests.fixtures.wide_export",
    # the order in which `make test`'s two xdist workers take the modules
    "tests.scheduling",
]
