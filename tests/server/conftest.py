"""The server tests' own fixtures: a small Keras CNN export, atomic publishing, warmup files.

The tf.Module exports they copy into their own repositories (`generation_exports`, `make_repo`) and
`start_server` are shared with `layertap serve`'s CLI tests: tests/fixtures/server_repos.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.proto import serving_pb2 as pb
from layertap.wire import tensors
from tests.server.rest_peer import rest_server  # noqa: F401 (the REST tests' shared server, in rest_peer.py)


@pytest.fixture(scope="session")
def small_cnn() -> Any:
    import keras

    keras.utils.set_random_seed(7)
    return keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv_1"),
            keras.layers.MaxPooling2D(name="pool_1"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(3, activation="softmax", name="dense"),
        ]
    )


@pytest.fixture(scope="session")
def exported(small_cnn: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    from layertap.exporter import export

    base = tmp_path_factory.mktemp("exported")
    result = export(small_cnn, EXPORTED_LAYERS, base_path=base, name="cnn")
    return base / "cnn", result


#: The layers the session's small CNN export carries.
EXPORTED_LAYERS = ["conv_1", "pool_1", "flatten"]


@pytest.fixture
def exported_layers() -> list[str]:
    """The layers `exported` carries, in export order."""
    return list(EXPORTED_LAYERS)


@pytest.fixture
def publish() -> Callable[[Path, int, Path], None]:
    """publish(base, version, export): copy under a non-numeric name, then rename (atomic publish)."""
    return _publish


@pytest.fixture
def write_warmup() -> Callable[[Path, list[str]], None]:
    """write_warmup(version_dir, signatures): a warmup file with one request per signature."""
    return _write_warmup


def _write_warmup(version_dir: Path, signatures: list[str]) -> None:
    """Write TF Serving's warmup file (TFRecord of PredictionLog) with one "x" request per signature."""
    import tensorflow as tf

    extra = version_dir / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as writer:
        for signature in signatures:
            log = pb.PredictionLog()
            log.predict_log.request.CopyFrom(_warmup_request(signature))
            writer.write(log.SerializeToString())


def _warmup_request(signature: str) -> pb.PredictRequest:
    request = pb.PredictRequest()
    request.model_spec.name = "warm"
    request.model_spec.signature_name = signature
    request.inputs["x"].CopyFrom(tensors.array_to_proto(np.ones((1, 2), np.float32)))
    return request


def _publish(base: Path, version: int, export: Path) -> None:
    """Publish a version atomically: copy next to it under a non-numeric name, then rename."""
    staging = base / f".staging-{version}"
    shutil.copytree(export, staging)
    staging.rename(base / str(version))
