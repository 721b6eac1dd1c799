"""3. Compute saved by truncation: ResNet50 layer signatures through `layertap serve` vs the full
model, and the serving overhead against the same Keras sub-model called in-process under tf.function.

Each row also moves the same request and reply bytes through a bare gRPC echo server on loopback:
that is what serving costs before any compute, and it is most of the overhead for early layers,
whose outputs are the largest.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench import _models, _serving
from bench._harness import Report, Stats, measure, ms
from layertap.client import LayerClient
from layertap.exporter import export


def run(quick: bool = False) -> Report:
    import keras
    import tensorflow as tf

    report = Report("truncation", "Compute saved by truncation (served vs in-process tf.function)")
    if quick:
        model, layers, batch = _models.tutorial_cnn(), ["conv_1", "conv_2", "flatten"], 2
        label = "tutorial CNN"
        x = np.random.default_rng(0).random((batch, 28, 28, 1), dtype=np.float32)
    else:
        model = _models.resnet50()
        layers, batch, label = ["conv2_block1_out", "conv3_block4_out", "conv5_block3_out"], 8, "ResNet50"
        x = np.random.default_rng(0).random((batch, 224, 224, 3), dtype=np.float32)
    repeat = 3 if quick else 7

    def timed(fn: object) -> Stats:
        return measure(fn, repeat=repeat, warmup=2, min_time=0)  # type: ignore[arg-type]

    rows: list[tuple[str, Stats, Stats, Stats, Stats]] = []
    with tempfile.TemporaryDirectory() as tmp:
        result = export(model, layers, base_path=Path(tmp), name="trunc")
        socket_path = Path(tmp) / "grpc.sock"
        with (
            _serving.serving(
                {"trunc": result.path.parent}, extra_flags=(f"--grpc_socket_path={socket_path}",)
            ) as target,
            LayerClient(target, "trunc") as client,
            LayerClient(f"unix:{socket_path}", "trunc") as unix_client,
            _serving.echo_server() as transport,
        ):
            subjects = [("full model (serving_default)", model, None)]
            subjects += [
                (name, keras.Model(model.inputs, model.get_layer(name).output), name) for name in layers
            ]
            for name, keras_model, layer in subjects:
                local_fn = tf.function(lambda t, m=keras_model: m(t, training=False))
                reply_bytes = int(local_fn(x).numpy().nbytes)
                served = timed(lambda c=client, n=layer: c.predict(x, n))
                over_unix = timed(lambda c=unix_client, n=layer: c.predict(x, n))
                local = timed(lambda f=local_fn: f(x).numpy())
                floor = timed(transport(x.nbytes, reply_bytes))
                rows.append((name, served, local, floor, over_unix))
    full_served = rows[0][1]
    for name, served, local, floor, over_unix in rows:
        report.row(
            model=label,
            batch=batch,
            signature=name,
            served_ms=ms(served.median),
            served_spread_ms=f"{ms(served.p10)}-{ms(served.p90)}",
            in_process_tf_function_ms=ms(local.median),
            served_unix_socket_ms=ms(over_unix.median),
            grpc_transport_floor_ms=ms(floor.median),
            serving_overhead=round(served.median / local.median, 3),
            overhead_beyond_transport=round((served.median - floor.median) / local.median, 3),
            share_of_full_model=round(served.median / full_served.median, 3),
        )
    name, served, local, floor, over_unix = rows[1]
    overhead = served.median / local.median
    report.target(f"{name} served / in-process tf.function", overhead, "<= 1.15", overhead <= 1.15)
    unix_overhead = over_unix.median / local.median
    report.target(
        f"{name} served over a UNIX socket / in-process", unix_overhead, "<= 1.15", unix_overhead <= 1.15
    )
    beyond = (served.median - floor.median) / local.median
    report.target(
        f"{name} (served - gRPC transport of the same bytes) / in-process", beyond, "<= 1.15", beyond <= 1.15
    )
    share = served.median / full_served.median
    report.target(f"{name} served / full model served", share, "informational (~0.14 of the FLOPs)", True)
    return report
