"""Hostile input: hypothesis fuzzes Predict on a real `layertap serve` (in-process, 127.0.0.1) over gRPC.

Every malformed request must get INVALID_ARGUMENT (NOT_FOUND where random bytes happen to parse into a
request for another model) with a message, the server must keep answering, and its memory stay bounded.
Requests go through a generic unary_unary with identity serializers, so nothing on the client side
validates or re-encodes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.server.app import LayertapServer

DT_FLOAT = 1
#: DataType values TF Serving knows (1..23, plus DT_UINT32/DT_UINT64 22/23); everything else is unknown.
KNOWN_DTYPES = list(range(1, 24))
IMAGE = (28, 28, 1)
MIB = 1024 * 1024

Call = Callable[[bytes], tuple[grpc.StatusCode, str]]


def _request(
    tensors: dict[str, pb.TensorProto], output_filter: list[str] | None = None, signature: str = "conv_1"
) -> bytes:
    request = pb.PredictRequest()
    request.model_spec.name = "cnn"
    request.model_spec.signature_name = signature
    for alias, tensor in tensors.items():
        request.inputs[alias].CopyFrom(tensor)
    request.output_filter.extend(output_filter or [])
    return request.SerializeToString()


def _tensor(dtype: int, dims: list[int], content: bytes = b"") -> pb.TensorProto:
    tensor = pb.TensorProto(dtype=dtype, tensor_content=content)
    for size in dims:
        tensor.tensor_shape.dim.add(size=size)
    return tensor


def _valid_image(batch: int = 1) -> pb.TensorProto:
    return _tensor(DT_FLOAT, [batch, *IMAGE], np.zeros((batch, *IMAGE), np.float32).tobytes())


@st.composite
def huge_or_negative_shapes(draw: st.DrawFn) -> bytes:
    # A shape that claims up to 10^12+ elements (or has a negative size) with 4 bytes of content.
    dims = draw(
        st.lists(
            st.one_of(st.integers(-(2**62), -1), st.integers(10**6, 2**62), st.sampled_from([10**12, 2**40])),
            min_size=1,
            max_size=4,
        )
    )
    return _request({"image": _tensor(DT_FLOAT, dims, b"\0\0\0\0")})


@st.composite
def content_length_mismatch(draw: st.DrawFn) -> bytes:
    # Not 0 bytes: no content at all means zeros in TensorFlow, which TF Serving accepts.
    batch = draw(st.integers(1, 3))
    length = draw(st.integers(1, 4 * 784 * 4).filter(lambda n: n != batch * 784 * 4))
    return _request({"image": _tensor(DT_FLOAT, [batch, *IMAGE], b"\1" * length)})


@st.composite
def wrong_dtypes(draw: st.DrawFn) -> bytes:
    dtype = draw(st.sampled_from([d for d in KNOWN_DTYPES if d != DT_FLOAT]))
    return _request(
        {"image": _tensor(dtype, [1, *IMAGE], b"\0" * draw(st.sampled_from([784, 1568, 3136, 6272])))}
    )


@st.composite
def unknown_dtypes(draw: st.DrawFn) -> bytes:
    dtype = draw(st.one_of(st.just(0), st.integers(24, 100), st.integers(124, 2**31 - 1)))
    return _request({"image": _tensor(dtype, [1, *IMAGE], b"\0" * 3136)})


@st.composite
def strings_for_numbers(draw: st.DrawFn) -> bytes:
    # DT_STRING for a float input. (A DT_FLOAT tensor with only string_val has no float values at all,
    # which TensorFlow reads as zeros: valid, not hostile.)
    tensor = _tensor(7, [1, *IMAGE])
    tensor.string_val.extend(draw(st.lists(st.binary(max_size=8), min_size=1, max_size=784)))
    return _request({"image": tensor})


@st.composite
def wrong_aliases(draw: st.DrawFn) -> bytes:
    extra = draw(st.text("abcxyz_/", min_size=1, max_size=12).filter(lambda a: a != "image"))
    keep_image = draw(st.booleans())
    tensors = {extra: _valid_image()}
    if keep_image:
        tensors["image"] = _valid_image()
    return _request(tensors if draw(st.booleans()) else ({} if not keep_image else tensors))


@st.composite
def duplicate_or_unknown_filters(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(["conv_1", "nope", ""]))
    return _request({"image": _valid_image()}, [name] * draw(st.integers(2, 4)))


MALFORMED = st.one_of(
    huge_or_negative_shapes(),
    content_length_mismatch(),
    wrong_dtypes(),
    unknown_dtypes(),
    strings_for_numbers(),
    wrong_aliases(),
    duplicate_or_unknown_filters(),
)


@pytest.fixture
def call(serve: Callable[..., LayertapServer], model_base: Callable[..., Path]) -> Iterator[Call]:
    server = serve(model_name="cnn", model_base_path=str(model_base()))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    predict = channel.unary_unary(methods.PREDICT)  # identity (de)serializers: raw bytes both ways

    def send(message: bytes) -> tuple[grpc.StatusCode, str]:
        try:
            predict(message, timeout=30)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    yield send
    channel.close()


def test_the_baseline_request_is_valid(call: Call) -> None:
    # Guards the fuzz below: the requests it corrupts differ from this one only where they mean to.
    assert call(_request({"image": _valid_image()})) == (grpc.StatusCode.OK, "")


def test_a_terabyte_shape_with_four_bytes_is_refused_without_allocating(call: Call) -> None:
    rss = psutil.Process().memory_info().rss
    code, message = call(_request({"image": _tensor(DT_FLOAT, [10**12, 28, 28, 1], b"\0\0\0\0")}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message
    assert psutil.Process().memory_info().rss - rss < 64 * MIB


@pytest.mark.slow
def test_fuzzed_requests_are_refused_and_the_server_survives(call: Call) -> None:
    seen: list[int] = []
    codes: dict[grpc.StatusCode, int] = {}

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(MALFORMED)
    def structured(message: bytes) -> None:
        code, details = call(message)
        seen.append(1)
        codes[code] = codes.get(code, 0) + 1
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert len(details) > 10

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.binary(max_size=512))
    def random_bytes(message: bytes) -> None:
        code, details = call(message)
        seen.append(1)
        codes[code] = codes.get(code, 0) + 1
        # Bytes that happen to parse name another (or no) model: NOT_FOUND, as TF Serving answers.
        assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), (code, details)
        assert details

    call(_request({"image": _valid_image()}))  # warm up, then measure memory from here
    rss_before = psutil.Process().memory_info().rss
    structured()
    random_bytes()
    rss_after = psutil.Process().memory_info().rss
    print(f"fuzz cases: {len(seen)}, codes: {codes}, RSS {rss_before / MIB:.0f} -> {rss_after / MIB:.0f} MiB")
    assert len(seen) >= 2000
    assert rss_after - rss_before < 128 * MIB
    # Still serving.
    assert call(_request({"image": _valid_image(2)})) == (grpc.StatusCode.OK, "")
