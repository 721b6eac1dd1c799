"""Models the benchmarks share: ResNet50 (weights=None) and the tutorial CNN, and their layer picks."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def resnet50(input_size: int = 224) -> Any:
    import keras

    return keras.applications.ResNet50(weights=None, input_shape=(input_size, input_size, 3))


def tutorial_cnn() -> Any:
    from layertap.demo.tutorial_cnn import build_tutorial_cnn

    return build_tutorial_cnn()


def resnet_block_outputs(model: Any) -> list[str]:
    """ResNet50's residual block outputs in network order (conv2_block1_out ... conv5_block3_out)."""
    return [layer.name for layer in model.layers if layer.name.endswith("_out")]


def spread(names: list[str], count: int) -> list[str]:
    """`count` names spread evenly over `names`, first and last included."""
    if count >= len(names):
        return list(names)
    if count == 1:
        return [names[0]]
    step = (len(names) - 1) / (count - 1)
    return [names[round(i * step)] for i in range(count)]


def variables_bytes(saved_model: Path) -> int:
    """Bytes of a SavedModel's variables/ files (the stored weights)."""
    return sum(path.stat().st_size for path in (saved_model / "variables").iterdir() if path.is_file())


def parameter_bytes(model: Any) -> int:
    return sum(int(weight.numpy().nbytes) for weight in model.weights)
