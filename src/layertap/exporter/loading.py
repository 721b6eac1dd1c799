"""Getting a ready-to-truncate Keras model from a file or an in-memory model.

Files load with Keras' safe mode: a Lambda layer carries Python code that would run on load, so
it needs `allow_unsafe=True`. A legacy `.h5` file is checked for Lambda layers before Keras reads
it, because its loader rebuilds (and so runs) the model while loading.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from layertap.errors import UnsafeModelError, UnsupportedModelError, UsageError

__all__ = ["MODEL_SUFFIXES", "load_model", "prepare_model"]

logger = logging.getLogger(__name__)

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(
    model_or_path: Any, *, allow_unsafe: bool = False, input_shape: Sequence[int] | None = None
) -> Any:
    """A built keras.Model from a `.keras`/`.h5` path or a keras.Model.

    Args:
        model_or_path: path to a `.keras` or legacy `.h5` file, or an in-memory keras.Model.
        allow_unsafe: allow files with Lambda layers (their code runs when loading).
        input_shape: shape of one sample (no batch dimension) for a Sequential model that was
            never built; ignored for models that have inputs.

    Raises:
        UsageError: the path does not exist or is not a Keras model file.
        UnsafeModelError: the file has Lambda layers and `allow_unsafe` is False.
        UnsupportedModelError: a Sequential model without inputs and no `input_shape`.
    """
    import keras

    if isinstance(model_or_path, keras.Model):
        return prepare_model(model_or_path, input_shape=input_shape)
    path = Path(model_or_path)
    if not path.is_file():
        raise UsageError(f"model file {str(path)!r} does not exist; expected a .keras or .h5 file")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise UsageError(
            f"model file {str(path)!r} has suffix {path.suffix!r}; accepted: {', '.join(MODEL_SUFFIXES)}"
        )
    if path.suffix.lower() != ".keras" and not allow_unsafe:
        _refuse_h5_lambda(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not allow_unsafe)
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise UnsafeModelError(
                f"{path} contains a Lambda layer (Python code that runs when the model loads); loading "
                "it was refused. If you trust the file, pass --allow-unsafe (allow_unsafe=True)."
            ) from error
        raise UsageError(f"{path} could not be loaded as a Keras model: {error}") from error
    logger.info("loaded %s (%s, %d layers)", path, type(model).__name__, len(model.layers))
    return prepare_model(model, input_shape=input_shape)


def prepare_model(model: Any, *, input_shape: Sequence[int] | None = None) -> Any:
    """Build a Sequential model that has no inputs yet; other models are returned as they are."""
    import keras

    if isinstance(model, keras.Sequential) and not _has_inputs(model):
        if input_shape is None:
            raise UnsupportedModelError(
                f"Sequential model {model.name!r} has no Input and was never built, so its layer "
                "shapes are unknown; pass the shape of one sample, e.g. --input-shape 28,28,1 "
                "(input_shape=(28, 28, 1)), without the batch dimension"
            )
        # build() with a None batch dimension keeps the batch free in every signature.
        model.build((None, *input_shape))
    return model


def _has_inputs(model: Any) -> bool:
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def _refuse_h5_lambda(path: Path) -> None:
    import h5py

    with h5py.File(path, "r") as handle:
        raw = handle.attrs.get("model_config")
    if raw is None:
        raise UsageError(f"{path} has no model_config: it holds weights only, not a whole model")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    if _mentions_lambda(json.loads(text)):
        raise UnsafeModelError(
            f"{path} contains a Lambda layer (Python code that runs when the model loads); loading it "
            "was refused. If you trust the file, pass --allow-unsafe (allow_unsafe=True)."
        )


def _mentions_lambda(config: Any) -> bool:
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda":
            return True
        return any(_mentions_lambda(value) for value in config.values())
    if isinstance(config, list):
        return any(_mentions_lambda(value) for value in config)
    return False
