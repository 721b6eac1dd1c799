"""Keras 2 artifacts as Keras 3 models: legacy SavedModel folders, tf_keras `.keras` files, and `.h5`
files holding TF-op layers.

Keras 2 (`tf_keras`, and `tf.keras` before TensorFlow 2.16) saved three kinds of files Keras 3 cannot
read as they are:

- a SavedModel folder with `keras_metadata.pb` (`model.save(dir)`, Keras 2's default format);
- a `.keras` archive whose config names Keras 2's classes (`tf_keras.src.engine.functional`,
  `Functional`): Keras 3 refuses it with "Could not locate class 'Functional'";
- any model whose graph calls TensorFlow functions on Keras tensors (`x + 1.0`, `tf.nn.relu(x)`,
  `x[:, :4]`): Keras 2 recorded each call as a `TFOpLambda` or `SlicingOpLambda` layer, classes that
  exist only in Keras 2 (tf_keras/src/layers/core/tf_op_layer.py). tf_keras' own applications hold them
  (RegNet's residual additions, for one).

The route is a conversion, measured exact: the first two are loaded with `tf_keras` (the `keras2`
extra, the tf_keras release matching the installed TensorFlow) and written as `.h5`, which Keras 3's
legacy loader reads with the same layer names and weights (Keras 2's own `.h5` format). TF-op layers
become `layertap>TFOpLambda` layers that call the same TensorFlow function with the same recorded
arguments, so every layer keeps its name and a truncated signature runs the very ops Keras 2 ran.
Running the tf_keras model itself was the other way: it would need a second truncation and tracing
path for Keras 2's graph API; after conversion the model takes the exporter's one path.

A TF-op layer names its function (`"nn.relu"`), which is looked up in `tf`: no Python code is loaded.
Functions that reach outside the tensors (files, Python callbacks, printing, raw ops) are refused
unless `allow_unsafe` is given, as Lambda layers are.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from layertap.errors import UnsafeModelError, UnsupportedModelError, UsageError
from layertap.exporter.keras2_foreign import foreign_classes
from layertap.exporter.keras2_layers import (
    SUBCLASSED_IDENTIFIER,
    VOCABULARY_LAYERS,
    is_reference,
    keras2_functions,
    keyword_tensors_node,
    lambda_classes,
    literal_strings,
    op_layer_node,
    renamed_layers,
    rewrite_layer,
    root_identifier,
)

__all__ = [
    "KERAS2_OP_LAYERS",
    "h5_needs_conversion",
    "is_keras2_archive",
    "is_keras2_savedmodel",
    "layer_configs",
    "load_keras2",
    "op_layers_in",
]

logger = logging.getLogger(__name__)

#: Keras 2 layer classes that record a TensorFlow function call; converted here.
KERAS2_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")
# Keras 2 classes recording attribute access on a tensor (`x.shape`, `tf.RaggedTensor.from_row_lengths`):
# not converted, named in the refusal.
_UNCONVERTED = ("ClassMethod", "InstanceMethod", "InstanceProperty")

# TensorFlow namespaces and functions whose effects reach outside the tensors: refused unless unsafe.
_UNSAFE_PREFIXES = (
    "io.",
    "raw_ops.",
    "debugging.",
    "summary.",
    "saved_model.",
    "data.",
    "distribute.",
    "config.",
    "compat.v1.py_func",
    "compat.v1.io.",
)
_UNSAFE_FUNCTIONS = frozenset({"print", "py_function", "numpy_function", "function", "compat.v1.Print"})

_EXTRA_HINT = "install the Keras 2 route with: pip install 'layertap[keras2]' (tf_keras for your TensorFlow)"


def is_keras2_savedmodel(path: Path) -> bool:
    """Whether `path` is a Keras 2 SavedModel folder (it holds `keras_metadata.pb`) whose model Keras 3
    can rebuild: a Functional or Sequential model, not a subclassed one (`keras2_layers.root_identifier`:
    a subclassed model has no layer graph in its config, only Python code, so its folder takes the
    SavedModel graph route instead), holding no layer with a vocabulary table (`VOCABULARY_LAYERS`: the
    conversion goes through `.h5`, which cannot carry a table, while the graph route rebuilds it)."""
    metadata = path / "keras_metadata.pb"
    if not (path.is_dir() and metadata.is_file()):
        return False
    data = metadata.read_bytes()
    if any(f'"class_name": "{name}"'.encode() in data for name in VOCABULARY_LAYERS):
        return False
    return root_identifier(data) != SUBCLASSED_IDENTIFIER


def is_keras2_archive(path: Path) -> bool:
    """Whether a `.keras` archive was written by Keras 2 (`metadata.json` says keras_version 2.x)."""
    with contextlib.suppress(KeyError, ValueError, OSError, zipfile.BadZipFile), zipfile.ZipFile(path) as zf:
        metadata = json.loads(zf.read("metadata.json"))
        return str(metadata.get("keras_version", "")).startswith("2.")
    return False


def h5_needs_conversion(path: Path) -> bool:
    """Whether Keras 3 needs the conversion to read this `.h5` file: TF-op layers, or any model Keras 2
    wrote. A Keras 2 model may hold another Functional model (see `_shifted_models`), layers whose config
    Keras 3 reads differently (`keras2_layers`), or layer classes only tf_keras has (`keras2_foreign`);
    which classes Keras 3 lacks is only known once Keras is imported, and this check must not import it."""
    import h5py

    with h5py.File(path, "r") as handle:
        raw = handle.attrs.get("model_config")
        version = handle.attrs.get("keras_version", b"")
    if raw is None:
        return False
    config = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    written_by_keras2 = (version.decode() if isinstance(version, bytes) else str(version)).startswith("2.")
    return written_by_keras2 or bool(op_layers_in(config))


def op_layers_in(config: Any) -> list[str]:
    """Names of the Keras 2 TF-op layers in a model config (nested models included)."""
    found: list[str] = []
    for layer in layer_configs(config):
        if layer.get("class_name") in (*KERAS2_OP_LAYERS, *_UNCONVERTED):
            found.append(str(layer.get("config", {}).get("name", layer.get("name", "?"))))
    return found


def load_keras2(path: Path, *, allow_unsafe: bool = False) -> Any:
    """A Keras 3 model from a Keras 2 artifact (see the module docstring): same layer names, same weights.

    Args:
        path: a Keras 2 SavedModel folder, a Keras 2 `.keras` archive, or an `.h5` file.
        allow_unsafe: allow Lambda layers (their code runs) and TF-op layers calling unsafe functions.

    Raises:
        UsageError: tf_keras is needed and not installed (the message gives the extra).
        UnsafeModelError: Lambda layers or unsafe TF functions, and `allow_unsafe` is False.
        UnsupportedModelError: layers that record attribute access (`x.shape`), not converted.
    """
    if path.suffix.lower() in (".h5", ".hdf5"):
        return _load_h5(path, allow_unsafe=allow_unsafe)
    with tempfile.TemporaryDirectory(prefix="layertap-keras2-") as folder:
        h5 = Path(folder) / "model.h5"
        _resave_as_h5(path, h5, allow_unsafe=allow_unsafe)
        return _load_h5(h5, allow_unsafe=allow_unsafe, shown=path)


def _resave_as_h5(path: Path, target: Path, *, allow_unsafe: bool) -> None:
    """Load `path` with tf_keras and write it as a Keras 2 `.h5` file (config and weights)."""
    kind = "a Keras 2 SavedModel folder" if path.is_dir() else "a .keras file written by Keras 2"
    # tf_keras rebuilds Lambda layers from the Python bytecode in the metadata when it loads.
    lambdas = path.is_dir() and b'"class_name": "Lambda"' in (path / "keras_metadata.pb").read_bytes()
    if lambdas and not allow_unsafe:
        raise UnsafeModelError(
            f"{path} contains a Lambda layer (Python code that runs when the model loads); loading it "
            "was refused. If you trust the folder, pass --allow-unsafe (allow_unsafe=True)."
        )
    try:
        import tf_keras
    except ModuleNotFoundError:
        raise UsageError(f"{path} is {kind}, which Keras 3 cannot read; {_EXTRA_HINT}") from None
    options: dict[str, Any] = {"compile": False}
    if not path.is_dir():
        options["safe_mode"] = not allow_unsafe
    try:
        model = tf_keras.models.load_model(str(path), **options)
    except Exception as error:
        text = " ".join(str(error).split())[:300]
        if "safe_mode" in text or "Lambda" in text.replace("OpLambda", ""):
            raise UnsafeModelError(
                f"{path} contains a Lambda layer (Python code that runs when the model loads); loading it "
                "was refused. If you trust the file, pass --allow-unsafe (allow_unsafe=True)."
            ) from None
        raise UsageError(
            f"{path} is {kind}, and tf_keras {tf_keras.__version__} could not load it "
            f"({type(error).__name__}: {text})"
        ) from error
    logger.info("loaded %s with tf_keras %s (%s)", path, tf_keras.__version__, type(model).__name__)
    try:
        model.save(str(target), save_format="h5")
    except NotImplementedError as error:  # state `.h5` cannot hold: a lookup layer's table
        raise UnsupportedModelError(
            f"{path} is {kind} holding state Keras 2's .h5 format cannot carry, and the conversion to "
            f"Keras 3 goes through it (tf_keras: {' '.join(str(error).split())[:200]}); save it as a "
            "SavedModel folder (model.save(DIR, save_format='tf')): layertap exports its inner tensors"
        ) from error


def _load_h5(path: Path, *, allow_unsafe: bool, shown: Path | None = None) -> Any:
    """Keras 3 reads the `.h5` file, its TF-op layers converted."""
    import h5py
    import keras

    shown = shown or path
    with h5py.File(path, "r") as handle:
        raw = handle.attrs.get("model_config")
    config = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    unconverted = [
        layer.get("class_name") for layer in layer_configs(config) if layer.get("class_name") in _UNCONVERTED
    ]
    if unconverted:
        raise UnsupportedModelError(
            f"{shown} records attribute access on tensors ({', '.join(sorted(set(map(str, unconverted))))} "
            "layers, e.g. x.shape), which layertap does not convert from Keras 2; rebuild those steps with "
            "Keras layers or keras.ops and save the model again"
        )
    converted = _convert_config(config, allow_unsafe=allow_unsafe, shown=shown)
    foreign = foreign_classes(converted, shown=str(shown))
    with _copy_with_config(path, converted) as copy_path:
        try:
            # Lambda code runs only when allowed (the same refusal as Keras 3's safe mode, before).
            lambdas = lambda_classes() if allow_unsafe else {}
            return keras.saving.load_model(
                copy_path,
                compile=False,
                safe_mode=not allow_unsafe,
                custom_objects={
                    **literal_strings(converted),
                    **keras2_functions(),
                    **_op_layer_classes(),
                    **lambdas,
                    **foreign,
                },
            )
        except UsageError:
            raise
        except Exception as error:
            text = " ".join(str(error).split())[:300]
            raise UsageError(
                f"{shown} was saved by Keras 2 and could not be converted for Keras 3 "
                f"({type(error).__name__}: {text})"
            ) from error


@contextlib.contextmanager
def _copy_with_config(path: Path, config: dict[str, Any]) -> Iterator[Path]:
    """A temporary copy of the `.h5` file whose model_config is `config` (the original is untouched)."""
    import h5py

    with tempfile.TemporaryDirectory(prefix="layertap-keras2-") as folder:
        target = Path(folder) / path.name
        shutil.copyfile(path, target)
        with h5py.File(target, "r+") as handle:
            handle.attrs["model_config"] = json.dumps(config).encode()
        yield target


def layer_configs(config: Any) -> Iterator[dict[str, Any]]:
    """Every layer config of a model config, nested models' layers too."""
    if isinstance(config, dict):
        if "class_name" in config and "config" in config:
            yield config
        for value in config.values():
            yield from layer_configs(value)
    elif isinstance(config, list):
        for value in config:
            yield from layer_configs(value)


