"""The checks and steps `ModelSource.load` (`layertap.exporter.source`) loads a model file with.

Files load with Keras' safe mode: a Lambda layer carries Python code that would run on load, so
it needs `allow_unsafe=True`. A legacy `.h5` file is checked for Lambda layers before Keras reads
it, because its loader rebuilds (and so runs) the model while loading. Keras 2 artifacts (a SavedModel
folder with keras_metadata.pb, a tf_keras `.keras` file, TF-op layers) go through
`layertap.exporter.keras2`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from layertap.errors import UnsafeModelError, UnsupportedModelError, UsageError
from layertap.exporter import keras2
from layertap.exporter.sources import kerashub

__all__ = [
    "MODEL_SUFFIXES",
    "check_model_file",
    "ensure_tensorflow_backend",
    "import_custom_objects",
    "keras_load_error",
    "load_model",
    "prepare_model",
    "refuse_h5_lambda",
]

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(model_or_path: Any, **options: Any) -> Any:
    """A built keras.Model: `ModelSource(model_or_path, **options).load()` (`layertap.exporter.source`
    documents the options and what loading raises)."""
    from layertap.exporter.source import ModelSource

    return ModelSource(model_or_path, **options).load()


def ensure_tensorflow_backend() -> None:
    """Make Keras run on TensorFlow, whatever backend a model was saved or trained with.

    A `.keras` file does not depend on the backend that saved it (JAX, PyTorch), but a SavedModel
    is TensorFlow: Keras must run on TensorFlow here. Before Keras is imported, KERAS_BACKEND is set
    for this process; once it is imported with another backend, that cannot change any more.

    Raises:
        UnsupportedModelError: Keras was already imported with another backend.
    """
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "tensorflow"
        return
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise UnsupportedModelError(
            f"keras was imported with the {backend!r} backend, and exporting a SavedModel needs the "
            "TensorFlow backend; run the export in a process where KERAS_BACKEND=tensorflow is set "
            "before keras is imported (the layertap command does this itself). A model saved under "
            f"{backend!r} loads under TensorFlow: save it with model.save('model.keras'), export the file"
        )


def import_custom_objects(sources: Sequence[str | Path]) -> None:
    """Import each module name or `.py` file (once per process), for the classes it registers.

    Raises:
        UsageError: a file that does not exist, a module that cannot be found, or one whose import
            fails (the error's first line is quoted).
    """
    for source in sources:
        text = str(source)
        try:
            if text.endswith(".py") or os.sep in text:
                _import_file(Path(text))
            else:
                importlib.import_module(text)
        except UsageError:
            raise
        except ModuleNotFoundError as error:
            raise UsageError(
                f"--custom-objects {text!r}: no module named {error.name!r}; give an importable module "
                "name (on PYTHONPATH) or the path of a .py file"
            ) from None
        except Exception as error:
            raise UsageError(
                f"--custom-objects {text!r} failed to import: {type(error).__name__}: {_one_line(error)}"
            ) from error


def _import_file(path: Path) -> None:
    if not path.is_file():
        raise UsageError(
            f"--custom-objects {str(path)!r}: no such file; expected a .py file or a module name"
        )
    resolved = path.resolve()
    # One module name per file, so importing the same file twice registers its classes once.
    name = "layertap_custom_objects_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise UsageError(f"--custom-objects {str(path)!r} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def check_model_file(path: Path) -> Path:
    """Refuse, without importing Keras, a path that is not a readable Keras model file.

    A `.keras` file is a zip archive: its directory and every member's CRC are checked, so a
    truncated or bit-flipped file is named as such (Keras would say "File not found" or raise
    zipfile.BadZipFile). A legacy `.h5` file must open as HDF5.

    Raises:
        UsageError: the path is missing, a directory, of another format, truncated or corrupted.
    """
    if not path.exists():
        raise UsageError(f"model file {str(path)!r} does not exist; expected a .keras or .h5 file")
    if keras2.is_keras2_savedmodel(path):
        return path
    if path.is_dir():
        if kerashub.is_preset(path):
            return path
        kind = "a SavedModel directory" if (path / "saved_model.pb").exists() else "a directory"
        raise UsageError(
            f"model path {str(path)!r} is {kind}, not a model file; expected a .keras or .h5 file "
            "(save one with model.save('model.keras')) or a Keras 2 SavedModel folder (keras_metadata.pb)"
        )
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise UsageError(
            f"model file {str(path)!r} has suffix {path.suffix!r}; accepted: {', '.join(MODEL_SUFFIXES)}"
        )
    if path.suffix.lower() == ".keras":
        _check_keras_archive(path)
    else:
        _check_hdf5(path)
    return path


def _check_keras_archive(path: Path) -> None:
    damaged = (
        f"{path} is not a valid .keras file (a .keras file is a zip archive holding config.json and "
        "the weights)"
    )
    advice = "it may be truncated or corrupted; save the model again with model.save(...)"
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{damaged}: no zip directory found ({path.stat().st_size} bytes); {advice}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise UsageError(f"{damaged}: {_one_line(error)}; {advice}") from None
    if broken is not None:
        raise UsageError(f"{damaged}: member {broken!r} fails its checksum; {advice}")
    if "config.json" not in names:
        raise UsageError(f"{damaged}: the archive has no config.json; {advice}")


def _check_hdf5(path: Path) -> None:
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{path} is not a readable HDF5 model file ({_one_line(error)}); it may be truncated, "
            "corrupted or of another format; save the model again with model.save('model.keras')"
        ) from None


# Keras' wording for a class it cannot resolve ("Could not locate class 'Scale'", "Unknown layer: 'X'").
_UNKNOWN_CLASS = re.compile(
    r"(?:Could not locate (?:class|function) |Unknown (?:layer|object)[:\s]+)'?([\w.]+)"
)


def keras_load_error(path: Path, error: Exception) -> UsageError:
    """The one-line error for a model file Keras could not load."""
    text = str(error)
    tokenizer_graph = kerashub.keras_file_error(path, error) if path.suffix.lower() == ".keras" else None
    if tokenizer_graph is not None:
        return tokenizer_graph
    # Keras names a refused Lambda layer; a class name such as TFOpLambda is not one.
    if "safe_mode" in text or re.search(r"(?<![A-Za-z])Lambda\b", text):
        return UnsafeModelError(
            f"{path} contains a Lambda layer (Python code that runs when the model loads); loading "
            "it was refused. If you trust the file, pass --allow-unsafe (allow_unsafe=True)."
        )
    unknown = _UNKNOWN_CLASS.search(text)
    if unknown is not None:
        return UnsupportedModelError(
            f"{path} needs the class {unknown.group(1)!r}, which is not registered: pass the module or "
            "file that defines it with --custom-objects MODULE_OR_FILE.py (custom_objects=[...]), "
            "registered with @keras.saving.register_keras_serializable()"
        )
    return UsageError(
        f"{path} could not be loaded as a Keras model ({type(error).__name__}: {_one_line(error)}); "
        "it may be truncated, corrupted, or saved by an incompatible Keras version"
    )


def _one_line(error: BaseException, limit: int = 300) -> str:
    """The first meaningful line of an error, for one-line messages."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _h5_config(path: Path) -> Any:
    import h5py

    with h5py.File(path, "r") as handle:
        raw = handle.attrs.get("model_config")
    if raw is None:
        raise UsageError(f"{path} has no model_config: it holds weights only, not a whole model")
    return json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))


def refuse_h5_lambda(path: Path) -> None:
    """Refuse a legacy `.h5` file with Lambda layers before Keras rebuilds (and so runs) them."""
    if _mentions_lambda(_h5_config(path)):
        raise UnsafeModelError(
            f"{path} contains a Lambda layer (Python code that runs when the model loads); loading it "
            "was refused. If you trust the file, pass --allow-unsafe (allow_unsafe=True)."
        )


def _mentions_lambda(config: Any) -> bool:
    return any(layer.get("class_name") == "Lambda" for layer in keras2.layer_configs(config))
