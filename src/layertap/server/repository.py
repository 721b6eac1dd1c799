"""A model's base path on disk: which numbered version directories it holds.

As in TF Serving, any child directory whose name is a non-negative int64 is a version; other names
(`tmp-3`, `.staging`) are ignored, which is what makes "write elsewhere, then rename" publishing safe.
The server does not check that a version directory is complete; a half-copied one fails to load.
A version that is a symlink leading out of the base path is ignored (with a warning).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["INT64_MAX", "list_versions"]

logger = logging.getLogger(__name__)

INT64_MAX = 2**63 - 1


def list_versions(base_path: str | os.PathLike[str]) -> dict[int, Path]:
    """The version directories under `base_path`, by version number.

    A missing or unreadable base path yields no versions (and a warning), as TF Serving keeps waiting
    for the directory to appear rather than failing.
    """
    base = Path(base_path)
    try:
        children = list(base.iterdir())
    except OSError as error:
        logger.warning("cannot list model base path %s: %s", base, error.strerror or error)
        return {}
    versions: dict[int, Path] = {}
    for child in children:
        name = child.name
        if not (name.isascii() and name.isdigit()) or int(name) > INT64_MAX:
            continue
        if not child.is_dir():
            continue
        if child.is_symlink() and not child.resolve().is_relative_to(base.resolve()):
            # A link out of the base path would serve whatever it points at: refuse the escape.
            logger.warning("ignoring version %s: a symlink to %s, outside %s", child, child.resolve(), base)
            continue
        version = int(name)
        # "0001" and "1" are the same version to TF Serving; keep the first seen, deterministically.
        if version not in versions or name < versions[version].name:
            versions[version] = child
    return versions