def _convert_config(config: dict[str, Any], *, allow_unsafe: bool, shown: Path) -> dict[str, Any]:
    """The config with Keras 2's layer names, configs and nodes rewritten for Keras 3's legacy reader.

    Keras 2 wrote a tensor passed by keyword (`y` of `x + y`, `value=` of MultiHeadAttention) as
    `[layer, node, tensor]` inside the node's keyword arguments, which Keras 3's legacy reader passes on
    as they are: such nodes, and every TF-op layer's, are written in Keras 3's node format, whose reader
    resolves tensors anywhere in the arguments (`keras2_layers.keyword_tensors_node`, `op_layer_node`).
    """
    converted = renamed_layers(copy.deepcopy(config), shown=str(shown))
    shifted = _shifted_models(converted)
    for layer in layer_configs(converted):
        rewrite_layer(layer, shown=str(shown))
        if shifted and isinstance(layer.get("inbound_nodes"), list):
            layer["inbound_nodes"] = _shift_references(layer["inbound_nodes"], shifted)
        if layer.get("class_name") not in KERAS2_OP_LAYERS:
            if isinstance(layer.get("inbound_nodes"), list):
                layer["inbound_nodes"] = [keyword_tensors_node(node) for node in layer["inbound_nodes"]]
            continue
        function = str(layer["config"].get("function", ""))
        if not allow_unsafe and _unsafe(function):
            raise UnsafeModelError(
                f"{shown}: layer {layer['config'].get('name')!r} calls tf.{function}, which reaches outside "
                "the tensors (files, Python code, printing or raw ops); loading it was refused. If you "
                "trust the file, pass --allow-unsafe (allow_unsafe=True)."
            )
        layer["inbound_nodes"] = [op_layer_node(node) for node in layer.get("inbound_nodes", [])]
    return converted


