"""8. Compare: `layertap compare` of two versions against simply running the same rows through both.

Two versions of ResNet50 (weights=None, 64x64 input, the small input keeps 512 rows in memory): the model,
and the model with every weight nudged by small noise (what a fine-tuning step does), each exported with
four residual block outputs besides serving_default (5 signatures). Both sides load the two versions and
run the 512 probe rows through every signature in chunks of the same size; `compare` also computes the
metrics (differences, cosines, Gram matrices for the neighbour overlap and CKA). Target: compare takes at
most 1.2x the bare inference, i.e. the metrics cost little beside it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import _models
from bench._harness import Report
from layertap.compare import LocalVersion, compare_versions
from layertap.compare.versions import ROWS_PER_CALL
from layertap.exporter import export

TARGET_RATIO = 1.2


def run(quick: bool = False, repeat: int | None = None) -> Report:
    report = Report("compare", "Compare: layertap compare vs the same rows through both versions in-process")
    if quick:
        model, layers, rows, label = _models.tutorial_cnn(), ["conv_1", "conv_2"], 64, "tutorial CNN"
        shape: tuple[int, ...] = (28, 28, 1)
    else:
        model, rows, label = _models.resnet50(64), 512, "ResNet50 64x64"
        layers = _models.spread(_models.resnet_block_outputs(model), 4)
        shape = (64, 64, 3)
    repeat = repeat or (1 if quick else 3)
    x = np.random.default_rng(1).random((rows, *shape), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        first = export(model, layers, base_path=Path(tmp), name="cmp", verify=False)
        # The same model object, nudged in place: a clone or a second build would get other input
        # names from Keras (`input_layer_1`), and other inputs make every signature `changed`.
        rng = np.random.default_rng(0)
        model.set_weights([w + rng.normal(0.0, 1e-3, w.shape).astype(w.dtype) for w in model.get_weights()])
        second = export(model, layers, base_path=Path(tmp), name="cmp", verify=False)
        paths = (first.path, second.path)
        alias = next(iter(first.signatures["serving_default"].inputs))
        bare, full = [], []
        verdicts: dict[str, str] = {}
        for _ in range(repeat):  # alternated, so load on the machine hits both alike
            started = time.perf_counter()
            _run_both(paths, list(first.signatures), {alias: x})
            bare.append(time.perf_counter() - started)
            started = time.perf_counter()
            comparison = compare_versions(LocalVersion(paths[0]), LocalVersion(paths[1]), inputs={alias: x})
            full.append(time.perf_counter() - started)
            verdicts = {key: sig.verdict for key, sig in comparison.signatures.items()}
    bare_s, full_s = float(np.median(bare)), float(np.median(full))
    ratio = full_s / bare_s
    for key, verdict in verdicts.items():
        report.row(model=label, signature=key, rows=rows, verdict=verdict)
    report.row(model=label, signature="(all)", rows=rows, bare_s=round(bare_s, 2), compare_s=round(full_s, 2))
    report.target(
        "compare time / bare inference of both versions", ratio, f"<= {TARGET_RATIO}", ratio <= TARGET_RATIO
    )
    report.notes.append(
        f"{len(verdicts)} signatures, {rows} rows, chunks of {ROWS_PER_CALL}; medians of {repeat} "
        "alternated runs; both sides include loading the two SavedModels"
    )
    return report


def _run_both(paths: tuple[Path, Path], keys: list[str], inputs: dict[str, np.ndarray]) -> list[Any]:
    """The baseline: load each version and run every signature on the rows, nothing else."""
    import tensorflow as tf

    outputs = []
    for path in paths:
        loaded = tf.saved_model.load(str(path))
        for key in keys:
            function = loaded.signatures[key]
            rows = len(next(iter(inputs.values())))
            for start in range(0, rows, ROWS_PER_CALL):
                chunk = {a: tf.constant(v[start : start + ROWS_PER_CALL]) for a, v in inputs.items()}
                outputs.append({a: t.numpy() for a, t in function(**chunk).items()})
    return outputs
