"""Pure request building shared by the sync and asyncio clients: no I/O happens here.

Turns `predict(inputs, layers)` into the calls to make (which signature, which output filter,
which batch chunk), checks inputs against the catalogue before anything is sent, and puts the
answers back together in the caller's order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from layertap.client._catalogue import Catalogue, Signature, TensorSpec
from layertap.errors import InvalidInputError, ServingError, UsageError
from layertap.names import tensorflow_name
from layertap.proto import serving_pb2 as pb
from layertap.version_folder import DEFAULT_SIGNATURE
from layertap.wire import codec

__all__ = [
    "DEFAULT_MAX_REPLY_BYTES",
    "Call",
    "Plan",
    "assemble",
    "check_inputs",
    "pinned",
    "plan_predict",
    "reply_bytes_per_example",
    "shape_text_lines",
]

Inputs = np.ndarray | Mapping[str, object] | Sequence[object]

# The largest reply one call may ask for. gRPC refuses messages of 2 GiB and more outright; a
# reply this large already takes seconds to move and holds its bytes twice while decoding.
DEFAULT_MAX_REPLY_BYTES = 256 * 1024 * 1024
# Upper bound of the bytes one element takes on the wire in EITHER encoding TF Serving may use:
# tensor_content holds the raw bytes; the typed fields hold varints for integers and 16-bit
# floats (half_val: up to 3 bytes for 2; a negative int32 varint takes 10) and fixed32/64 for
# float/double.
_WIRE_BYTES = {
    "float16": 3,
    "bfloat16": 3,
    "int8": 10,
    "int16": 10,
    "int32": 10,
    "int64": 10,
    "uint8": 2,
    "uint16": 3,
    "uint32": 5,
    "uint64": 10,
    "bool": 1,
}


@dataclass(frozen=True)
class Call:
    """One Predict request to send.

    Attributes:
        signature: the signature asked.
        request: the serialized PredictRequest.
        layers: output alias -> layer name, for the outputs this call returns.
        chunk: which batch chunk the request carries (0 when the batch is not split).
        spec: the request's ModelSpec; `arrays`, `output_filter`: its inputs and filter, kept so
            the request can be sent again pinned to one version (`pinned`).
    """

    signature: str
    request: bytes
    layers: Mapping[str, str]
    chunk: int
    spec: pb.ModelSpec
    arrays: Mapping[str, np.ndarray]
    output_filter: Sequence[str] = ()


@dataclass(frozen=True)
class Plan:
    """The calls that answer one predict(), and how to put their answers together."""

    calls: list[Call]
    layers: list[str]


def plan_predict(
    catalogue: Catalogue,
    base: pb.ModelSpec,
    inputs: Inputs,
    layers: Sequence[str] | str | None,
    *,
    max_batch_size: int | None = None,
    max_reply_bytes: int | None = DEFAULT_MAX_REPLY_BYTES,
    validate: bool = True,
) -> Plan:
    """The calls for `predict(inputs, layers)`.

    Several layers go into one call when one signature returns all of them (with an output filter
    to just those), else into one call per signature, sent concurrently. A batch is split into
    chunks along the first axis so that no chunk has more than `max_batch_size` examples and no
    reply more than `max_reply_bytes` (from the outputs' shapes and dtypes in the catalogue).

    Raises:
        LayerNotFoundError: a layer the model does not have.
        InvalidInputError: inputs that do not match the signature, or a single example whose
            reply would exceed `max_reply_bytes`.
    """
    wanted = _wanted_layers(catalogue, layers)
    groups = _signatures_for(catalogue, wanted)
    calls: list[Call] = []
    model_inputs = {alias for sig in catalogue.signatures.values() for alias in sig.inputs}
    for signature, names in groups:
        if validate:
            arrays = check_inputs(signature, inputs, layer=names[0], model_inputs=model_inputs)
        else:
            arrays = _as_dict(signature, inputs, model_inputs=model_inputs)
        aliases = {catalogue.layer(name).output.alias: name for name in names}
        outputs = [signature.outputs[alias] for alias in aliases]
        rows = _rows_per_call(signature, outputs, arrays, max_batch_size, max_reply_bytes)
        chunks = _split(arrays, rows)
        # Filtering to all of a signature's outputs is the same as no filter: send none.
        output_filter = list(aliases) if len(aliases) < len(signature.outputs) else []
        spec = pb.ModelSpec()
        spec.CopyFrom(base)
        spec.signature_name = signature.key
        for index, chunk in enumerate(chunks):
            request = codec.encode_predict_request(spec, chunk, output_filter)
            calls.append(Call(signature.key, request, aliases, index, spec, chunk, output_filter))
    return Plan(calls=calls, layers=wanted)


def pinned(call: Call, version: int) -> Call:
    """`call` again, asking for exactly `version` (so every chunk of a call meets one version)."""
    spec = pb.ModelSpec()
    spec.CopyFrom(call.spec)
    spec.ClearField("version_label")
    spec.version.value = version
    request = codec.encode_predict_request(spec, call.arrays, call.output_filter)
    return Call(call.signature, request, call.layers, call.chunk, spec, call.arrays, call.output_filter)


def reply_bytes_per_example(outputs: Sequence[TensorSpec], arrays: Mapping[str, np.ndarray]) -> int | None:
    """Upper bound of the reply bytes one example costs, or None when unknown (strings, open shapes).

    A dimension the signature leaves open (a sequence length) is taken from the inputs when an
    input has a dimension at the same axis (the usual (batch, time) -> (batch, time, features)).
    """
    total = 0
    for spec in outputs:
        if spec.shape is None or spec.dtype == "string":
            return None  # an unknown rank, or strings: no size to budget by
        elements = 1
        for axis, declared in enumerate(spec.shape[1:], start=1):
            if declared is None:
                seen = {array.shape[axis] for array in arrays.values() if array.ndim > axis}
                if len(seen) != 1:
                    return None
                elements *= seen.pop()
            else:
                elements *= declared
        dtype = spec.numpy_dtype
        itemsize = dtype.itemsize if dtype is not None else 8
        total += elements * max(itemsize, _WIRE_BYTES.get(spec.dtype, 0))
    return total


def _rows_per_call(
    signature: Signature,
    outputs: Sequence[TensorSpec],
    arrays: Mapping[str, np.ndarray],
    max_batch_size: int | None,
    max_reply_bytes: int | None,
) -> int | None:
    batches = {array.shape[0] if array.ndim else None for array in arrays.values()}
    if max_reply_bytes is None or len(batches) != 1 or None in batches:
        return max_batch_size  # no shared batch axis to split on: only max_batch_size may insist
    per_example = reply_bytes_per_example(outputs, arrays)
    if per_example is None or per_example == 0:
        return max_batch_size
    if per_example > max_reply_bytes:
        layers = ", ".join(spec.alias for spec in outputs)
        raise InvalidInputError(
            f"one example of {layers} (signature {signature.key!r}) replies with up to {per_example:,} "
            f"bytes, more than max_reply_bytes={max_reply_bytes:,}: no split can make it fit. Export a "
            f"head that reduces it on the server (e.g. layertap export --head {outputs[0].alias}_gap="
            f"{outputs[0].alias}:gap, or :float16 to halve it), or raise max_reply_bytes"
        )
    rows = max_reply_bytes // per_example
    return rows if max_batch_size is None else min(rows, max_batch_size)


def assemble(plan: Plan, results: Sequence[codec.PredictResult]) -> dict[str, np.ndarray]:
    """The outputs of a plan's calls by layer name, in the order asked, chunks joined in order.

    Raises:
        ServingError: a response lacks an output that was asked for.
    """
    parts: dict[str, dict[int, np.ndarray]] = {name: {} for name in plan.layers}
    for call, result in zip(plan.calls, results, strict=True):
        for alias, name in call.layers.items():
            if alias not in result.outputs:
                raise ServingError(
                    f"signature {call.signature!r} answered without output {alias!r} "
                    f"(got: {', '.join(result.outputs) or 'none'})"
                )
            parts[name][call.chunk] = result.outputs[alias]
    joined: dict[str, np.ndarray] = {}
    for name, chunks in parts.items():
        arrays = [chunks[index] for index in sorted(chunks)]
        joined[name] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    return joined


def check_inputs(
    signature: Signature, inputs: Inputs, *, layer: str, model_inputs: Collection[str] = ()
) -> dict[str, np.ndarray]:
    """Inputs as arrays by alias, checked against the signature before anything is sent.

    Arrays are cast to the signature's dtype only where numpy calls the cast safe; plain Python
    lists and scalars take the signature's dtype directly. Inputs of the model that this
    signature does not need (a layer that depends on some inputs only) are left out.

    Raises:
        InvalidInputError: missing or unknown aliases, a wrong rank or fixed dimension, or a dtype
            that cannot be cast safely. The message names the layer and what was expected.
    """
    arrays = _as_dict(signature, inputs, layer=layer, model_inputs=model_inputs)
    where = f"layer {layer!r} (signature {signature.key!r})"
    missing = sorted(set(signature.inputs) - set(arrays))
    extra = sorted(set(arrays) - set(signature.inputs))
    if missing or extra:
        expected = ", ".join(f"{a}: {s.describe()}" for a, s in signature.inputs.items())
        raise InvalidInputError(
            f"{where} takes inputs {{{expected}}}; missing: {missing or 'none'}, extra: {extra or 'none'}"
        )
    return {alias: _check_array(arrays[alias], spec, where) for alias, spec in signature.inputs.items()}


def shape_text_lines(lines: np.ndarray, catalogue: Catalogue, layers: Sequence[str]) -> np.ndarray:
    """One string per example (a text file's lines), shaped as the layers' one string input takes it.

    A model built on `Input((1,), dtype="string")` takes `[batch, 1]` strings, and one built on
    `Input((), dtype="string")` takes `[batch]`: both mean one string an example. Inputs of other shapes
    (several strings an example) or dtypes are left to `check_inputs`, which names what they take.
    """
    for layer in layers:
        inputs = catalogue.layer(layer).inputs
        if len(inputs) != 1:
            continue
        spec = next(iter(inputs.values()))
        if spec.dtype != "string" or spec.shape is None or len(spec.shape) < 2:
            continue
        if all(dim in (1, None) for dim in spec.shape[1:]):
            return lines.reshape((len(lines),) + (1,) * (len(spec.shape) - 1))
    return lines


def _check_array(array: np.ndarray, spec: TensorSpec, where: str) -> np.ndarray:
    expected = spec.numpy_dtype
    if expected is not None and array.dtype != expected:
        if expected.kind == "O":
            if array.dtype.kind not in "SUO":
                raise InvalidInputError(
                    f"{where}: input {spec.alias!r} expects strings ({spec.describe()}), got {array.dtype}"
                )
        elif np.can_cast(array.dtype, expected, casting="safe"):
            array = array.astype(expected)
        else:
            raise InvalidInputError(
                f"{where}: input {spec.alias!r} expects {spec.describe()}; got {array.dtype}, which "
                f"does not cast safely to {spec.dtype} (convert it first, e.g. x.astype({spec.dtype!r}))"
            )
    if spec.shape is not None:
        if array.ndim != len(spec.shape):
            raise InvalidInputError(
                f"{where}: input {spec.alias!r} expects rank {len(spec.shape)} ({spec.describe()}); "
                f"got shape {list(array.shape)}"
            )
        for axis, (want, got) in enumerate(zip(spec.shape, array.shape, strict=True)):
            if want is not None and want != got:
                raise InvalidInputError(
                    f"{where}: input {spec.alias!r} expects {spec.describe()}; got shape "
                    f"{list(array.shape)} (dimension {axis} must be {want})"
                )
    return array


def _as_dict(
    signature: Signature, inputs: Inputs, *, layer: str = "", model_inputs: Collection[str] = ()
) -> dict[str, np.ndarray]:
    if isinstance(inputs, Mapping):
        # Other signatures' inputs are the model's too: a layer that needs fewer is sent fewer.
        unused = set(model_inputs) - set(signature.inputs)
        by_key = {_input_key(signature, str(alias)): value for alias, value in inputs.items()}
        return {
            alias: _as_array(value, signature.inputs.get(alias))
            for alias, value in by_key.items()
            if alias not in unused and tensorflow_name(alias) not in unused
        }
    if len(signature.inputs) != 1:
        raise InvalidInputError(
            f"layer {layer or signature.key!r} (signature {signature.key!r}) takes "
            f"{len(signature.inputs)} inputs ({', '.join(signature.inputs)}); pass a dict by alias"
        )
    alias, spec = next(iter(signature.inputs.items()))
    return {alias: _as_array(inputs, spec)}


def _input_key(signature: Signature, alias: str) -> str:
    """An input asked for by its Keras name (`the input`) goes by its key (see `layertap.names`)."""
    if alias not in signature.inputs and tensorflow_name(alias) in signature.inputs:
        return tensorflow_name(alias)
    return alias


def _as_array(value: object, spec: TensorSpec | None) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    # Lists and scalars carry no dtype of their own: build them as the signature expects.
    dtype = spec.numpy_dtype if spec is not None else None
    return np.asarray(value, dtype=dtype)


def _wanted_layers(catalogue: Catalogue, layers: Sequence[str] | str | None) -> list[str]:
    if layers is None:
        default = catalogue.signatures.get(DEFAULT_SIGNATURE)
        if default is None:
            raise UsageError(
                f"model {catalogue.model!r} has no {DEFAULT_SIGNATURE!r} signature; name the layers: "
                f"{', '.join(catalogue.layers)}"
            )
        return [catalogue.layer(alias).name for alias in default.outputs]
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise UsageError(
            "layers=[] asks for nothing; name at least one layer, or pass None for the full model"
        )
    wanted: list[str] = []
    for name in names:
        group = catalogue.group(name) if name not in catalogue.layers else None
        # A group name (as `layertap layers` lists them) asks for every layer of the group.
        members = [catalogue.layer(alias).original_name for alias in group.outputs] if group else [name]
        wanted.extend(members)
    unique = list(dict.fromkeys(wanted))
    for name in unique:
        catalogue.layer(name)
    return unique


def _signatures_for(catalogue: Catalogue, names: list[str]) -> list[tuple[Signature, list[str]]]:
    """Which signatures to call for these layers, and the layers each one answers for."""
    if len(names) > 1:
        aliases = {catalogue.layer(name).output.alias for name in names}
        covering = [sig for sig in catalogue.groups if aliases <= set(sig.outputs)]
        if covering:
            best = min(covering, key=lambda sig: (len(sig.outputs), sig.key))
            return [(best, names)]
    by_signature: dict[str, list[str]] = {}
    for name in names:
        by_signature.setdefault(catalogue.layer(name).signature, []).append(name)
    return [(catalogue.signatures[key], group) for key, group in by_signature.items()]


def _split(arrays: dict[str, np.ndarray], max_batch_size: int | None) -> list[dict[str, np.ndarray]]:
    if max_batch_size is None or not arrays:
        return [arrays]
    if max_batch_size < 1:
        raise UsageError(f"max_batch_size must be at least 1, got {max_batch_size}")
    batches = {alias: array.shape[0] if array.ndim else None for alias, array in arrays.items()}
    sizes = set(batches.values())
    if None in sizes or len(sizes) != 1:
        raise InvalidInputError(
            "max_batch_size splits inputs along their first axis, so they must share a batch size; "
            f"got {batches}"
        )
    batch = sizes.pop()
    assert batch is not None
    if batch <= max_batch_size:
        return [arrays]
    return [
        {alias: array[start : start + max_batch_size] for alias, array in arrays.items()}
        for start in range(0, batch, max_batch_size)
    ]
