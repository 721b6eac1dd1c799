"""Text for messages: what a library error quotes must read as plain text on any terminal."""

from __future__ import annotations

import re

__all__ = ["strip_escapes"]

_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")


def strip_escapes(text: str) -> str:
    """Text without terminal escape sequences (Keras colours its errors) and other control characters."""
    text = _ESCAPES.sub("", text)
    return "".join(char for char in text if char in {"\n", "\t"} or ord(char) >= 32)
