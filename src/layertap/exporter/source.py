"""`ModelSource`: where a model comes from and how it loads, the one place that turns it into a keras.Model.

`export()`, `inspect_model()` and the parity check's child process (which loads the same file under
another Keras backend) all load through `ModelSource.load`, so the options that say how (custom objects,
safe mode, the shape of a never-built Sequential, a KerasHub preset's preprocessor) are declared once
and travel together, also across the process boundary (`to_json` / `from_json`).

What a path holds decides how it loads (`ModelSource.kind`):

    model       a keras.Model given in memory
    keras       a Keras 3 `.keras` file or `.h5` file Keras 3 reads as it is
    keras2      a Keras 2 artifact: SavedModel folder with keras_metadata.pb, Keras 2 `.keras` archive,
                or `.h5` with TF-op layers (converted by `layertap.exporter.keras2`)
    kerashub    a KerasHub preset directory (`layertap.exporter.sources.kerashub`)
    savedmodel  a SavedModel without a Keras model behind it: it does not load as one; `export()`
                adds signatures to its graph instead (`layertap.exporter.graph_export`)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

from layertap.errors import UsageError
from layertap.exporter import keras2
from layertap.exporter.loading import (
    check_model_file,
    ensure_tensorflow_backend,
    import_custom_objects,
    keras_load_error,
    prepare_model,
    refuse_h5_lambda,
)
from layertap.exporter.sources import kerashub

__all__ = ["LoadingKeywords", "ModelSource", "SourceKind"]

logger = logging.getLogger(__name__)

SourceKind = Literal["model", "keras", "keras2", "kerashub", "savedmodel"]


class LoadingKeywords(TypedDict, total=False):
    """`ModelSource`'s fields after `model`, as keyword arguments (see there).

    `export()` and `inspect_model()` take them as `**loading: Unpack[LoadingKeywords]` and hand them to
    `ModelSource` as they are, so an option added here reaches both without being spelled out twice.
    """

    allow_unsafe: bool
    input_shape: Sequence[int] | None
    custom_objects: Sequence[str | Path]
    with_preprocessor: bool
    sequence_length: int | None


@dataclass(frozen=True)
class ModelSource:
    """A model to export or inspect, and how to load it.

    Attributes:
        model: a keras.Model, or the path of a model file or folder (see the module docstring).
        allow_unsafe: allow files with Lambda layers (their code runs when loading).
        input_shape: shape of one sample (no batch dimension) for a Sequential model that was never
            built; ignored for models that have inputs.
        custom_objects: modules (`my_pkg.layers`) or `.py` files imported before a file loads, so the
            classes they register with `@keras.saving.register_keras_serializable` resolve. Safe mode
            stays on.
        with_preprocessor: for a KerasHub preset, put its preprocessor (text or image) in front of the
            backbone.
        sequence_length: for a preset with its preprocessor, tokens per example.
    """

    model: Any
    allow_unsafe: bool = False
    input_shape: Sequence[int] | None = None
    custom_objects: Sequence[str | Path] = ()
    with_preprocessor: bool = False
    sequence_length: int | None = None

    def __post_init__(self) -> None:
        # Tuples of plain values: the source compares, hashes and travels as JSON whatever was passed.
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(dim) for dim in self.input_shape))
        object.__setattr__(self, "custom_objects", tuple(str(source) for source in self.custom_objects))

    @property
    def path(self) -> Path | None:
        """The model's path, or None for a model in memory."""
        return Path(self.model) if isinstance(self.model, str | os.PathLike) else None

    @property
    def is_graph_savedmodel(self) -> bool:
        """A SavedModel directory without a Keras model behind it (never raises: a missing path is not)."""
        from layertap.exporter.sources.savedmodel_graph import is_savedmodel

        path = self.path
        return path is not None and is_savedmodel(path) and not keras2.is_keras2_savedmodel(path)

    def kind(self) -> SourceKind:
        """What the source holds, found without importing Keras.

        Raises:
            UsageError: the path does not exist or holds no model layertap can read (names what would).
        """
        path = self.path
        if path is None:
            return "model"
        if self.is_graph_savedmodel:
            return "savedmodel"
        check_model_file(path)
        if kerashub.is_preset(path):
            return "kerashub"
        return "keras2" if _is_keras2(path) else "keras"

    def load(self, *, tensorflow_backend: bool = True) -> Any:
        """The built keras.Model.

        Args:
            tensorflow_backend: make Keras run on TensorFlow (what a SavedModel needs). The parity check
                passes False: its child process loads the file under the backend it was trained with.

        Raises:
            UsageError: a bad path or file, a `savedmodel` source, or preset options for a model file.
            UnsafeModelError: the file has Lambda layers and `allow_unsafe` is False.
            UnsupportedModelError: a Sequential model without inputs and no `input_shape`, or Keras
                already imported with another backend.
        """
        # Checked before Keras is imported (seconds), so a wrong path is reported at once.
        kind = self.kind()
        if kind == "savedmodel":
            raise UsageError(
                f"{self.path} is a SavedModel without a Keras model: it does not load as one; export() adds "
                "signatures to its graph (`layertap inspect` lists its tensors)"
            )
        if kind != "kerashub" and (self.with_preprocessor or self.sequence_length is not None):
            shown = "a model in memory is not one" if self.path is None else f"{self.path} is a model file"
            raise UsageError(
                f"--with-preprocessor and --sequence-length apply to a KerasHub preset directory; {shown}"
            )
        if kind == "model":
            return self._in_memory(tensorflow_backend)
        path = self.path
        assert path is not None  # every other kind has one
        if kind == "kerashub":
            ensure_tensorflow_backend()
            return kerashub.load_preset(
                path, with_preprocessor=self.with_preprocessor, sequence_length=self.sequence_length
            )
        if path.suffix.lower() in (".h5", ".hdf5") and not self.allow_unsafe:
            refuse_h5_lambda(path)
        if tensorflow_backend:
            ensure_tensorflow_backend()
        import_custom_objects(self.custom_objects)
        if kind == "keras2":
            model = keras2.load_keras2(path, allow_unsafe=self.allow_unsafe)
            logger.info("converted Keras 2 model %s (%d layers)", path, len(model.layers))
            return prepare_model(model, input_shape=self.input_shape)
        import keras

        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=not self.allow_unsafe)
        except Exception as error:
            raise keras_load_error(path, error) from error
        logger.info("loaded %s (%s, %d layers)", path, type(model).__name__, len(model.layers))
        return prepare_model(model, input_shape=self.input_shape)

    def _in_memory(self, tensorflow_backend: bool) -> Any:
        if tensorflow_backend:
            ensure_tensorflow_backend()
        import keras

        if not isinstance(self.model, keras.Model):
            raise UsageError(
                f"expected a keras.Model or the path of a .keras/.h5 file, got {type(self.model).__name__}"
            )
        return prepare_model(self.model, input_shape=self.input_shape)

    def to_json(self) -> dict[str, Any]:
        """The source as JSON, for a child process (a model file only: one in memory does not travel).

        Raises:
            UsageError: the model is in memory.
        """
        if self.path is None:
            raise UsageError("a model in memory cannot be passed to another process; pass its .keras file")
        return {
            "path": str(self.path),
            "allow_unsafe": self.allow_unsafe,
            "input_shape": list(self.input_shape) if self.input_shape is not None else None,
            "custom_objects": list(self.custom_objects),
            "with_preprocessor": self.with_preprocessor,
            "sequence_length": self.sequence_length,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSource:
        """The source `to_json` wrote."""
        return cls(
            model=Path(data["path"]),
            allow_unsafe=bool(data["allow_unsafe"]),
            input_shape=data["input_shape"],
            custom_objects=data["custom_objects"],
            with_preprocessor=bool(data["with_preprocessor"]),
            sequence_length=data["sequence_length"],
        )


def _is_keras2(path: Path) -> bool:
    """Whether the file or folder needs the Keras 2 conversion (`layertap.exporter.keras2`)."""
    if path.is_dir():
        return keras2.is_keras2_savedmodel(path)
    if path.suffix.lower() == ".keras":
        return keras2.is_keras2_archive(path)
    return keras2.h5_needs_conversion(path)
