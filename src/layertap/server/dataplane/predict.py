"""Predict on one servable, with TF Serving's checks in TF Serving's order and words.

Order (from TF Serving's predict_util.cc): find the signature (FAILED_PRECONDITION), compare the
number of inputs (INVALID_ARGUMENT listing what was sent, extra and missing), match every input alias,
check dtypes, resolve `output_filter` (unknown or repeated aliases), then run the session. Shared by
the Predict RPC and warmup replay, so both behave the same.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from layertap.errors import TensorFormatError
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.server.dataplane import metrics
from layertap.server.runtime.servable import Servable
from layertap.server.status import Internal, InvalidArgument, SignatureNotFound
from layertap.version_folder import DEFAULT_SIGNATURE
from layertap.wire import dtypes

__all__ = ["Prediction", "predict"]

# The method names a Predict accepts under --enable_signature_method_name_check, in predict_util.cc's order.
_PREDICTABLE = (methods.PREDICT_METHOD_NAME, methods.CLASSIFY_METHOD_NAME, methods.REGRESS_METHOD_NAME)


class Prediction:
    """A successful Predict: the echoed ModelSpec and the output arrays by alias."""

    def __init__(self, model_spec: pb.ModelSpec, outputs: dict[str, np.ndarray]) -> None:
        self.model_spec = model_spec
        self.outputs = outputs


def _resolve_signature(servable: Servable, signature_name: str) -> tuple[str, pb.SignatureDef]:
    """The signature a request names (empty = `serving_default`).

    Raises:
        SignatureNotFound: FAILED_PRECONDITION `Serving signature key "x" not found.`
    """
    key = signature_name or DEFAULT_SIGNATURE
    signature = servable.signatures.get(key)
    if signature is None:
        raise SignatureNotFound(f'Serving signature key "{key}" not found.')
    return key, signature


def _check_inputs(signature: pb.SignatureDef, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    sent, expected = set(inputs), set(signature.inputs)
    if len(sent) != len(expected):
        raise InvalidArgument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - sent))}}}."
        )
    for alias in sorted(sent - expected):
        raise InvalidArgument(
            f"input tensor alias not found in signature: {alias}. "
            f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}."
        )
    feeds: dict[str, np.ndarray] = {}
    for index, alias in enumerate(sorted(expected)):
        info = signature.inputs[alias]
        array = inputs[alias]
        try:
            sent_type = dtypes.from_numpy(array.dtype).enum
        except TensorFormatError as error:
            raise InvalidArgument(f"input {alias!r}: {error}") from None
        if sent_type != info.dtype:
            # The C++ session's words for a feed of the wrong type.
            raise InvalidArgument(
                f"Expects arg[{index}] to be {dtypes.tf_type_name(info.dtype)} but "
                f"{dtypes.tf_type_name(sent_type)} is provided"
            )
        feeds[info.name] = array
    return feeds


def _output_plan(signature: pb.SignatureDef, output_filter: Sequence[str]) -> list[tuple[str, str]]:
    plan: list[tuple[str, str]] = []
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise InvalidArgument(
                f"output tensor alias not found in signature: {alias} "
                f"Outputs expected to be in the set {{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in seen:
            raise InvalidArgument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
        plan.append((alias, signature.outputs[alias].name))
    if not plan:
        plan = [(alias, signature.outputs[alias].name) for alias in sorted(signature.outputs)]
    return plan


def predict(
    servable: Servable,
    model_name: str,
    signature_name: str,
    inputs: Mapping[str, np.ndarray],
    *,
    output_filter: Sequence[str] = (),
    timeout_ms: int | None = None,
    check_method_name: bool = False,
) -> Prediction:
    """Run one Predict on `servable`, checking the request as TF Serving does.

    Returns:
        The ModelSpec to echo (request's model name, resolved signature name, served version) and the
        outputs by alias.

    Raises:
        StatusError: TF Serving's status code and message.
    """
    key, signature = _resolve_signature(servable, signature_name)
    if check_method_name and signature.method_name not in _PREDICTABLE:
        # predict_util.cc VerifySignature, only under --enable_signature_method_name_check.
        raise Internal(
            "Expected prediction signature method_name to be one of {"
            + ", ".join(_PREDICTABLE)
            + f"}}. Was: {signature.method_name}"
        )
    spec = pb.ModelSpec(name=model_name, signature_name=key)
    spec.version.value = servable.version
    feeds = _check_inputs(signature, inputs)
    plan = _output_plan(signature, output_filter)
    started = time.monotonic()
    arrays = servable.run(feeds, [name for _, name in plan], timeout_ms)
    metrics.record_runtime(model_name, "Predict", (time.monotonic() - started) * 1e6)
    return Prediction(spec, {alias: array for (alias, _), array in zip(plan, arrays, strict=True)})
