"""What a served model offers: its signatures, and which signature answers for each layer.

Built from GetModelMetadata. layertap's exporter names each signature and its one output after the
layer (its path `outer/inner` for nested layers); `serving_default` is the full model; signatures
with several outputs are groups that answer for several layers in one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from layertap.client._errors import nearest
from layertap.errors import LayerNotFoundError, ServingError, TensorFormatError
from layertap.names import SPACE_KEY, original_name, tensorflow_name
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.version_folder import DEFAULT_SIGNATURE
from layertap.wire import dtypes

__all__ = [
    "Catalogue",
    "Layer",
    "Signature",
    "TensorSpec",
    "metadata_request",
    "parse_metadata",
]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature.

    Attributes:
        alias: the name the request or response uses for it.
        dtype: TensorFlow's name for the dtype ("float32"), or "DT_..." for dtypes layertap cannot convert.
        shape: dimensions with None where any size is accepted; None when even the rank is unknown.
    """

    alias: str
    dtype: str
    shape: tuple[int | None, ...] | None

    @property
    def numpy_dtype(self) -> np.dtype[np.generic] | None:
        """The numpy dtype arrays of this tensor have, or None for one layertap cannot convert."""
        info = next((i for i in dtypes.DTYPES.values() if i.name == self.dtype), None)
        return info.numpy if info is not None else None

    def describe(self) -> str:
        """ "float32[?, 28, 28, 1]"-style text for messages and listings."""
        dims = "?" if self.shape is None else ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


@dataclass(frozen=True)
class Signature:
    """One signature of the served model.

    Attributes:
        space: its embedding-space id (`sha256:...`), which layertap's exporter stamps into the
            SignatureDef; None for a signature exported otherwise.
    """

    key: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]
    space: str | None = None


@dataclass(frozen=True)
class Layer:
    """A layer the served model can answer for.

    Attributes:
        name: the layer's key (its name or path), which is also its output alias.
        signature: the signature to ask: the layer's own one, else a group that contains it.
        inputs: the signature's inputs by alias.
        output: the layer's output in that signature.
    """

    name: str
    signature: str
    inputs: Mapping[str, TensorSpec]
    output: TensorSpec

    @property
    def original_name(self) -> str:
        """The layer's name in Keras, when TensorFlow needed another key (e.g. `block 2`)."""
        return original_name(self.name)


@dataclass(frozen=True)
class Catalogue:
    """The layers and signatures of one model version, as GetModelMetadata describes them."""

    model: str
    version: int | None
    signatures: Mapping[str, Signature]
    layers: Mapping[str, Layer]

    @property
    def groups(self) -> list[Signature]:
        """Signatures that answer for several layers in one call."""
        return [sig for sig in self.signatures.values() if len(sig.outputs) > 1]

    def layer(self, name: str) -> Layer:
        """The layer called `name`: its key, or the name it had in Keras (see `layertap.names`).

        Raises:
            LayerNotFoundError: no such layer; lists the layers and the nearest names.
        """
        found = self.layers.get(name) or self.layers.get(tensorflow_name(name))
        if found is not None:
            return found
        tensors = [n for n in self.layers if n.startswith(f"{name}:") and n[len(name) + 1 :].isdigit()]
        if tensors:
            # The exporter names the tensors of a layer with several outputs "<layer>:<index>".
            raise LayerNotFoundError(
                f"layer {name!r} of model {self.model!r} has {len(tensors)} output tensors; "
                f"ask for them by name: {', '.join(sorted(tensors, key=_tensor_index))}"
            )
        close = nearest(name, list(self.layers))
        hint = f" Nearest: {', '.join(close)}." if close else ""
        raise LayerNotFoundError(
            f"model {self.model!r} has no layer {name!r}. Layers: {', '.join(self.layers) or '(none)'}."
            + hint
        )

    def space_of(self, name: str) -> str | None:
        """The embedding-space id of the signature that answers for layer `name` (None if unstamped).

        Raises:
            LayerNotFoundError: no such layer.
        """
        return self.signatures[self.layer(name).signature].space

    def group(self, name: str) -> Signature | None:
        """The group signature called `name` (its key or its Keras name), or None."""
        for key in (name, tensorflow_name(name)):
            signature = self.signatures.get(key)
            if signature is None or len(signature.outputs) < 2:
                continue
            # The signature of ONE layer with several output tensors (`split:0`, `split:1`) is no
            # group: that layer is asked for tensor by tensor.
            if not all(alias.startswith(f"{key}:") for alias in signature.outputs):
                return signature
        return None


