"""Strict reading and deterministic writing of protobuf text-format config files.

TF Serving reads its config files with the C++ text-format parser, which refuses unknown fields. We do the
same, so a typo (`max_batch_sise`) fails here, with its line number, instead of at server start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from google.protobuf import text_format
from google.protobuf.message import Message

from layertap._atomic import write_atomically
from layertap.errors import ConfigError, ConfigParseError

__all__ = [
    "format_text",
    "opening_lines",
    "parse_text",
    "read_config_text",
    "read_text_file",
    "write_text_file",
]

M = TypeVar("M", bound=Message)


def parse_text(text: str, message_type: type[M], path: str | None = None) -> M:
    """Parse `text` as a `message_type` in protobuf text format, refusing unknown or repeated singular fields.

    Raises:
        ConfigParseError: the text does not parse; carries `path` and the 1-based line.
    """
    message = message_type()
    try:
        # Parse (not Merge): a singular field given twice is an error, as in TF Serving's parser.
        text_format.Parse(text, message, allow_unknown_field=False)
    except text_format.ParseError as error:
        line = error.GetLine()
        column = error.GetColumn()
        # The library prefixes "line:column : "; we carry the position ourselves.
        reason = str(error)
        prefix = f"{line}:{column} : "
        if reason.startswith(prefix):
            reason = reason[len(prefix) :]
        raise ConfigParseError(
            f"{reason} (column {column}; expected a {message_type.DESCRIPTOR.name} in protobuf text format)",
            path=path,
            line=line,
            column=column,
            reason=reason,
        ) from error
    return message


def format_text(message: Message) -> str:
    """Write `message` in protobuf text format: two-space indents, map entries sorted by key."""
    return text_format.MessageToString(message, as_utf8=True)


def read_config_text(path: str | os.PathLike[str]) -> str:
    """Return a config file's text.

    Raises:
        ConfigError: the file cannot be read (missing, a directory, not UTF-8).
    """
    file_path = Path(path)
    try:
        return file_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise ConfigError(f"cannot read config file {str(file_path)!r}: {reason}") from error


def read_text_file(path: str | os.PathLike[str], message_type: type[M]) -> M:
    """Read and strictly parse a text-format config file.

    Raises:
        ConfigError: the file cannot be read.
        ConfigParseError: the file does not parse.
    """
    return parse_text(read_config_text(path), message_type, os.fspath(path))


def write_text_file(path: str | os.PathLike[str], text: str, *, mode: int = 0o644) -> None:
    """Replace the file at `path` with `text` atomically.

    TF Serving re-reads `--model_config_file` every `--model_config_file_poll_wait_seconds`; a file written in
    place could be read half-written, so it is replaced atomically (`layertap._atomic`).
    """
    write_atomically(path, text.encode("utf-8"), mode=mode)


def opening_lines(text: str, depth: int) -> list[int]:
    """Return the 1-based lines where a message block opens at nesting `depth` (0 = top level).

    Used to point semantic errors (e.g. a duplicate model) at the entry they concern; strings and
    `#` comments are skipped so braces inside them do not count.
    """
    lines: list[int] = []
    level = 0
    line = 1
    quote: str | None = None
    escaped = False
    in_comment = False
    for char in text:
        if char == "\n":
            line += 1
            in_comment = False
            continue
        if in_comment:
            continue
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char == "#":
            in_comment = True
        elif char in "{<":
            if level == depth:
                lines.append(line)
            level += 1
        elif char in "}>":
            level -= 1
    return lines
