"""6. Several layers in one call: a group signature vs concurrent per-layer requests vs sequential ones."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench import _models, _serving
from bench._harness import Report, measure, ms
from layertap.client import LayerClient
from layertap.exporter import export


def run(quick: bool = False) -> Report:
    report = Report("multi_layer", "Several layers in one call (ms per call, median)")
    if quick:
        model, layers, shape, label = (
            _models.tutorial_cnn(),
            ["conv_1", "conv_2", "flatten"],
            (28, 28, 1),
            "CNN",
        )
    else:
        model = _models.resnet50()
        layers, shape, label = (
            ["conv2_block3_out", "conv3_block4_out", "conv4_block6_out"],
            (224, 224, 3),
            "ResNet50",
        )
    batch = 2 if quick else 8
    x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
    repeat = 3 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        grouped = export(model, layers, base_path=Path(tmp), name="grouped", groups={"together": layers})
        separate = export(model, layers, base_path=Path(tmp), name="separate")
        repository = {"grouped": grouped.path.parent, "separate": separate.path.parent}
        with (
            _serving.serving(repository) as target,
            LayerClient(target, "grouped", timeout=300) as with_group,
            LayerClient(target, "separate", timeout=300) as without_group,
        ):
            reference = without_group.predict(x, layers)
            together = with_group.predict(x, layers)
            for name in layers:  # the three ways must agree before their speed means anything
                np.testing.assert_allclose(together[name], reference[name], rtol=1e-5, atol=1e-5)
            timings = {
                "group signature (one pass)": measure(
                    lambda: with_group.predict(x, layers), repeat=repeat, min_time=0
                ),
                "concurrent per-layer requests": measure(
                    lambda: without_group.predict(x, layers), repeat=repeat, min_time=0
                ),
                "sequential per-layer requests": measure(
                    lambda: [without_group.predict_layer(x, name) for name in layers],
                    repeat=repeat,
                    min_time=0,
                ),
            }
    base = timings["sequential per-layer requests"].median
    for way, stats in timings.items():
        report.row(
            model=label,
            batch=batch,
            layers=len(layers),
            way=way,
            median_ms=ms(stats.median),
            spread_ms=f"{ms(stats.p10)}-{ms(stats.p90)}",
            vs_sequential=round(stats.median / base, 3),
        )
    return report
