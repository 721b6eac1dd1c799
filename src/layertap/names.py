"""Layer names as TensorFlow names: signature keys, input and output aliases, graph name scopes.

Keras accepts any layer name (`block 2`, `café_ü`, `层`); TensorFlow's name scopes accept only
`[A-Za-z0-9_.\\/>-]`, not starting with `_`, `/`, `-` or `>`, and tf.function parameters (the
signature inputs) want identifiers. `tensorflow_name` maps a name to a valid key and
`original_name` maps it back:

- a name TensorFlow accepts stays exactly as it is (the keys of existing exports do not change);
- any other name has each character outside `[A-Za-z0-9/@:-]` (`_` and `.` included) written as
  `_uXXXX_` (its code point, 4 to 6 hex digits); a name whose first character is escaped, or is a
  `u`, gets a leading `u`: `block 2` -> `block_u0020_2`, `café_ü` -> `caf_u00e9__u005f__u00fc_`,
  `层` -> `u_u5c42_`.

The mapping depends on the name alone, so a layer keeps its key across versions of a model and
the client computes it without asking the server; it is injective (two names never share a key)
and reversible, so listings show the name the user gave. A valid name that happens to contain an
escape sequence is escaped too, which keeps the mapping injective. No TensorFlow import here: the
exporter and the TF-free client share this module.
"""

from __future__ import annotations

import re

__all__ = [
    "SPACE_KEY",
    "is_scope_name",
    "is_tensorflow_name",
    "original_name",
    "scope_name",
    "tensorflow_name",
]

# The SignatureDef `defaults` entry holding the signature's embedding-space id
# (`layertap.exporter.space`). It starts with `_`, which no tensorflow_name() key or alias does, so it
# can never be a signature input.
SPACE_KEY = "_layertap_space"

# TensorFlow's own rule for name scopes (tensorflow/python/framework/ops.py).
_SCOPE = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*")
# Keys and aliases may also carry layertap's own separators: `shared@1` (a call of a shared layer)
# and `split:0` (a tensor of a layer with several outputs); they never become scope names.
_VALID = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>@:-]*")
_ESCAPE = re.compile(r"_u([0-9a-f]{4,6})_")
_KEPT = re.compile(r"[A-Za-z0-9/@:-]")
_KEPT_FIRST = re.compile(r"[A-Za-tv-z0-9]")


def is_tensorflow_name(name: str) -> bool:
    """Whether `name` can be a signature key or alias as it is."""
    return bool(_VALID.fullmatch(name))


def is_scope_name(name: str) -> bool:
    """Whether TensorFlow accepts `name` as a graph name scope (what Keras opens per layer call)."""
    return bool(_SCOPE.fullmatch(name))


def tensorflow_name(name: str) -> str:
    """The TensorFlow-valid key for a layer (or input) name; `name` itself when already valid."""
    if is_tensorflow_name(name) and not _ESCAPE.search(name):
        return name
    escaped = [
        char if (_KEPT_FIRST if index == 0 else _KEPT).fullmatch(char) else f"_u{ord(char):04x}_"
        for index, char in enumerate(name)
    ]
    body = "".join(escaped)
    return "u" + body if body.startswith("_") or not body else body


def original_name(key: str) -> str:
    """The name `tensorflow_name` was given for `key` (the key itself when nothing was escaped)."""
    if not _ESCAPE.search(key):
        return key
    if key.startswith("u_u"):  # the leading `u` marks an escaped first character
        key = key[1:]
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), key)


def scope_name(name: str) -> str:
    """A valid name scope for `name` (only for graph op names, which nobody asks for by name)."""
    return name if is_scope_name(name) else re.sub(r"[^A-Za-z0-9_.-]", "_", tensorflow_name(name))
