"""5. End to end on loopback: `layertap serve` + `layertap.client` vs in-process Keras `predict`,
and the official stubs (make_tensor_proto / make_ndarray) against the same server.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench import _models, _serving
from bench._harness import Report, latencies, ms, quantile, throughput
from layertap.client import LayerClient
from layertap.exporter import export

KERAS = "keras Model.predict (in-process)"
LAYERTAP = "layertap serve + layertap.client"
OFFICIAL = "layertap serve + official stubs (make_tensor_proto/make_ndarray)"


@contextlib.contextmanager
def official_stub(target: str) -> Iterator[Any]:
    """The official PredictionService stub on its own channel, accepting replies of any size."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])
    try:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    finally:
        channel.close()


def official_call(stub: Any, model: str, layer: str, alias: str, x: np.ndarray) -> Callable[[], np.ndarray]:
    """What a service using the official stubs does per call: make_tensor_proto in, make_ndarray out."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    def call() -> np.ndarray:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = layer
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(x))
        return tf.make_ndarray(stub.Predict(request, timeout=300).outputs[layer])

    return call


def run(quick: bool = False) -> Report:
    import keras

    report = Report("end_to_end", "End to end on loopback: latency (ms) and throughput (calls/s)")
    rng = np.random.default_rng(0)
    cases: list[tuple[str, Any, str, tuple[int, ...]]] = [
        ("tutorial CNN", _models.tutorial_cnn(), "conv_2", (28, 28, 1))
    ]
    if not quick:
        cases.append(("ResNet50", _models.resnet50(), "conv3_block4_out", (224, 224, 3)))
    batches = (1, 4) if quick else (1, 32)
    callers_list = (2,) if quick else (8, 32)  # one caller is the latency rows
    window = 0.5 if quick else 3.0
    speedups: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        repository = {}
        for index, (_, model, layer, _) in enumerate(cases):
            result = export(model, [layer], base_path=Path(tmp), name=f"e2e{index}")
            repository[f"e2e{index}"] = result.path.parent
        with _serving.serving(repository) as target, official_stub(target) as stub:
            for index, (label, model, layer, shape) in enumerate(cases):
                name, heavy = f"e2e{index}", label == "ResNet50"
                submodel = keras.Model(model.inputs, model.get_layer(layer).output)
                with LayerClient(target, name, timeout=300) as client:
                    alias = next(iter(client.layers().signatures[layer].inputs))
                    for batch in batches:
                        x = rng.random((batch, *shape), dtype=np.float32)
                        paths: dict[str, Callable[[], Any]] = {
                            KERAS: lambda x=x, m=submodel: m.predict(x, verbose=0),
                            LAYERTAP: lambda x=x, c=client, n=layer: c.predict_layer(x, n),
                            OFFICIAL: official_call(stub, name, layer, alias, x),
                        }
                        p50 = {}
                        for path, fn in paths.items():
                            samples = latencies(fn, 5 if quick or heavy else 30)
                            p50[path] = quantile(samples, 0.5)
                            report.row(
                                model=label,
                                layer=layer,
                                batch=batch,
                                path=path,
                                callers=1,
                                p50_ms=ms(p50[path]),
                                p99_ms=ms(quantile(samples, 0.99)),
                                calls_per_s=round(1 / p50[path], 1),
                            )
                        if batch == 1:
                            speedups[label] = p50[KERAS] / p50[LAYERTAP]
                    x = rng.random((1, *shape), dtype=np.float32)
                    concurrent = {
                        LAYERTAP: lambda x=x, c=client, n=layer: c.predict_layer(x, n),
                        OFFICIAL: official_call(stub, name, layer, alias, x),
                    }
                    for callers in callers_list:
                        for path, fn in concurrent.items():
                            rate, samples = throughput(fn, callers, window * (3 if heavy else 1))
                            report.row(
                                model=label,
                                layer=layer,
                                batch=1,
                                path=path,
                                callers=callers,
                                p50_ms=ms(quantile(samples, 0.5)),
                                p99_ms=ms(quantile(samples, 0.99)),
                                calls_per_s=round(rate, 1),
                            )
    for label, speedup in speedups.items():
        report.target(
            f"{label} batch 1: Model.predict / layertap end to end", speedup, ">= 20x", speedup >= 20
        )
    return report
