"""The client's public surface and its promise never to import TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

import layertap.client

BLOCKED_IMPORT = """
import sys
sys.modules["tensorflow"] = None  # any attempt to import TensorFlow now raises ImportError
sys.modules["tensorflow_serving"] = None
sys.modules["keras"] = None
import json, time
started = time.perf_counter()
import layertap.client
from layertap.client import LayerClient, ServingClient
elapsed = time.perf_counter() - started
import layertap.wire.codec
import layertap.cli.query
client = LayerClient("127.0.0.1:1", "m")
client.close()
ServingClient("127.0.0.1:1", "m").close()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tensorflow_serving")
               and sys.modules[m] is not None)
# VmRSS, not ru_maxrss: the latter keeps the forking parent's peak across exec.
status = open("/proc/self/status").read()
rss_mb = int(status.split("VmRSS:")[1].split()[0]) / 1024
print(json.dumps({"heavy": heavy, "seconds": elapsed, "rss_mb": rss_mb}))
"""


def test_client_imports_without_tensorflow_in_a_fresh_process() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    # Not a timing assertion: RSS is deterministic enough, and TensorFlow alone would take ~660 MB.
    assert report["rss_mb"] < 150, report


def test_tensorflow_is_not_imported_as_a_side_effect() -> None:
    code = "import sys, layertap.client, layertap.wire.codec; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_ml_dtypes_is_imported_only_for_bfloat16() -> None:
    # ml_dtypes alone takes ~0.5 s to import, more than the rest of the client: only bfloat16 needs it.
    code = (
        "import sys, numpy as np, layertap.client\n"
        "from layertap.wire import codec, dtypes\n"
        "spec = dtypes.pb.ModelSpec(name='m')\n"
        "codec.encode_predict_request(spec, {'x': np.ones((2, 3), np.float32)})\n"
        "before = 'ml_dtypes' in sys.modules\n"
        "dtypes.from_proto(dtypes.pb.DT_BFLOAT16).numpy\n"
        "print(before, 'ml_dtypes' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False True"


def test_public_names_are_exactly_all() -> None:
    assert sorted(layertap.client.__all__) == [
        "AsyncLayerClient",
        "AsyncServingClient",
        "Catalogue",
        "Classification",
        "ConnectionSettings",
        "Layer",
        "LayerClient",
        "LayerOutputs",
        "Retry",
        "ServingClient",
        "Signature",
        "TLS",
        "TensorSpec",
        "VersionStatus",
    ]
    public = {name for name in vars(layertap.client) if not name.startswith("_")}
    assert public - {"annotations"} == set(layertap.client.__all__)
    for name in layertap.client.__all__:
        assert getattr(layertap.client, name).__module__.startswith("layertap.client._")


def test_coexists_with_tensorflow_and_the_official_stubs_in_one_process(peer_target: str) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from layertap.client import LayerClient
    from layertap.proto import serving_pb2

    assert predict_pb2.PredictRequest.DESCRIPTOR.full_name == "tensorflow.serving.PredictRequest"
    assert serving_pb2.PredictRequest.DESCRIPTOR.full_name == "layertap.serving.PredictRequest"
    x = tf.constant([[1.0, 0.0, 0.0, 0.0]]).numpy()
    with LayerClient(peer_target, "toy") as client:
        out = client.predict_layer(x, "dense_1")
    assert out.tolist() == [[1.100000023841858, 0.0, 0.800000011920929]]


def test_connection_settings_are_declared_once_and_taken_by_every_client() -> None:
    import asyncio
    from dataclasses import fields
    from typing import get_type_hints

    from layertap.client import (
        AsyncLayerClient,
        AsyncServingClient,
        ConnectionSettings,
        LayerClient,
        Retry,
        ServingClient,
    )
    from layertap.client._layer_core import LayerKeywords
    from layertap.client._settings import SettingsKeywords

    # The TypedDict that types the clients' **settings restates the dataclass: same names, same types.
    declared = get_type_hints(ConnectionSettings)
    del declared["target"], declared["model"]
    assert get_type_hints(SettingsKeywords) == declared
    assert [field.name for field in fields(ConnectionSettings)][2:] == list(SettingsKeywords.__annotations__)
    layer_only = set(LayerKeywords.__annotations__) - set(declared)
    assert layer_only == {"max_batch_size", "max_reply_bytes", "max_concurrency", "validate"}

    given = {
        "version": 0,
        "timeout": 2.5,
        "retry": Retry(attempts=2),
        "compression": "gzip",
        "keepalive_seconds": None,
        "options": {"grpc.primary_user_agent": "settings-test"},
    }
    expected = ConnectionSettings("127.0.0.1:1", "m", **given)
    assert expected.retry == Retry(attempts=2) and expected.tls is None and expected.version == 0
    for sync_class in (LayerClient, ServingClient):
        with sync_class("127.0.0.1:1", "m", **given) as client:
            assert client.settings == expected
            assert repr(client) == f"{sync_class.__name__}('127.0.0.1:1', 'm')"

    async def open_async() -> list[ConnectionSettings]:
        seen = []
        for async_class in (AsyncLayerClient, AsyncServingClient):
            async with async_class("127.0.0.1:1", "m", **given) as client:
                seen.append(client.settings)
        return seen

    assert asyncio.run(open_async()) == [expected, expected]
    assert ConnectionSettings("h:1", "m").retry == Retry() and ConnectionSettings("h:1", "m").timeout == 10.0
