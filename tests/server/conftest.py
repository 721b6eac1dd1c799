"""Small SavedModels and running servers for the server tests.

`saved_models` builds, once per session, a tf.Module export per "generation" (version 1 multiplies by
1.0, version 2 by 2.0, ...) with signatures of float and int dtypes, plus a broken version directory.
Tests copy them into their own base paths, so each test owns its repository.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from layertap.proto import serving_pb2 as pb
from layertap.server import ServerOptions, create_server
from layertap.server.app import LayertapServer
from layertap.wire import tensors
from tests.server.rest_peer import rest_server  # noqa: F401 (the REST tests' shared server, in rest_peer.py)


def _build(path: Path, factor: float) -> None:
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = tf.Variable([[1.0, 2.0], [3.0, 4.0]])
            self.factor = tf.Variable(factor)

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def full(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.matmul(x, self.kernel) * self.factor, "z": x * 2.0}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int64, name="a"),
                tf.TensorSpec([None], tf.int64, name="b"),
            ]
        )
        def add(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"sum": a + b}

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.int32, name="n")])
        def half(self, n: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"halved": tf.cast(n, tf.float16) / tf.constant(2.0, tf.float16)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="n")])
        def spin(self, n: tf.Tensor) -> dict[str, tf.Tensor]:
            # n rounds of a 64x64 matmul: a request whose duration the test chooses.
            def body(i: tf.Tensor, acc: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                return i + 1, tf.tanh(tf.matmul(acc + 1.0, tf.fill([64, 64], 0.01)))

            _, acc = tf.while_loop(lambda i, _: i < n, body, [tf.constant(0), tf.zeros([64, 64])])
            return {"done": tf.reduce_sum(acc)}

    module = Module()
    signatures = {
        "serving_default": module.full,
        "add": module.add,
        "outer/half": module.half,
        "spin": module.spin,
    }
    tf.saved_model.save(module, str(path), signatures=signatures)


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Exports by name: "1", "2", "3" (factor 1, 2, 3) and "broken" (a version that cannot load)."""
    root = tmp_path_factory.mktemp("exports")
    for generation in (1, 2, 3):
        _build(root / str(generation), float(generation))
    broken = root / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    return {name: root / name for name in ("1", "2", "3", "broken")}


@pytest.fixture
def make_repo(tmp_path: Path, saved_models: dict[str, Path]) -> Callable[..., Path]:
    """make_repo(name, {version: export}) copies exports into <tmp>/<name>/<version>/."""

    def make(name: str = "m", versions: dict[int, str] | None = None) -> Path:
        base = tmp_path / name
        base.mkdir(exist_ok=True)
        for version, export in (versions or {1: "1"}).items():
            shutil.copytree(saved_models[export], base / str(version))
        return base

    return make


@pytest.fixture
def start_server() -> Iterator[Callable[..., tuple[LayertapServer, grpc.Channel]]]:
    """start_server(**flags) runs create_server on 127.0.0.1:0; stopped after the test."""
    running: list[tuple[LayertapServer, grpc.Channel]] = []

    def start(**flags: object) -> tuple[LayertapServer, grpc.Channel]:
        settings: dict[str, object] = {"port": 0, "max_num_load_retries": 0, "grpc_max_threads": 4}
        options = ServerOptions(**{**settings, **flags})  # type: ignore[arg-type]
        server, port = create_server(options)
        channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        running.append((server, channel))
        return server, channel

    yield start
    for server, channel in running:
        channel.close()
        server.stop(grace=1.0)


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
