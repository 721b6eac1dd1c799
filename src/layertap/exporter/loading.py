"""Getting a ready-to-truncate Keras model from a file or an in-memory model.

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
import logging
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
    "load_model",
    "prepare_model",
]

logger = logging.getLogger(__name__)

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(
    model_or_path: Any,
    *,
    allow_unsafe: bool = False,
    input_shape: Sequence[int] | None = None,
    custom_objects: Sequence[str | Path] = (),
    with_preprocessor: bool = False,
    sequence_length: int | None = None,
) -> Any:
    """A built keras.Model from a `.keras`/`.h5` path, a KerasHub preset directory, or a keras.Model.

    Args:
        model_or_path: path to a `.keras` or legacy `.h5` file, a Keras 2 SavedModel folder, or an
            in-memory keras.Model.
        allow_unsafe: allow files with Lambda layers (their code runs when loading).
        input_shape: shape of one sample (no batch dimension) for a Sequential model that was
            never built; ignored for models that have inputs.
        custom_objects: modules (`my_pkg.layers`) or `.py` files to import before loading, so the
            classes they register with `@keras.saving.register_keras_serializable` resolve.
            Safe mode stays on.
        with_preprocessor: for a KerasHub preset, put its text preprocessor in front of the backbone
            (`layertap.exporter.sources.kerashub`).
        sequence_length: for a preset with its preprocessor, tokens per example.

    Raises:
        UsageError: the path does not exist or is not a Keras model file.
        UnsafeModelError: the file has Lambda layers and `allow_unsafe` is False.
        UnsupportedModelError: a Sequential model without inputs and no `input_shape`.
    """
    if isinstance(model_or_path, str | os.PathLike):
        # Checked before Keras is imported (seconds), so a wrong path is reported at once.
        path = check_model_file(Path(model_or_path))
        if kerashub.is_preset(path):
            ensure_tensorflow_backend()
            return kerashub.load_preset(
                path, with_preprocessor=with_preprocessor, sequence_length=sequence_length
            )
    else:
        ensure_tensorflow_backend()
        import keras

        if not isinstance(model_or_path, keras.Model):
            raise UsageError(
                f"expected a keras.Model or the path of a .keras/.h5 file, got {type(model_or_path).__name__}"
            )
        return prepare_model(model_or_path, input_shape=input_shape)
    if with_preprocessor or sequence_length is not None:
        raise UsageError(
            f"--with-preprocessor and --sequence-length apply to a KerasHub preset directory; {path} is a "
            "model file"
        )
    if path.suffix.lower() in (".h5", ".hdf5") and not allow_unsafe:
        _refuse_h5_lambda(path)
    ensure_tensorflow_backend()
    import_custom_objects(custom_objects)
    import keras

    if _is_keras2(path):
        model = keras2.load_keras2(path, allow_unsafe=allow_unsafe)
        logger.info("converted Keras 2 model %s (%d layers)", path, len(model.layers))
        return prepare_model(model, input_shape=input_shape)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not allow_unsafe)
    except Exception as error:
        raise _load_error(path, error) from error
    logger.info("loaded %s (%s, %d layers)", path, type(model).__name__, len(model.layers))
    return prepare_model(model, input_shape=input_shape)


def _is_keras2(path: Path) -> bool:
    """Whether the file or folder needs the Keras 2 conversion (`layertap.exporter.keras2`)."""
    if path.is_dir():
        return keras2.is_keras2_savedmodel(path)
    if path.suffix.lower() == ".keras":
        return keras2.is_keras2_archive(path)
    return keras2.h5_needs_conversion(path)


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


def _load_error(path: Path, error: Exception) -> UsageError:
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


def _refuse_h5_lambda(path: Path) -> None:
    if _mentions_lambda(_h5_config(path)):
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
