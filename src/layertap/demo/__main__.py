"""`make demo` (`python -m layertap.demo`): the main job, end to end.

Export half: build the tutorial CNN, train it briefly on generated digits, and export conv_1,
conv_2 and flatten (plus serving_default) as one SavedModel version under `demo_models/`.
Serving half (`layertap.demo.serving`): write `serving_config/models.config` and a local
`demo_models/models.config`, start `layertap serve` in the background, ask for each layer through
`layertap.client` next to Keras `Model(...).predict`, and stop the server.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from layertap.exporter import ExportResult, export  # importing it does not load TensorFlow

__all__ = ["BASE_PATH", "DEMO_LAYERS", "MODEL_NAME", "export_layers", "main", "train_model"]

BASE_PATH = Path("demo_models")
MODEL_NAME = "tutorial_cnn"  # the name serving_config/ and docker/ serve (layertap.config.DEMO_MODEL_NAME)
DEMO_LAYERS = ("conv_1", "conv_2", "flatten")


def say(message: str) -> None:
    """The demo's narration, on stdout."""
    print(message, flush=True)


def train_model() -> Any:
    """The tutorial CNN, trained briefly on generated MNIST-like digits."""
    from layertap.demo.tutorial_cnn import build_tutorial_cnn, train_briefly

    say("building the tutorial CNN and training it briefly on generated digits ...")
    model = build_tutorial_cnn()
    accuracy = train_briefly(model)
    say(f"  accuracy on fresh generated digits: {accuracy:.3f}")
    return model


def export_layers(model: Any, base_path: Path = BASE_PATH, name: str = MODEL_NAME) -> ExportResult:
    """Export DEMO_LAYERS of `model` as the next version of `<base_path>/<name>`."""
    say(f"exporting {', '.join(DEMO_LAYERS)} to {base_path / name} ...")
    result = export(
        model,
        list(DEMO_LAYERS),
        base_path=base_path,
        name=name,
        progress=lambda message: print(f"  .. {message}", file=sys.stderr, flush=True),
    )
    say(f"published version {result.version} at {result.path}")
    for key, info in result.signatures.items():
        for alias, (shape, dtype) in info.outputs.items():
            dims = ", ".join("batch" if dim is None else str(dim) for dim in shape)
            error = result.max_errors[key]
            say(f"  signature {key!r}: output {alias!r} ({dims}) {dtype}, verified max error {error:.1e}")
    say(
        f"  variables {result.sizes.variables_bytes} bytes for {result.sizes.parameter_bytes} bytes of "
        f"parameters (ratio {result.sizes.ratio:.4f}, weights stored once)"
    )
    return result


def main() -> int:
    """Run the demo; returns the exit code."""
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    model = train_model()
    export_layers(model)
    from layertap.demo.serving import run_serving_half

    say("serving the export with layertap serve and asking for each layer through layertap.client ...")
    run_serving_half(model, MODEL_NAME, BASE_PATH, DEMO_LAYERS, log=say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
