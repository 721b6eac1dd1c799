"""The pinned TensorFlow Serving image, and whether an export's TensorFlow is too new for it.

A SavedModel written by a newer TensorFlow can use ops (or op attributes) an older server does not have; it
then fails to load there. The exporter must therefore not be newer than the server's TensorFlow. layertap
pins `tensorflow/serving` 2.21.0, whose model server is built on TensorFlow 2.21.0, the same TensorFlow
`layertap[tf]` installs, so the pair is equal (tested in tests/deploy/test_image_compat.py).
To move the pin, change these constants and the `FROM` lines in docker/ (a test keeps them in step).
"""

from __future__ import annotations

import re

from layertap.errors import ConfigError

__all__ = [
    "IMAGE_TENSORFLOW_VERSION",
    "SERVING_IMAGE_CPU",
    "SERVING_IMAGE_GPU",
    "SERVING_VERSION",
    "is_newer",
    "parse_version",
]

#: The `tensorflow/serving` release the docker/ files pin.
SERVING_VERSION = "2.21.0"
SERVING_IMAGE_GPU = f"tensorflow/serving:{SERVING_VERSION}-gpu"
SERVING_IMAGE_CPU = f"tensorflow/serving:{SERVING_VERSION}"
#: The TensorFlow that model server is built on (TF Serving releases track TensorFlow's numbering).
IMAGE_TENSORFLOW_VERSION = "2.21.0"

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int]:
    """`"2.21.0"`, `"2.21.0-rc1"`, `"2.22.0-dev20260101"` -> (major, minor, patch); suffixes are ignored.

    Raises:
        ConfigError: `text` does not start with a dotted version number.
    """
    match = _VERSION.match(text)
    if match is None:
        raise ConfigError(f"not a TensorFlow version: {text!r}; expected something like '2.21.0'")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def is_newer(version: str, than: str) -> bool:
    """True when TensorFlow `version` is newer than `than` (numeric major.minor.patch comparison)."""
    return parse_version(version) > parse_version(than)
