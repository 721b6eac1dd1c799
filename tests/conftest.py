"""Shared test set-up. Fixtures that build models live in the conftest of the package they test."""

import os

# Quiet TensorFlow's C++ logging and keep Keras on the TensorFlow backend in every test process.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
