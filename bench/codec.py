"""2. Tensor codec: layertap's encode/decode vs TensorFlow's make_tensor_proto / make_ndarray.

Responses are measured in both encodings TF Serving writes: typed fields (its default) and
`tensor_content` (--enable_serialization_as_tensor_content). A memcpy of the same bytes is the floor.
"""

from __future__ import annotations

import numpy as np

from bench._harness import Report, measure, ms
from layertap.proto import serving_pb2 as pb
from layertap.wire import codec

SIZES = {"4KB": 4 * 1024, "1MB": 1 << 20, "16MB": 16 << 20, "64MB": 64 << 20}
QUICK_SIZES = {"4KB": 4 * 1024, "64KB": 64 * 1024}


def _cases(quick: bool) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = [
        (f"float32 {label}", rng.standard_normal(size // 4, dtype=np.float32))
        for label, size in (QUICK_SIZES if quick else SIZES).items()
    ]
    other = 16 * 1024 if quick else 16 << 20
    label = "16KB" if quick else "16MB"
    cases.append((f"float16 {label}", rng.standard_normal(other // 2).astype(np.float16)))
    cases.append((f"int64 {label}", rng.integers(-(2**40), 2**40, other // 8, dtype=np.int64)))
    return [(name, array.reshape(-1, 64)) for name, array in cases]


def run(quick: bool = False) -> Report:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    report = Report("codec", "Tensor codec: milliseconds per call (median of repetitions)")
    spec = pb.ModelSpec(name="m", signature_name="conv_2")
    repeat = 3 if quick else 7
    for name, array in _cases(quick):
        big = array.nbytes >= (16 << 20)
        slow_repeat = 3 if big else repeat  # TensorFlow's typed-field paths take seconds at 64 MB

        destination = np.empty_like(array)
        memcpy = measure(lambda a=array, d=destination: np.copyto(d, a), repeat=repeat, min_time=0.02)

        ours_encode = measure(lambda a=array: codec.encode_predict_request(spec, {"x": a}), repeat=repeat)

        def tf_encode(a: np.ndarray = array) -> bytes:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "m"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(a))
            return request.SerializeToString()

        theirs_encode = measure(tf_encode, repeat=slow_repeat, warmup=1)

        typed_bytes = codec.encode_predict_response(spec, {"y": array})
        content_bytes = codec.encode_predict_response(spec, {"y": array}, tensor_content=True)
        ours_typed = measure(lambda b=typed_bytes: codec.decode_predict_response(b), repeat=repeat)
        ours_content = measure(
            lambda b=content_bytes: codec.decode_predict_response(b), repeat=repeat, min_time=0.005
        )

        def parse_frombuffer(b: bytes = content_bytes, dtype: np.dtype = array.dtype) -> np.ndarray:
            tensor = predict_pb2.PredictResponse.FromString(b).outputs["y"]
            return np.frombuffer(tensor.tensor_content, dtype=dtype)

        def parse_make_ndarray(b: bytes) -> np.ndarray:
            return tf.make_ndarray(predict_pb2.PredictResponse.FromString(b).outputs["y"])

        protobuf_content = measure(parse_frombuffer, repeat=repeat)
        tf_typed = measure(lambda b=typed_bytes: parse_make_ndarray(b), repeat=slow_repeat, warmup=1)
        tf_content = measure(lambda b=content_bytes: parse_make_ndarray(b), repeat=slow_repeat, warmup=1)

        # Both decoders must agree before their speed means anything.
        np.testing.assert_array_equal(codec.decode_predict_response(typed_bytes).outputs["y"], array)
        np.testing.assert_array_equal(parse_make_ndarray(typed_bytes), array)

        report.row(
            case=name,
            memcpy_ms=ms(memcpy.median),
            encode_ms=ms(ours_encode.median),
            encode_x_memcpy=round(ours_encode.median / memcpy.median, 2),
            tf_encode_ms=ms(theirs_encode.median),
            decode_typed_ms=ms(ours_typed.median),
            decode_content_ms=ms(ours_content.median),
            pb_frombuffer_ms=ms(protobuf_content.median),
            tf_make_ndarray_typed_ms=ms(tf_typed.median),
            tf_make_ndarray_content_ms=ms(tf_content.median),
            decode_spread_ms=f"{ms(ours_content.p10)}-{ms(ours_content.p90)}",
        )
        if name == "float32 16MB":
            worst_decode = max(ours_typed.median, ours_content.median)
            report.target(
                "16MB decode, worst encoding (ms)", worst_decode * 1000, "< 1 ms", worst_decode < 1e-3
            )
            vs_protobuf = protobuf_content.median / ours_content.median
            report.target(
                "16MB decode speed-up vs protobuf parse + frombuffer",
                vs_protobuf,
                ">= 30x",
                vs_protobuf >= 30,
            )
            vs_tf = tf_typed.median / ours_typed.median
            report.target("16MB typed decode speed-up vs tf.make_ndarray", vs_tf, ">= 200x", vs_tf >= 200)
            encode_ratio = ours_encode.median / memcpy.median
            report.target("16MB encode / memcpy", encode_ratio, "<= 2x", encode_ratio <= 2)
    return report
