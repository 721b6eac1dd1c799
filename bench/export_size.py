"""4. Export: stored bytes / parameter bytes, and export time, vs Keras' own export paths.

layertap writes ONE SavedModel whose variables hold every weight once however many layer signatures
it has. People otherwise call `model.export()` (Keras stores weights twice, keras#23553) or write one
SavedModel per layer (each repeating the weights of its prefix).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench import _models
from bench._harness import Report
from layertap.exporter import export


def run(quick: bool = False) -> Report:
    import keras

    report = Report("export_size", "Export: variables bytes / parameter bytes, and export wall time")
    model = _models.tutorial_cnn() if quick else _models.resnet50(input_size=64)
    label = "tutorial CNN" if quick else "ResNet50 (weights=None, 64x64 input)"
    candidates = [layer.name for layer in model.layers[:-1]] if quick else _models.resnet_block_outputs(model)
    counts = (1, 3) if quick else (1, 5, 20)
    per_layer_counts = (1,) if quick else (1, 5)  # one SavedModel per layer costs a full export each
    parameters = _models.parameter_bytes(model)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        model.export(str(root / "keras_export"), format="tf_saved_model", verbose=False)
        keras_seconds = time.perf_counter() - started
        keras_ratio = _models.variables_bytes(root / "keras_export") / parameters
        report.row(
            model=label,
            method="keras model.export()",
            signatures=1,
            ratio=round(keras_ratio, 3),
            seconds=round(keras_seconds, 2),
        )
        ours_at: dict[int, float] = {}
        for count in counts:
            layers = _models.spread(candidates, count)
            started = time.perf_counter()
            result = export(model, layers, base_path=root / "repo", name=f"m{count}")
            seconds = time.perf_counter() - started
            ours_at[count] = result.sizes.ratio
            report.row(
                model=label,
                method="layertap export (verified)",
                signatures=count,
                ratio=round(result.sizes.ratio, 4),
                seconds=round(seconds, 2),
                verify_s=round(result.timings.get("verify", 0.0), 2),
            )
        for count in per_layer_counts:
            layers = _models.spread(candidates, count)
            stored = 0
            started = time.perf_counter()
            for index, name in enumerate(layers):
                submodel = keras.Model(model.inputs, model.get_layer(name).output)
                submodel.export(
                    str(root / f"per_layer_{count}_{index}"), format="tf_saved_model", verbose=False
                )
                stored += _models.variables_bytes(root / f"per_layer_{count}_{index}")
            report.row(
                model=label,
                method="one keras SavedModel per layer",
                signatures=count,
                ratio=round(stored / parameters, 3),
                seconds=round(time.perf_counter() - started, 2),
            )
    largest = max(counts)
    report.target(
        f"size ratio at {largest} signatures", ours_at[largest], "<= 1.01", ours_at[largest] <= 1.01
    )
    report.target("keras model.export() size ratio (baseline)", keras_ratio, "~2.0 (measured)", True)
    report.notes.append(f"parameter bytes: {parameters}")
    report.notes.append(
        "layertap's time includes tracing every signature, the session-path load and the numeric "
        "verification of every signature; Keras' export does neither check."
    )
    return report
