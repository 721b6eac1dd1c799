"""The JSON TF Serving's REST API writes, byte for byte.

TF Serving writes REST bodies with rapidjson's PrettyWriter (4-space indents, arrays on one line
where it switches to single-line mode mid-stream, which gives its well-known
`"predictions": [2.5, 3.0, 4.5\\n    ]`), strings copied as bytes, and floats formatted so they
read back as the same float (`json_tensor.cc`'s WriteDecimal). `JsonWriter` is that state machine;
the functions below write TF Serving's bodies with it: predict outputs (row and columnar),
classify/regress results, errors.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from layertap.proto import serving_pb2 as pb
from layertap.server.status import InvalidArgument

__all__ = [
    "JsonWriter",
    "classification_body",
    "debug_string",
    "decimal",
    "error_body",
    "predict_body",
    "regression_body",
]

_INDENT = b"    "
_ESCAPES = {bytes([c]): b"\\u%04X" % c for c in range(0x20)}
_ESCAPES.update({b"\b": b"\\b", b"\t": b"\\t", b"\n": b"\\n", b"\f": b"\\f", b"\r": b"\\r"})
_ESCAPES.update({b'"': b'\\"', b"\\": b"\\\\"})
_TO_ESCAPE = re.compile(rb'[\x00-\x1f"\\]')
# numpy kinds TF Serving's JSON writer handles; anything else "Failed to write JSON value".
_WRITABLE: dict[np.dtype[Any], int] = {
    np.dtype(np.float32): pb.DT_FLOAT,
    np.dtype(np.float64): pb.DT_DOUBLE,
    np.dtype(np.int8): pb.DT_INT8,
    np.dtype(np.int16): pb.DT_INT16,
    np.dtype(np.int32): pb.DT_INT32,
    np.dtype(np.uint8): pb.DT_UINT8,
    np.dtype(np.int64): pb.DT_INT64,
    np.dtype(np.uint32): pb.DT_UINT32,
    np.dtype(np.uint64): pb.DT_UINT64,
    np.dtype(np.bool_): pb.DT_BOOL,
}
_FLOAT32 = struct.Struct("<f")
_DEBUG_LIMIT = 256  # json_tensor.cc's kMaxJsonDebugStringBytes


_invalid = InvalidArgument


class JsonWriter:
    """rapidjson's PrettyWriter: the same bytes for the same sequence of calls.

    Args:
        limit: stop writing once this many bytes are out (rapidjson's debug-string writer);
            None writes everything.
    """

    def __init__(self, limit: int | None = None) -> None:
        self._out: list[bytes] = []
        self._size = 0
        self._levels: list[list[int]] = []  # [in_array, values written] per open container
        self._limit = limit
        self.single_line_arrays = False

    def _put(self, data: bytes) -> None:
        self._out.append(data)
        self._size += len(data)

    def _room(self) -> bool:
        return self._limit is None or self._size < self._limit

    def _prefix(self) -> None:
        if not self._levels:
            return
        level = self._levels[-1]
        in_array, count = level
        if in_array:
            if count:
                self._put(b", " if self.single_line_arrays else b",")
            if not self.single_line_arrays:
                self._put(b"\n" + _INDENT * len(self._levels))
        else:
            if count:
                self._put(b",\n" if count % 2 == 0 else b": ")
            else:
                self._put(b"\n")
            if count % 2 == 0:
                self._put(_INDENT * len(self._levels))
        level[1] += 1

    def raw(self, text: str | bytes) -> None:
        """A number or literal, written as given."""
        if self._room():
            self._prefix()
            self._put(text.encode() if isinstance(text, str) else text)

    def raws(self, texts: list[bytes]) -> None:
        """Several numbers or literals in the open array: the same bytes as `raw` for each."""
        if not texts:
            return
        if self._limit is not None or not self._levels or not self._levels[-1][0]:
            for text in texts:
                self.raw(text)
            return
        self.raw(texts[0])
        separator = b", " if self.single_line_arrays else b",\n" + _INDENT * len(self._levels)
        self._put(separator + separator.join(texts[1:]) if len(texts) > 1 else b"")
        self._levels[-1][1] += len(texts) - 1

    def string(self, value: str | bytes) -> None:
        """A string (bytes are copied as they are, like rapidjson; str is UTF-8)."""
        data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        if self._room():
            self._prefix()
            self._put(b'"' + _TO_ESCAPE.sub(lambda m: _ESCAPES[m.group()], data) + b'"')

    key = string

    def start_object(self) -> None:
        self._open(b"{", in_array=0)

    def end_object(self) -> None:
        self._close(b"}", break_line=True)

    def start_array(self) -> None:
        self._open(b"[", in_array=1)

    def end_array(self) -> None:
        self._close(b"]", break_line=not self.single_line_arrays)

    def _open(self, bracket: bytes, in_array: int) -> None:
        if self._room():
            self._prefix()
            self._put(bracket)
            self._levels.append([in_array, 0])

    def _close(self, bracket: bytes, break_line: bool) -> None:
        # A non-empty container closes on its own line, at its parent's indent (unless single-line).
        if self._room():
            empty = self._levels.pop()[1] == 0
            if not empty and break_line:
                self._put(b"\n" + _INDENT * len(self._levels))
            self._put(bracket)

    def value(self, value: Any) -> None:
        """Any parsed JSON value (dicts, lists, str, numbers, bools, None)."""
        if not self._room():
            return
        if isinstance(value, dict):
            self.start_object()
            for name, item in value.items():
                self.key(name)
                self.value(item)
            self.end_object()
        elif isinstance(value, list):
            self.start_array()
            for item in value:
                self.value(item)
            self.end_array()
        elif isinstance(value, str):
            self.string(value)
        elif value is None or isinstance(value, bool):
            self.raw({None: "null", True: "true", False: "false"}[value])
        elif isinstance(value, int):
            self.raw(str(value))
        else:
            self.raw(_shortest(float(value)))

    def getvalue(self) -> bytes:
        return b"".join(self._out)


def _shortest(value: float) -> str:
    """rapidjson's Double(): the shortest round-trip digits, exponent without '+' or zero padding."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text


def _float32(value: float) -> float:
    """`value` rounded to float32 (struct is several times faster than numpy scalars here)."""
    try:
        return float(_FLOAT32.unpack(_FLOAT32.pack(value))[0])
    except OverflowError:
        return math.copysign(math.inf, value)


def debug_string(value: Any) -> str:
    """json_tensor.cc's JsonValueToDebugString: single-line arrays, cut after 256 bytes."""
    writer = JsonWriter(limit=_DEBUG_LIMIT)
    writer.single_line_arrays = True
    writer.value(value)
    return writer.getvalue().decode("utf-8", "replace")


def decimal(value: float, *, float32: bool) -> str:
    """json_tensor.cc's WriteDecimal: "%.6g" unless that would not read back as the same value
    (then 9 or 17 significant digits), ".0" added to whole numbers, NaN and Infinity spelled out."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = format(value, ".6g")
    same = _float32(float(text)) == _float32(value) if float32 else float(text) == value
    if not same:
        text = format(value, ".9g" if float32 else ".17g")
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _scalars(array: np.ndarray, as_bytes: bool) -> list[bytes]:
    """Each element of `array` as written by TF Serving (flattened, in C order)."""
    flat = array.reshape(-1)
    if array.dtype == object:
        if as_bytes:
            return [base64.b64encode(_as_bytes(v)) for v in flat.tolist()]
        return [_quoted(_as_bytes(v)) for v in flat.tolist()]
    if array.dtype.kind == "f":
        float32 = array.dtype == np.float32
        return [decimal(v, float32=float32).encode() for v in flat.tolist()]
    if array.dtype == np.bool_:
        return [b"true" if v else b"false" for v in flat.tolist()]
    return [str(v).encode() for v in flat.tolist()]


def _quoted(data: bytes) -> bytes:
    return b'"' + _TO_ESCAPE.sub(lambda m: _ESCAPES[m.group()], data) + b'"'


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _check_writable(alias: str, array: np.ndarray) -> None:
    if array.dtype != object and array.dtype not in _WRITABLE:
        from layertap.wire import dtypes

        try:
            name = dtypes.tf_type_name(dtypes.from_numpy(array.dtype).enum)
        except Exception:
            name = str(array.dtype)
        raise _invalid(f"Failed to write JSON value for tensor type: {name}")


def _write_tensor(writer: JsonWriter, array: np.ndarray, as_bytes: bool) -> None:
    """json_tensor.cc's AddTensorValues: nested arrays, the innermost written in one go."""
    values = iter(_scalars(array, as_bytes))
    shape = array.shape

    def write(dim: int) -> None:
        if dim == len(shape) - 1 and not as_bytes:
            writer.start_array()
            writer.raws([next(values) for _ in range(shape[dim])])
            writer.end_array()
            return
        if dim == len(shape):
            if as_bytes:  # {"b64": "..."}, written as rapidjson writes an object
                writer.start_object()
                writer.key("b64")
                writer.string(next(values))
                writer.end_object()
            else:
                writer.raw(next(values))
            return
        writer.start_array()
        for _ in range(shape[dim]):
            write(dim + 1)
        writer.end_array()

    write(0)


def predict_body(outputs: Mapping[str, np.ndarray], *, row: bool) -> bytes:
    """The body of a successful :predict, in the format of the request (row or columnar).

    Raises:
        InvalidArgument: as TF Serving: no outputs, an output of a dtype its JSON
            writer cannot write (float16, bfloat16, uint16, complex...), or (row format) an output
            without a batch dimension or with a different batch size.
    """
    if not outputs:
        raise _invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    for name in names:
        _check_writable(name, outputs[name])
    writer = JsonWriter()
    writer.start_object()
    several = len(names) > 1
    if row:
        batch = -1
        for name in names:
            shape = outputs[name].shape
            if not shape:
                raise _invalid(f"Tensor name: {name} has no shape information ")
            if batch >= 0 and shape[0] != batch:
                raise _invalid(
                    f"Tensor name: {name} has inconsistent batch size: {shape[0]} expecting: {batch}"
                )
            batch = shape[0]
        writer.key("predictions")
        writer.start_array()
        for item in range(batch):
            if several:
                writer.start_object()
            writer.single_line_arrays = True
            for name in names:
                if several:
                    writer.key(name)
                _write_tensor(writer, outputs[name][item, ...], _is_bytes(name, outputs[name]))
            writer.single_line_arrays = False
            if several:
                writer.end_object()
        writer.end_array()
    else:
        writer.key("outputs")
        if several:
            writer.start_object()
        for name in names:
            if several:
                writer.key(name)
            _write_tensor(writer, outputs[name], _is_bytes(name, outputs[name]))
        if several:
            writer.end_object()
    writer.end_object()
    return writer.getvalue()


def _is_bytes(name: str, array: np.ndarray) -> bool:
    # TF Serving writes a string output as {"b64": ...} when its alias ends in "_bytes".
    return array.dtype == object and name.endswith("_bytes")


def classification_body(result: pb.ClassificationResult) -> bytes:
    """The body of a successful :classify: {"results": [[[label, score], ...], ...]}."""
    if not result.classifications:
        raise _invalid("Cannot convert empty ClassificationResults to JSON")
    return _body("results", lambda writer: _write_classifications(writer, result.classifications))


def _write_classifications(writer: JsonWriter, rows: Sequence[pb.Classifications]) -> None:
    # One example's [label, score] pairs on one line, the examples one per line.
    writer.start_array()
    for row in rows:
        writer.single_line_arrays = True
        writer.start_array()
        for item in row.classes:
            writer.start_array()
            writer.string(item.label)
            writer.raw(decimal(item.score, float32=True))
            writer.end_array()
        writer.end_array()
        writer.single_line_arrays = False
    writer.end_array()


def regression_body(result: pb.RegressionResult) -> bytes:
    """The body of a successful :regress: {"results": [value, ...]}."""
    if not result.regressions:
        raise _invalid("Cannot convert empty RegressionResults to JSON")
    values = [decimal(item.value, float32=True).encode() for item in result.regressions]

    def write_values(writer: JsonWriter) -> None:
        writer.single_line_arrays = True
        writer.start_array()
        writer.raws(values)
        writer.end_array()

    return _body("results", write_values)


def error_body(message: str) -> bytes:
    """TF Serving's error body: {"error": message}."""
    return _body("error", lambda writer: writer.string(message))


def _body(key: str, write_value: Callable[[JsonWriter], None]) -> bytes:
    """A body holding one member, {key: value}, whose value `write_value` writes."""
    writer = JsonWriter()
    writer.start_object()
    writer.key(key)
    write_value(writer)
    writer.end_object()
    return writer.getvalue()
