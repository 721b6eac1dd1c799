"""3. Compute saved by truncation: ResNet50 layer signatures through `layertap serve` vs the full
model, and the serving overhead against the same Keras sub-model called in-process under tf.function.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench import _models, _serving
from bench._harness import Report, measure, ms
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
    with tempfile.TemporaryDirectory() as tmp:
        result = export(model, layers, base_path=Path(tmp), name="trunc")
        rows = []
        with (
            _serving.serving({"trunc": result.path.parent}) as target,
            LayerClient(target, "trunc") as client,
        ):
            full_served = measure(lambda: client.predict(x), repeat=repeat, warmup=2, min_time=0)
            full_fn = tf.function(lambda t: model(t, training=False))
            full_local = measure(lambda: full_fn(x).numpy(), repeat=repeat, warmup=2, min_time=0)
            rows.append(("full model (serving_default)", full_served, full_local))
            for name in layers:
                submodel = keras.Model(model.inputs, model.get_layer(name).output)
                local_fn = tf.function(lambda t, m=submodel: m(t, training=False))
                served = measure(
                    lambda n=name: client.predict_layer(x, n), repeat=repeat, warmup=2, min_time=0
                )
                local = measure(lambda f=local_fn: f(x).numpy(), repeat=repeat, warmup=2, min_time=0)
                rows.append((name, served, local))
    for name, served, local in rows:
        report.row(
            model=label,
            batch=batch,
            signature=name,
            served_ms=ms(served.median),
            served_spread_ms=f"{ms(served.p10)}-{ms(served.p90)}",
            in_process_tf_function_ms=ms(local.median),
            serving_overhead=round(served.median / local.median, 3),
            share_of_full_model=round(served.median / full_served.median, 3),
        )
    early = rows[1]
    overhead = early[1].median / early[2].median
    report.target(f"{early[0]} served / in-process tf.function", overhead, "<= 1.15", overhead <= 1.15)
    share = early[1].median / full_served.median
    report.target(f"{early[0]} served / full model served", share, "~0.14 of the compute", True)
    return report
