"""Protocol-buffer wire format, read and written by hand where protobuf's copies would dominate.

Only the messages layertap handles in bulk are covered: a map<string, TensorProto> beside a
ModelSpec and a repeated string (PredictRequest and PredictResponse). Whatever the readers do not
recognise as the plain layout raises `UnhandledLayoutError`; the caller then parses with protobuf
instead, so unusual but valid bytes (groups, a field repeated where merging rules apply, wire types
that do not match the schema) still decode exactly as protobuf decodes them.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "FIXED32",
    "FIXED64",
    "LEN",
    "VARINT",
    "UnhandledLayoutError",
    "fields",
    "read_varint",
    "tag",
    "varint",
]

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10
_MAX_FIELD_NUMBER = 2**29 - 1


class UnhandledLayoutError(Exception):
    """The bytes are not in the layout the fast path handles; parse them with protobuf instead."""


def read_varint(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """The varint starting at `pos` and the position after it (as unsigned 64-bit)."""
    result = 0
    shift = 0
    while True:
        if pos >= end or shift >= 7 * _MAX_VARINT_BYTES:
            raise UnhandledLayoutError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7


def fields(buf: bytes | memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, start, end) of each field in buf[start:end].

    For VARINT fields start/end delimit the varint's bytes; for LEN fields, the payload; for the
    fixed-width ones, their 4 or 8 bytes. Groups (wire types 3 and 4) raise UnhandledLayoutError.
    """
    pos = start
    while pos < end:
        key, pos = read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0 or number > _MAX_FIELD_NUMBER:
            raise UnhandledLayoutError(f"field number {number} out of range")
        if wire_type == VARINT:
            _, after = read_varint(buf, pos, end)
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos, end)
            after = pos + length
        elif wire_type == FIXED32:
            after = pos + 4
        elif wire_type == FIXED64:
            after = pos + 8
        else:
            raise UnhandledLayoutError(f"wire type {wire_type}")
        if after > end:
            raise UnhandledLayoutError("field runs past the end of its message")
        yield number, wire_type, pos, after
        pos = after


def varint(value: int) -> bytes:
    """The varint encoding of a non-negative integer (negative int64 as two's complement)."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    """The key of a field."""
    return varint(number << 3 | wire_type)
