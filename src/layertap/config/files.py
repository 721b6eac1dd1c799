"""One kind of TF Serving config file: parse, read, format and write it, the same way for every kind.

`models.config`, `batching.config`, `monitoring.config` and `ssl.config` are each one protobuf message in
text format. What differs between them is only what a parsed message must satisfy (and the value layertap
hands out for it: `BatchingSettings` for batching, the message itself for the rest) and who may read the
written file; `ConfigFile` holds those differences and does the rest once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

from layertap.config.textformat import format_text, parse_text, read_config_text, write_text_file

__all__ = ["ConfigFile", "unchanged"]

V = TypeVar("V")
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class ConfigFile(Generic[V, M]):
    """A config file kind holding one `message_type` in text format, handed out as a checked `V`.

    Attributes:
        message_type: the protobuf message the file holds.
        from_message: the checked value of a parsed message; given the text and the file's path so that it
            can point a `ConfigParseError` at the offending line.
        to_message: the message to write for a value; raises `ConfigError` for one TF Serving would refuse.
        mode: permissions of a written file (0o600 for files that hold a private key).
    """

    message_type: type[M]
    from_message: Callable[[M, str, str | None], V]
    to_message: Callable[[V], M]
    mode: int = 0o644

    def parse(self, text: str, path: str | None = None) -> V:
        """Parse `text` strictly (unknown fields refused, as TF Serving's parser does) and check it.

        Raises:
            ConfigParseError: the text does not parse or breaks a rule, with `path` and the line when known.
        """
        return self.from_message(parse_text(text, self.message_type, path), text, path)

    def read(self, path: str | os.PathLike[str]) -> V:
        """Read, parse and check the file at `path`.

        Raises:
            ConfigError: the file cannot be read (ConfigParseError: as `parse`).
        """
        return self.parse(read_config_text(path), os.fspath(path))

    def format(self, value: V) -> str:
        """`value` in canonical text format (two-space indents, map entries sorted by key).

        Raises:
            ConfigError: the value would be refused by TF Serving.
        """
        return format_text(self.to_message(value))

    def write(self, path: str | os.PathLike[str], value: V) -> None:
        """Write `value` to `path` atomically (TF Serving may be polling the file), with this kind's mode.

        Raises:
            ConfigError: as `format`; nothing is written then.
        """
        write_text_file(path, self.format(value), mode=self.mode)


def unchanged(message: M) -> M:
    """`to_message` of a kind whose value is the message itself, checked when it was built."""
    return message