def _shifted_models(config: Any) -> set[str]:
    """Names of the nested models whose calls Keras 2 numbered from 1.

    A Functional model built on an Input (and a Sequential starting with an InputLayer) has a first
    node of its own in Keras 2, which the config skips: its calls are nodes 1, 2... there
    (`_should_skip_first_node` in tf_keras/src/engine/functional.py). Keras 3 has no such node and
    reads the indices as they are (`deserialize_node`, keras/src/models/functional.py), so an outer
    layer fed by a nested Keras 2 model is "disconnected" unless the index is lowered by one.
    """
    names: set[str] = set()
    for layer in layer_configs(config):
        inner = layer.get("config")
        if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
            continue
        kind = layer.get("class_name")
        first = inner["layers"][0] if inner["layers"] else {}
        if kind in ("Functional", "Model") or (
            kind == "Sequential" and isinstance(first, dict) and first.get("class_name") == "InputLayer"
        ):
            names.add(str(inner.get("name", layer.get("name"))))
    return names


def _shift_references(value: Any, shifted: set[str]) -> Any:
    if is_reference(value[:3] if isinstance(value, list) and len(value) == 4 else value):
        if value[0] in shifted and value[1] >= 1:
            return [value[0], value[1] - 1, *value[2:]]
        return [*value[:3], *[_shift_references(rest, shifted) for rest in value[3:]]]
    if isinstance(value, list):
        return [_shift_references(item, shifted) for item in value]
    if isinstance(value, dict):
        return {key: _shift_references(item, shifted) for key, item in value.items()}
    return value