def _tensor_index(alias: str) -> int:
    return int(alias.rsplit(":", 1)[1])


def metadata_request(spec: pb.ModelSpec) -> bytes:
    """A GetModelMetadataRequest asking for the signature definitions."""
    request = pb.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.CopyFrom(spec)
    return request.SerializeToString()


def parse_metadata(data: bytes, model: str) -> Catalogue:
    """The Catalogue in GetModelMetadataResponse bytes.

    Raises:
        ServingError: the response carries no SignatureDefMap.
    """
    response = pb.GetModelMetadataResponse.FromString(data)
    packed = response.metadata.get("signature_def")
    if (
        packed is None
        or packed.type_url.rsplit("/", 1)[-1] != methods.SIGNATURE_DEF_MAP_TYPE_URL.rsplit("/", 1)[-1]
    ):
        found = packed.type_url if packed is not None else ", ".join(response.metadata) or "nothing"
        raise ServingError(
            f"GetModelMetadata for {model!r} answered without a SignatureDefMap (got {found}); "
            f"expected metadata['signature_def'] of type {methods.SIGNATURE_DEF_MAP_TYPE_URL}"
        )
    # Parsed by bytes: the Any names tensorflow.serving.SignatureDefMap, ours has the same fields.
    signature_map = pb.SignatureDefMap.FromString(packed.value)
    # TF Serving lists every SignatureDef, including TF2's "__saved_model_init_op", which is no layer.
    signatures = {
        key: Signature(key, _specs(definition.inputs), _specs(definition.outputs), _space(definition))
        for key, definition in sorted(signature_map.signature_def.items())
        if not key.startswith("__")
    }
    version = response.model_spec.version.value if response.model_spec.HasField("version") else None
    return Catalogue(model=model, version=version, signatures=signatures, layers=_layers(signatures))


def _layers(signatures: Mapping[str, Signature]) -> dict[str, Layer]:
    """Each layer with the cheapest signature that answers for it.

    A layer's own single-output signature runs only the layers it needs; a group (or the full
    model) computes all its outputs whichever are asked for (output_filter saves no compute).
    """
    layers: dict[str, Layer] = {}
    ranked = sorted(
        signatures.values(),
        key=lambda sig: (len(sig.outputs) != 1, sig.key == DEFAULT_SIGNATURE, len(sig.outputs), sig.key),
    )
    for sig in ranked:
        if len(sig.outputs) == 1 and sig.key != DEFAULT_SIGNATURE:
            alias, spec = next(iter(sig.outputs.items()))
            name = sig.key
            layers.setdefault(name, Layer(name, sig.key, sig.inputs, spec))
        else:
            for alias, spec in sig.outputs.items():
                layers.setdefault(alias, Layer(alias, sig.key, sig.inputs, spec))
    return dict(sorted(layers.items()))


def _space(definition: pb.SignatureDef) -> str | None:
    """The space id layertap's exporter keeps in the SignatureDef's `defaults` (no input has its key)."""
    if SPACE_KEY not in definition.defaults:
        return None
    values = definition.defaults[SPACE_KEY].string_val
    return values[0].decode("ascii", "replace") if len(values) == 1 else None


def _specs(infos: Mapping[str, pb.TensorInfo]) -> dict[str, TensorSpec]:
    return {alias: _spec(alias, info) for alias, info in sorted(infos.items())}


def _spec(alias: str, info: pb.TensorInfo) -> TensorSpec:
    try:
        dtype = dtypes.from_proto(info.dtype).name
    except TensorFormatError:
        dtype = dtypes.name_of(info.dtype)
    shape: tuple[int | None, ...] | None = None
    if info.HasField("tensor_shape") and not info.tensor_shape.unknown_rank:
        shape = tuple(None if dim.size < 0 else dim.size for dim in info.tensor_shape.dim)
    return TensorSpec(alias, dtype, shape)
