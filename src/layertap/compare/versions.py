"""Where a compared version comes from: a version directory, or a version a server is serving.

The comparison only needs, per version, its signatures (input and output shapes and dtypes, space ids),
its manifest when it has one, and a way to run rows through a signature. `Version` is that seam;
`open_version` picks the reader for a location, and a remote repository (gs://) plugs in here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from layertap.errors import UsageError
from layertap.storage import ObjectLocation, parse_location
from layertap.version_folder import MANIFEST_PATH, has_saved_model, parse_manifest, read_manifest

__all__ = ["ROWS_PER_CALL", "LocalVersion", "ServedVersion", "SignatureSpec", "Version", "open_version"]

# Rows sent through a signature at once: bounds the memory of large activations (and, served, the
# message size) whatever the number of probe rows.
ROWS_PER_CALL = 64

Spec = tuple[tuple[int | None, ...], str]


@dataclass(frozen=True)
class SignatureSpec:
    """A signature's inputs and outputs (alias -> (shape with batch None, dtype)) and its space id."""

    inputs: Mapping[str, Spec]
    outputs: Mapping[str, Spec]
    space: str | None = None
    layers: tuple[str, ...] = field(default=())


class Version(Protocol):
    """One version as the comparison sees it."""

    @property
    def description(self) -> str:
        """Where it is, for messages ("models/cnn/2", "127.0.0.1:8500 cnn version 2")."""

    @property
    def number(self) -> int | None:
        """Its version number, when known."""

    def manifest(self) -> dict[str, Any] | None:
        """The exporter's manifest, or None (a served version, or a SavedModel layertap did not write)."""

    def signatures(self) -> dict[str, SignatureSpec]:
        """Its signatures by key (serving_default included)."""

    def run(self, key: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run `inputs` (arrays by input alias, batch first) through signature `key`; arrays by output."""


def open_version(location: str | os.PathLike[str]) -> Version:
    """The version at `location`: a version directory (`models/cnn/2`, `file:///...`) or `gs://...`.

    Raises:
        UsageError: the location is not a version directory, or its scheme cannot be read here
            (LocationError for a malformed or unknown URI).
    """
    text = os.fspath(location)
    parsed = parse_location(text)
    if isinstance(parsed, ObjectLocation):
        if parsed.scheme != "gs":
            raise UsageError(
                f"cannot read version {text!r}: {parsed.scheme}:// is not readable here; accepted: a local "
                "version directory, or gs:// (TF Serving's only remote filesystem, read through TensorFlow's)"
            )
        return LocalVersion(str(parsed))
    path = parsed
    if not has_saved_model(path):
        raise UsageError(
            f"{text!r} is not a version directory (no saved_model.pb in it); give the numbered directory "
            "of a version, e.g. models/cnn/2"
        )
    return LocalVersion(path)


class LocalVersion:
    """A version directory, run in this process by TensorFlow (loaded on the first `run`).

    A gs:// location is read through TensorFlow's own filesystem layer, which registers gs:// (the
    same code TF Serving reads it with).
    """

    def __init__(self, location: str | Path) -> None:
        self._location = location
        self._manifest: dict[str, Any] | None = None
        self._manifest_read = False
        self._loaded: Any = None

    @property
    def description(self) -> str:
        return str(self._location)

    @property
    def number(self) -> int | None:
        name = str(self._location).rstrip("/").rsplit("/", 1)[-1]
        return int(name) if name.isdigit() else None

    def manifest(self) -> dict[str, Any] | None:
        if not self._manifest_read:
            self._manifest_read = True
            if isinstance(self._location, Path):
                self._manifest = read_manifest(self._location)
            else:
                self._manifest = _read_remote_manifest(self._location)
        return self._manifest

    def signatures(self) -> dict[str, SignatureSpec]:
        manifest = self.manifest()
        if manifest is not None and isinstance(manifest.get("signatures"), dict):
            return {key: _from_manifest(entry) for key, entry in manifest["signatures"].items()}
        return self._signatures_from_graph()

    def run(self, key: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        function = self._load().signatures[key]
        rows = len(next(iter(inputs.values())))
        parts: list[dict[str, np.ndarray]] = []
        for start in range(0, rows, ROWS_PER_CALL):
            chunk = {
                alias: tf.constant(array[start : start + ROWS_PER_CALL]) for alias, array in inputs.items()
            }
            parts.append({alias: tensor.numpy() for alias, tensor in function(**chunk).items()})
        return {alias: np.concatenate([part[alias] for part in parts]) for alias in parts[0]}

    def _load(self) -> Any:
        if self._loaded is None:
            import tensorflow as tf

            self._loaded = tf.saved_model.load(str(self._location))
        return self._loaded

    def _signatures_from_graph(self) -> dict[str, SignatureSpec]:
        found = {}
        for key, function in self._load().signatures.items():
            _, keywords = function.structured_input_signature
            outputs = function.structured_outputs
            found[key] = SignatureSpec(
                inputs={alias: _tf_spec(spec) for alias, spec in sorted(keywords.items())},
                outputs={alias: _tf_spec(spec) for alias, spec in sorted(outputs.items())},
            )
        return found


def _tf_spec(spec: Any) -> Spec:
    shape = spec.shape.as_list() if spec.shape.rank is not None else []
    return tuple(shape), spec.dtype.name


def _read_remote_manifest(location: str) -> dict[str, Any] | None:
    import tensorflow as tf

    path = f"{location.rstrip('/')}/{MANIFEST_PATH.as_posix()}"
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as handle:
        return parse_manifest(handle.read(), path)


def _from_manifest(entry: Mapping[str, Any]) -> SignatureSpec:
    def specs(tensors: Mapping[str, Any]) -> dict[str, Spec]:
        return {
            alias: (tuple(tensor["shape"]), str(tensor["dtype"])) for alias, tensor in sorted(tensors.items())
        }

    return SignatureSpec(
        inputs=specs(entry.get("inputs", {})),
        outputs=specs(entry.get("outputs", {})),
        space=entry.get("space"),
        layers=tuple(entry.get("layers", ())),
    )


class ServedVersion:
    """A version a server (TF Serving or `layertap serve`) serves, asked over gRPC (no TensorFlow)."""

    def __init__(self, target: str, model: str, version: int, **client_options: Any) -> None:
        from layertap.client import LayerClient, ServingClient

        self._target, self._model, self._version = target, model, version
        self._catalogue = LayerClient(target, model, version=version, **client_options)
        self._client = ServingClient(target, model, version=version, **client_options)

    @property
    def description(self) -> str:
        return f"{self._target} {self._model} version {self._version}"

    @property
    def number(self) -> int | None:
        return self._version

    def manifest(self) -> dict[str, Any] | None:
        return None

    def signatures(self) -> dict[str, SignatureSpec]:
        catalogue = self._catalogue.layers()
        return {
            key: SignatureSpec(
                inputs={alias: (spec.shape or (), spec.dtype) for alias, spec in signature.inputs.items()},
                outputs={alias: (spec.shape or (), spec.dtype) for alias, spec in signature.outputs.items()},
                space=signature.space,
            )
            for key, signature in catalogue.signatures.items()
        }

    def run(self, key: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(inputs.values())))
        parts = [
            self._client.predict(
                {alias: array[start : start + ROWS_PER_CALL] for alias, array in inputs.items()},
                signature=key,
            )
            for start in range(0, rows, ROWS_PER_CALL)
        ]
        return {alias: np.concatenate([part[alias] for part in parts]) for alias in parts[0]}

    def close(self) -> None:
        """Close both channels."""
        self._catalogue.close()
        self._client.close()
