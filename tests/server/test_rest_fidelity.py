"""REST answers as TF Serving's: its JSON byte for byte, its messages, its HTTP codes.

The expected bodies are TF Serving's own output for its test model half_plus_two (rebuilt by the
`half_plus_two` fixture), as TF Serving's documentation and json_tensor.cc write them: rapidjson's
pretty printer for predict/classify/regress/errors, protobuf's JSON printer with every default
field for status and metadata.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from layertap.proto import serving_pb2 as pb
from layertap.server.app import LayertapServer
from layertap.server.rest.decode import predict_inputs
from layertap.server.rest.encode import decimal
from layertap.server.status import Unimplemented
from tests.server.rest_peer import call, error


@pytest.fixture
def port(rest_server: LayertapServer) -> int:
    return rest_server.rest_port


def test_status_is_tf_serving_json_byte_for_byte(port: int) -> None:
    status, body, headers = call(port, "GET", "/v1/models/half_plus_two")
    assert (status, headers["content-type"]) == (200, "application/json")
    assert body == (
        b'{\n "model_version_status": [\n  {\n   "version": "123",\n   "state": "AVAILABLE",\n'
        b'   "status": {\n    "error_code": "OK",\n    "error_message": ""\n   }\n  }\n ]\n}\n'
    )
    assert call(port, "GET", "/v1/models/half_plus_two/versions/123")[1] == body


def test_metadata_prints_every_field_as_tf_serving(port: int) -> None:
    status, body, _ = call(port, "GET", "/v1/models/half_plus_two/metadata")
    assert status == 200
    # TF Serving joins two printed messages (http_rest_api_util.cc): this framing is its own.
    assert body.startswith(
        b'{\n"model_spec":{\n "name": "half_plus_two",\n "signature_name": "",\n "version": "123"\n}\n,\n'
        b'"metadata": {"signature_def": {\n "signature_def": {\n'
    )
    assert body.endswith(b"\n }\n}\n}\n}\n")
    signatures = json.loads(body)["metadata"]["signature_def"]["signature_def"]
    assert sorted(signatures) == [
        "classify_x_to_y",
        "regress_x2_to_y3",
        "regress_x_to_y",
        "regress_x_to_y2",
        "serving_default",
    ]
    examples = {
        "dtype": "DT_STRING",
        "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False},
        "name": "tf_example:0",
    }
    column = {"dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}], "unknown_rank": False}
    assert signatures["classify_x_to_y"] == {
        "inputs": {"inputs": examples},
        "outputs": {"scores": {"dtype": "DT_FLOAT", "tensor_shape": column, "name": "y:0"}},
        "method_name": "tensorflow/serving/classify",
        "defaults": {},
    }
    assert signatures["serving_default"] == {
        "inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": column, "name": "x:0"}},
        "outputs": {"y": {"dtype": "DT_FLOAT", "tensor_shape": column, "name": "y:0"}},
        "method_name": "tensorflow/serving/predict",
        "defaults": {},
    }
    # Field order as protobuf's C++ printer writes it: the oneof member (name) after the others.
    assert list(signatures["regress_x2_to_y3"]["inputs"]["inputs"]) == ["dtype", "tensor_shape", "name"]


def test_predict_row_and_columnar_bodies_byte_for_byte(port: int) -> None:
    # TF Serving's documented example: x has static shape (-1, 1), the C++ session runs [3] anyway.
    status, body, _ = call(port, "POST", "/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]})
    assert (status, body) == (200, b'{\n    "predictions": [2.5, 3.0, 4.5\n    ]\n}')
    status, body, _ = call(
        port, "POST", "/v1/models/half_plus_two:predict", {"instances": [[1.0], [2.0], [5.0]]}
    )
    assert (status, body) == (200, b'{\n    "predictions": [[2.5], [3.0], [4.5]\n    ]\n}')
    status, body, _ = call(
        port, "POST", "/v1/models/half_plus_two/versions/123:predict", {"inputs": {"x": [[1.0], [-0.1]]}}
    )
    assert status == 200
    assert body == (
        b'{\n    "outputs": [\n        [\n            2.5\n        ],\n'
        b"        [\n            1.95\n        ]\n    ]\n}"
    )
    status, body, _ = call(
        port, "POST", "/v1/models/m:predict", {"signature_name": "add", "instances": [{"a": 1, "b": 2}]}
    )
    assert (status, body) == (200, b'{\n    "predictions": [3\n    ]\n}')


def test_classify_and_regress_results_byte_for_byte(port: int) -> None:
    examples = [{"x": 1.0}, {"x": 2.0}]
    status, body, _ = call(
        port,
        "POST",
        "/v1/models/half_plus_two:classify",
        {"signature_name": "classify_x_to_y", "examples": examples},
    )
    # No classes output: each class has an empty label, as TF Serving writes it.
    assert (status, body) == (200, b'{\n    "results": [[["", 2.5]], [["", 3.0]]\n    ]\n}')
    status, body, _ = call(
        port,
        "POST",
        "/v1/models/half_plus_two:regress",
        {"signature_name": "regress_x_to_y2", "examples": examples},
    )
    assert (status, body) == (200, b'{\n    "results": [3.5, 4.0]\n}')
    # The context's features are merged into each example; an example's own feature wins.
    document = {
        "signature_name": "regress_x_to_y",
        "context": {"x": 5.0},
        "examples": [{"x2": 1.0}, {"x": 1.0}],
    }
    assert call(port, "POST", "/v1/models/half_plus_two/versions/123:regress", document)[:2] == (
        200,
        b'{\n    "results": [4.5, 2.5]\n}',
    )
    # A bytes feature as {"b64": ...}: a serialized nothing-at-all is not a float feature.
    assert (
        error(
            port,
            "POST",
            "/v1/models/half_plus_two:regress",
            {"signature_name": "regress_x_to_y", "examples": [{"x": {"b64": "AAEC"}}]},
        )[0]
        == 400
    )


def test_float16_outputs_are_refused_as_tf_serving_json_writer_does(port: int) -> None:
    assert error(
        port, "POST", "/v1/models/m:predict", {"signature_name": "outer/half", "instances": [[2, 4, 6]]}
    ) == (
        400,
        "Failed to write JSON value for tensor type: half",
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        (
            "GET",
            "/v1/models/half_plus_two/versions/99999999999999999999",
            None,
            (400, "Failed to convert version: 99999999999999999999 to numeric."),
        ),
        ("GET", "/v1/models", None, (400, "Missing model name in request.")),
        (
            "DELETE",
            "/v1/models/half_plus_two",
            None,
            (400, "Malformed request: DELETE /v1/models/half_plus_two"),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:Predict",
            b"{}",
            (400, "Malformed request: POST /v1/models/half_plus_two:Predict"),
        ),
        (
            "GET",
            "/v1/models/half_plus_two:predict",
            None,
            (400, "Malformed request: GET /v1/models/half_plus_two:predict"),
        ),
        ("GET", "/v1/models/nope", None, (404, "Could not find any versions of model nope")),
        (
            "GET",
            "/v1/models/half_plus_two/versions/7",
            None,
            (404, "Could not find version 7 of model half_plus_two"),
        ),
        ("POST", "/v1/models/half_plus_two:predict", b"", (400, "JSON Parse error: The document is empty")),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            b'{"instances": [1.0,]}',
            (400, "JSON Parse error: Invalid value. at offset: 19"),
        ),
        ("POST", "/v1/models/half_plus_two:predict", b"[1]", (400, "JSON Value: [1] Is not object")),
        ("POST", "/v1/models/half_plus_two:predict", b'{"instances": [1.0]', None),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"instances": [[1.0]], "signature_name": 3},
            (
                400,
                'JSON Value: {\n    "instances": [[1.0]],\n    "signature_name": 3\n} '
                "not formatted correctly. "
                "'signature_name' key must be a string value.",
            ),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"signature_name": "nope", "instances": [1.0]},
            (400, 'Serving signature name: "nope" not found in signature def'),
        ),
        (
            "POST",
            "/v1/models/nope:predict",
            {"instances": [1.0]},
            (404, "Servable not found for request: Latest(nope)"),
        ),
        (
            "POST",
            "/v1/models/half_plus_two/labels/stable:predict",
            {"instances": [1.0]},
            (400, "Unrecognized servable version label: stable"),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"instances": []},
            (400, "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array"),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"instances": [["a"]]},
            (
                400,
                "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: "
                '"a" Type: String is not of expected type: float',
            ),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"instances": [[1.0], [1.0, 2.0]]},
            (
                400,
                "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
                "Expecting tensor size: 1 but got: 2",
            ),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"inputs": [[1.0], 2.0]},
            (400, "JSON Value: 2.0 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"inputs": [[1.0], [[2.0]]]},
            (400, "Encountered list at unexpected level: 2 expected < 2"),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"inputs": {"y": [1.0]}},
            (400, "Missing named input: x in 'inputs' object."),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"instances": [1.0], "inputs": [1.0]},
            (
                400,
                'JSON Value: {\n    "instances": [1.0],\n    "inputs": [1.0]\n} Not formatted correctly '
                "expecting only one of 'inputs' or 'instances' keys to exist ",
            ),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"signature_name": ""},
            (400, "Missing 'inputs' or 'instances' key"),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:regress",
            {"signature_name": "regress_x_to_y"},
            (
                400,
                'JSON Value: {\n    "signature_name": "regress_x_to_y"\n} When method is classify, key '
                "'examples' is expected and was not found",
            ),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:classify",
            {"examples": [{"x": [1.0, "a"]}]},
            (400, "Unexpected element type in feature: x expecting type: float"),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:classify",
            {"examples": [{"x": None}]},
            (400, "Feature: x has element with unexpected JSON type: Null"),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:regress",
            {"examples": [{"x": 2**64 - 1}]},
            (400, "Feature: x has uint64_t element. Only int64_t is supported."),
        ),
        (
            "POST",
            "/v1/models/half_plus_two:regress",
            {"examples": [3]},
            (400, "Example must be JSON object but got JSON Number"),
        ),
        ("OPTIONS", "/v1/models/half_plus_two", None, (400, "Origin header is missing in CORS preflight")),
    ],
)
def test_bad_requests_get_tf_servings_code_and_message(
    port: int, method: str, path: str, body: bytes | dict | None, expected: tuple[int, str] | None
) -> None:
    status, message = error(port, method, path, body)
    if expected is None:
        assert status == 400 and message.startswith("JSON Parse error: "), message
    else:
        assert (status, message) == expected


def test_paths_outside_the_api_are_json_errors_too(port: int) -> None:
    status, message = error(port, "GET", "/index.html")
    assert status == 404 and message.startswith("Not found: GET /index.html")


@pytest.mark.parametrize(
    ("value", "float32", "written"),
    [
        (0.1, True, "0.1"),
        (float(np.float32(1 / 3)), True, "0.333333343"),
        (9e6, True, "9e+06"),
        (3e-5, True, "3e-05"),
        (2.0, True, "2.0"),
        (-0.0, True, "-0.0"),
        (65504.0, True, "65504.0"),
        (float("nan"), True, "NaN"),
        (float("-inf"), False, "-Infinity"),
        (0.1, False, "0.1"),
        (1 / 3, False, "0.33333333333333331"),
    ],
)
def test_floats_are_written_as_json_tensor_cc_writes_them(value: float, float32: bool, written: str) -> None:
    # WriteDecimal: "%.6g" unless it does not read back as the same value, ".0" on whole numbers.
    assert decimal(value, float32=float32) == written


@pytest.mark.parametrize("value", [[], [[]], 1.0, [[1.0]]])
def test_inputs_of_a_dtype_the_json_reader_lacks_are_unimplemented(value: object) -> None:
    # json_tensor.cc's AddValueToTensor has no case for half: UNIMPLEMENTED (501), even when empty.
    with pytest.raises(Unimplemented, match=r"^Conversion of JSON Value: .* to type: half$"):
        predict_inputs({"inputs": value}, {"x": pb.TensorInfo(dtype=pb.DT_HALF)}, "")
