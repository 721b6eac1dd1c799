"""Classify, Regress and MultiInference on one servable, with TF Serving's checks and words.

As TF Serving's classifier.cc / regressor.cc / multi_inference.cc / util.cc do: the request's
`Input` becomes one DT_STRING vector of serialized tf.Examples (with `example_list_with_context`, the
serialized context is prepended to each serialized example, which protobuf parses as the merge of the
two, the example's features winning), fed to the signature's single input. A signature is chosen by
its input and output keys, and by its method name only under `--enable_signature_method_name_check`.
`classes` (DT_STRING [batch, classes]) and `scores` (DT_FLOAT [batch, classes]) become a
ClassificationResult, `outputs` (DT_FLOAT [batch] or [batch, 1]) a RegressionResult. MultiInference
runs classify and regress tasks over one model and one input in ONE session run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from google.protobuf import text_format

from layertap.errors import TensorFormatError
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.server.runtime.servable import Servable
from layertap.server.status import InvalidArgument, Unimplemented
from layertap.version_folder import DEFAULT_SIGNATURE
from layertap.wire import dtypes

__all__ = ["Request", "Response", "infer", "model_spec", "serialized_examples"]

_KIND = {methods.CLASSIFY_METHOD_NAME: "classification", methods.REGRESS_METHOD_NAME: "regression"}


def serialized_examples(request_input: pb.Input) -> np.ndarray:
    """The Input as TF Serving feeds it: a vector of serialized tf.Examples.

    Raises:
        InvalidArgument: `Input is empty.` (no examples, or no kind set).
    """
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [example.SerializeToString() for example in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        listed = request_input.example_list_with_context
        context = listed.context.SerializeToString()
        examples = [context + example.SerializeToString() for example in listed.examples]
    else:
        examples = []
    if not examples:
        raise InvalidArgument("Input is empty.")
    vector = np.empty(len(examples), dtype=object)
    vector[:] = examples
    return vector


def _debug_string(signature: pb.SignatureDef) -> str:
    return text_format.MessageToString(signature)


def _check_method_name(signature: pb.SignatureDef, method: str, check: bool) -> None:
    """TF Serving compares a signature's method_name with the API only under
    `--enable_signature_method_name_check` (default false: `server.h`; `classifier.cc`,
    `regressor.cc`). TF2 SavedModels mark every signature `tensorflow/serving/predict`, so without the
    flag they are classified and regressed by their input and output keys alone."""
    if check and signature.method_name != method:
        raise InvalidArgument(
            f"Expected {_KIND[method]} signature method_name to be {method}. Was: {signature.method_name}"
        )


def _signature(
    servable: Servable, spec: pb.ModelSpec, method: str, check_method_name: bool
) -> pb.SignatureDef:
    """GetClassificationSignatureDef / GetRegressionSignatureDef: the signature, checked for `method`."""
    key = spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signatures.get(key)
    if signature is None:
        raise InvalidArgument(f"No signature was found with the name: {key}")
    # With the check, only the method name is looked at here; without it, the whole preprocessing
    # check runs (and again when the call runs it), exactly as in classifier.cc / regressor.cc.
    _check_method_name(signature, method, check_method_name)
    return signature


def _input_name(signature: pb.SignatureDef, method: str, outputs: tuple[int, ...]) -> str:
    """The checks PreProcessClassification / PreProcessRegression make, in their order: one input,
    the allowed number of outputs, then the input key."""
    if len(signature.inputs) != 1:
        raise InvalidArgument("Expected one input Tensor.")
    if len(signature.outputs) not in outputs:
        if outputs == (1,):
            raise InvalidArgument("Expected one output Tensor.")
        raise InvalidArgument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    key = methods.CLASSIFY_INPUTS if method == methods.CLASSIFY_METHOD_NAME else methods.REGRESS_INPUTS
    entry = signature.inputs.get(key)
    if entry is None:
        raise InvalidArgument(f"No {_KIND[method]} inputs found in SignatureDef: {_debug_string(signature)}")
    return entry.name


def _classification_outputs(signature: pb.SignatureDef, check_method_name: bool) -> tuple[str, list[str]]:
    _check_method_name(signature, methods.CLASSIFY_METHOD_NAME, check_method_name)
    name = _input_name(signature, methods.CLASSIFY_METHOD_NAME, (1, 2))
    present = [
        signature.outputs[key].name
        for key in (methods.CLASSIFY_OUTPUT_CLASSES, methods.CLASSIFY_OUTPUT_SCORES)
        if key in signature.outputs
    ]
    if not present:
        raise InvalidArgument(
            'Expected classification signature outputs to contain at least one of "classes" or '
            f'"scores". Signature was: {_debug_string(signature)}'
        )
    return name, present


def _regression_outputs(signature: pb.SignatureDef, check_method_name: bool) -> tuple[str, list[str]]:
    _check_method_name(signature, methods.REGRESS_METHOD_NAME, check_method_name)
    name = _input_name(signature, methods.REGRESS_METHOD_NAME, (1,))
    entry = signature.outputs.get(methods.REGRESS_OUTPUTS)
    if entry is None:
        raise InvalidArgument(f"No regression outputs found in SignatureDef: {_debug_string(signature)}")
    return name, [entry.name]


#: The input tensor and the fetches of a classification or regression signature, by method name.
_OUTPUTS: dict[str, Callable[[pb.SignatureDef, bool], tuple[str, list[str]]]] = {
    methods.CLASSIFY_METHOD_NAME: _classification_outputs,
    methods.REGRESS_METHOD_NAME: _regression_outputs,
}


def _shape(array: np.ndarray) -> str:
    # TensorShape::DebugString.
    return "[" + ",".join(str(size) for size in array.shape) + "]"


def _type_name(array: np.ndarray) -> str:
    try:
        return pb.DataType.Name(dtypes.from_numpy(array.dtype).enum)  # type: ignore[arg-type]
    except TensorFormatError:
        return str(array.dtype)


def _classification_result(
    signature: pb.SignatureDef, examples: int, fetched: dict[str, np.ndarray]
) -> pb.ClassificationResult:
    """PostProcessClassificationResult."""
    tables: dict[str, np.ndarray] = {}
    for key, want in (
        (methods.CLASSIFY_OUTPUT_CLASSES, "DT_STRING"),
        (methods.CLASSIFY_OUTPUT_SCORES, "DT_FLOAT"),
    ):
        if key not in signature.outputs:
            continue
        array = fetched[signature.outputs[key].name]
        if array.ndim != 2:
            raise InvalidArgument(f"Expected Tensor shape: [batch_size num_classes] but got {_shape(array)}")
        if _type_name(array) != want:
            raise InvalidArgument(f"Expected {key} Tensor of {want}. Got: {_type_name(array)}")
        if array.shape[0] != examples:
            raise InvalidArgument(f"Expected {key} output batch size of {examples}. Got: {array.shape[0]}")
        tables[key] = array
    classes, scores = tables.get(methods.CLASSIFY_OUTPUT_CLASSES), tables.get(methods.CLASSIFY_OUTPUT_SCORES)
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise InvalidArgument(
            "Tensors class and score should match in dim_size(1). "
            f"Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
    result = pb.ClassificationResult()
    for row in range(examples):
        classifications = result.classifications.add()
        for column in range(next(iter(tables.values())).shape[1]):
            entry = classifications.classes.add()
            if classes is not None:
                label = classes[row, column]
                entry.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            if scores is not None:
                entry.score = float(scores[row, column])
    return result


def _regression_result(
    signature: pb.SignatureDef, examples: int, fetched: dict[str, np.ndarray]
) -> pb.RegressionResult:
    """PostProcessRegressionResult."""
    output = fetched[signature.outputs[methods.REGRESS_OUTPUTS].name]
    if not (output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1)):
        raise InvalidArgument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            + _shape(output)
        )
    if output.shape[0] != examples:
        raise InvalidArgument(
            f"Input batch size did not match output batch size: {examples} vs. {output.shape[0]}"
        )
    if _type_name(output) != "DT_FLOAT":
        raise InvalidArgument(f"Expected output Tensor of DT_FLOAT.  Got: {_type_name(output)}")
    result = pb.RegressionResult()
    for value in output.reshape(-1):
        result.regressions.add(value=float(value))
    return result


def _response_spec(spec: pb.ModelSpec, servable: Servable) -> pb.ModelSpec:
    """MakeModelSpec: the requested name and signature (empty = serving_default), the served version."""
    echoed = pb.ModelSpec(name=spec.name, signature_name=spec.signature_name or DEFAULT_SIGNATURE)
    echoed.version.value = servable.version
    return echoed


def _run(
    servable: Servable,
    input_names: Sequence[str],
    request_input: pb.Input,
    fetches: Sequence[str],
    timeout_ms: int | None,
) -> tuple[int, dict[str, np.ndarray]]:
    """PerformOneShotTensorComputation: one session run, the serialized examples fed to every input
    tensor named (util.cc feeds each name of a sorted set the same tensor: MultiInference over TF2
    signatures, whose inputs are separate placeholders, reads one Input through all of them)."""
    examples = serialized_examples(request_input)
    unique = list(dict.fromkeys(fetches))
    outputs = servable.run(dict.fromkeys(sorted(set(input_names)), examples), unique, timeout_ms)
    return len(examples), dict(zip(unique, outputs, strict=True))


#: A request Classify, Regress or MultiInference answers; `infer` runs any of them.
Request = pb.ClassificationRequest | pb.RegressionRequest | pb.MultiInferenceRequest
Response = pb.ClassificationResponse | pb.RegressionResponse | pb.MultiInferenceResponse


def model_spec(request: Request) -> pb.ModelSpec:
    """The ModelSpec naming the servable: MultiInference's is its first task's, as TF Serving's
    GetModelSpecFromRequest reads it (an empty spec, so no name, without tasks)."""
    if isinstance(request, pb.MultiInferenceRequest):
        return request.tasks[0].model_spec if request.tasks else pb.ModelSpec()
    return request.model_spec


def infer(
    servable: Servable, request: Request, timeout_ms: int | None = None, *, check_method_name: bool = False
) -> Response:
    """RunClassify, RunRegress or RunMultiInference on `servable`, as the request's type says.

    Args:
        check_method_name: `--enable_signature_method_name_check`: refuse a signature whose
            method_name is not the API's (`tensorflow/serving/classify`, `.../regress`).

    Raises:
        StatusError: TF Serving's code and message.
    """
    if isinstance(request, pb.MultiInferenceRequest):
        return _multi_inference(servable, request, timeout_ms, check_method_name=check_method_name)
    method = (
        methods.CLASSIFY_METHOD_NAME
        if isinstance(request, pb.ClassificationRequest)
        else methods.REGRESS_METHOD_NAME
    )
    signature = _signature(servable, request.model_spec, method, check_method_name)
    input_name, fetches = _OUTPUTS[method](signature, check_method_name)
    examples, fetched = _run(servable, [input_name], request.input, fetches, timeout_ms)
    spec = _response_spec(request.model_spec, servable)
    if isinstance(request, pb.ClassificationRequest):
        return pb.ClassificationResponse(
            model_spec=spec, result=_classification_result(signature, examples, fetched)
        )
    return pb.RegressionResponse(model_spec=spec, result=_regression_result(signature, examples, fetched))


def _multi_inference(
    servable: Servable,
    request: pb.MultiInferenceRequest,
    timeout_ms: int | None = None,
    *,
    check_method_name: bool = False,
) -> pb.MultiInferenceResponse:
    """TensorFlowMultiInferenceRunner::Infer: classify/regress tasks of one model on one input.

    The task's method_name chooses classify or regress; with `check_method_name` the signature's own
    method_name must also be that one (multi_inference.cc runs the same preprocessing checks).

    Raises:
        StatusError: TF Serving's code and message (UNIMPLEMENTED for a task that is not classify or
            regress).
    """
    model_name = ""
    input_names: list[str] = []
    seen: set[str] = set()
    fetches: list[str] = []
    plan: list[tuple[pb.InferenceTask, pb.SignatureDef]] = []
    for task in request.tasks:
        if not task.model_spec.name:
            raise InvalidArgument("Found ModelSpec with an empty model name.")
        if model_name and task.model_spec.name != model_name:
            raise InvalidArgument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        model_name = task.model_spec.name
        key = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if key in seen:
            raise InvalidArgument(f"Duplicate evaluation of signature: {key}")
        seen.add(key)
        signature = servable.signatures.get(key)
        if signature is None:
            raise InvalidArgument(f"Requested signature not found in model graph: {key}")
        outputs_of = _OUTPUTS.get(task.method_name)
        if outputs_of is None:
            raise Unimplemented(f"Unsupported signature method_name: {task.method_name}")
        name, outputs = outputs_of(signature, check_method_name)
        input_names.append(name)
        fetches.extend(outputs)
        plan.append((task, signature))
    examples, fetched = _run(servable, input_names, request.input, sorted(set(fetches)), timeout_ms)
    response = pb.MultiInferenceResponse()
    for task, signature in plan:
        result = response.results.add(model_spec=_response_spec(task.model_spec, servable))
        if task.method_name == methods.CLASSIFY_METHOD_NAME:
            result.classification_result.CopyFrom(_classification_result(signature, examples, fetched))
        else:
            result.regression_result.CopyFrom(_regression_result(signature, examples, fetched))
    return response