def _unsafe(function: str) -> bool:
    return function in _UNSAFE_FUNCTIONS or function.startswith(_UNSAFE_PREFIXES)


def _resolve(function: str) -> Any:
    """`"nn.relu"` -> tf.nn.relu, as Keras 2 named it (its canonical TensorFlow API name)."""
    import tensorflow as tf

    target: Any = tf
    for part in function.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise UnsupportedModelError(
                f"TF-op layer calls tf.{function}, which TensorFlow {tf.__version__} does not have"
            )
    return target


_CLASSES: dict[str, type] = {}


def _op_layer_classes() -> dict[str, type]:
    """Keras 3 layers standing for Keras 2's TFOpLambda and SlicingOpLambda (defined once Keras is
    imported)."""
    if _CLASSES:
        return _CLASSES
    import keras

    @keras.saving.register_keras_serializable(package="layertap", name="TFOpLambda")
    class TFOpLambda(keras.layers.Layer):  # type: ignore[misc]
        """Calls `tf.<function>` with the arguments Keras 2 recorded (`keras2_layers.op_layer_node`)."""

        def __init__(self, function: str, **kwargs: Any) -> None:
            kwargs.pop("autocast", None)
            super().__init__(**kwargs)
            self.function = function
            self._op = _resolve(function)

        def call(self, first: Any, **kwargs: Any) -> Any:
            return self._op(first, **kwargs)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "function": self.function}

    @keras.saving.register_keras_serializable(package="layertap", name="SlicingOpLambda")
    class SlicingOpLambda(TFOpLambda):
        """A Keras 2 slice (`x[:, :4]`): its slices were written as {start, stop, step} dicts."""

        def call(self, first: Any, **kwargs: Any) -> Any:
            return super().call(first, **{key: _slices(value) for key, value in kwargs.items()})

    _CLASSES.update({"TFOpLambda": TFOpLambda, "SlicingOpLambda": SlicingOpLambda})
    return _CLASSES


def _slices(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"start", "stop", "step"}:
        return slice(value["start"], value["stop"], value["step"])
    if isinstance(value, list):
        return [_slices(item) for item in value]
    return value
