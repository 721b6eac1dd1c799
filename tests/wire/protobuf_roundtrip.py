"""Run by test_protobuf_versions.py under each protobuf major version (argv[1]): the codec, the schema
and a real gRPC call through LayerClient, with nothing but protobuf, grpcio and numpy installed."""

from __future__ import annotations

import sys
from concurrent import futures
from typing import Any

import google.protobuf
import grpc
import numpy as np

from layertap.client import LayerClient
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.wire import codec

ARRAYS: dict[str, np.ndarray] = {
    "f4": np.array([[1.5, -2.0]], np.float32),
    "f8": np.array([1e300, -0.0]),
    "f2": np.array([0.5, 65504.0], np.float16),
    "i1": np.array([-128, 127], np.int8),
    "i8": np.array([-(2**63)], np.int64),
    "u4": np.array([2**32 - 1], np.uint32),
    "u8": np.array([2**64 - 1], np.uint64),
    "b": np.array([True, False]),
    "c8": np.array([1 + 2j], np.complex64),
    "s": np.array([b"", b"\xff"], dtype=object),
    "empty": np.zeros((0, 2), np.float32),
}


def same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object:
        return a.tolist() == b.tolist() and a.shape == b.shape
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def predict(request: bytes, context: Any) -> bytes:
    call = codec.decode_predict_request(request)
    spec = pb.ModelSpec(name=call.model_spec.name, signature_name="echo")
    spec.version.value = 0
    return codec.encode_predict_response(spec, {"echo": call.inputs["x"]})


def metadata(request: bytes, context: Any) -> bytes:
    signatures = pb.SignatureDefMap()
    echo = signatures.signature_def["echo"]
    echo.inputs["x"].dtype = pb.DT_FLOAT
    echo.outputs["echo"].dtype = pb.DT_FLOAT
    response = pb.GetModelMetadataResponse()
    response.model_spec.name = "m"
    response.metadata["signature_def"].type_url = methods.SIGNATURE_DEF_MAP_TYPE_URL
    response.metadata["signature_def"].value = signatures.SerializeToString()
    return response.SerializeToString()


def main() -> None:
    expected_major = int(sys.argv[1])
    assert int(google.protobuf.__version__.split(".")[0]) == expected_major, google.protobuf.__version__
    spec = pb.ModelSpec(name="m", signature_name="s")
    spec.version.value = 0
    for tensor_content in (False, True):
        result = codec.decode_predict_response(
            codec.encode_predict_response(spec, ARRAYS, tensor_content=tensor_content)
        )
        assert result.model_spec == spec and all(same(result.outputs[k], v) for k, v in ARRAYS.items())
    call = codec.decode_predict_request(codec.encode_predict_request(spec, ARRAYS, ["a"]))
    assert call.output_filter == ["a"] and all(same(call.inputs[k], v) for k, v in ARRAYS.items())

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handlers = {
        "Predict": grpc.unary_unary_rpc_method_handler(predict),
        "GetModelMetadata": grpc.unary_unary_rpc_method_handler(metadata),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(methods.PREDICTION_SERVICE, handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        with LayerClient(f"127.0.0.1:{port}", "m") as client:
            assert same(client.predict_layer(x, "echo"), x)
    finally:
        server.stop(None)
    print(f"ok protobuf {google.protobuf.__version__}")


if __name__ == "__main__":
    main()
