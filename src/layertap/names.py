"""Layer names as TensorFlow names: signature keys, input and output aliases, graph name scopes.

Keras accepts any layer name (`block 2`, `café_ü`, `层`); TensorFlow's name scopes accept only
`[A-Za-z0-9_.\\/>-]` (and no `_`, `/`, `-` or `>` first). `tensorflow_name` maps a name to a valid
one and `original_name` maps it back:

- a name TensorFlow accepts stays exactly as it is (the keys of existing exports do not change);
- any other name has each character outside `[A-Za-z0-9_/-]` (including `.`) written as
  `.uXXXX.` (its code point, 4 to 6 hex digits), e.g. `block 2` -> `block.u0020.2`,
  `层` -> `.u5c42.`.

The mapping depends on the name alone, so a layer keeps its key across versions of a model and
the client computes it without asking the server; it is injective (two names never share a key)
and reversible, so listings can show the name the user gave. A valid name that happens to contain
an escape sequence is escaped too, which keeps the mapping injective. No TensorFlow import here:
the exporter and the TF-free client share this module.
"""

from __future__ import annotations

import re

__all__ = ["is_tensorflow_name", "original_name", "tensorflow_name"]

# TensorFlow's own rule for name scopes (tensorflow/python/framework/ops.py), applied to each key.
_VALID = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*")
_ESCAPE = re.compile(r"\.u([0-9a-f]{4,6})\.")
_KEPT = re.compile(r"[A-Za-z0-9_/-]")


def is_tensorflow_name(name: str) -> bool:
    """Whether TensorFlow accepts `name` as a name scope (and so as a key or alias)."""
    return bool(_VALID.fullmatch(name))


def tensorflow_name(name: str) -> str:
    """The TensorFlow-valid key for a layer (or input) name; `name` itself when already valid."""
    if is_tensorflow_name(name) and not _ESCAPE.search(name):
        return name
    escaped = "".join(char if _KEPT.fullmatch(char) else f".u{ord(char):04x}." for char in name)
    # The first character must be a letter, digit or '.'; an escape starts with '.'.
    if escaped and escaped[0] in "_/-":
        escaped = f".u{ord(escaped[0]):04x}." + escaped[1:]
    return escaped or ".u0000."


def original_name(key: str) -> str:
    """The name `tensorflow_name` was given for `key` (the key itself when nothing was escaped)."""
    if not _ESCAPE.search(key):
        return key
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), key)
