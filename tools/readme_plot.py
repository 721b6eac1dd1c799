"""Regenerate docs/predict_plot.png, the picture docs/client.md shows for `layertap predict --plot`.

It draws what `layertap predict --layer conv_1,conv_2,flatten --plot` draws for one generated digit
through the tutorial CNN (briefly trained), computed here with Keras instead of over gRPC.

    .venv/bin/python tools/readme_plot.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from layertap.demo.tutorial_cnn import build_tutorial_cnn, synthetic_digits, train_briefly
from layertap.plot import plot_outputs

LAYERS = ("conv_1", "conv_2", "flatten")
OUT = Path(__file__).resolve().parent.parent / "docs" / "predict_plot.png"


def main() -> None:
    model = build_tutorial_cnn()
    train_briefly(model, samples=512, epochs=1)
    images, _ = synthetic_digits(1, seed=3)
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in LAYERS])
    outputs = {name: np.asarray(value) for name, value in zip(LAYERS, probe([images]), strict=True)}
    OUT.parent.mkdir(exist_ok=True)
    plot_outputs(outputs, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
