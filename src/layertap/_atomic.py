"""Replacing a file so that a reader sees the old content or the new, never part of it.

TF Serving re-reads `--model_config_file` while layertap edits it, extraction shards are read while a job
runs, and a process may be killed mid-write: every such file is written to a temporary sibling, synced,
renamed over the target (atomic within one filesystem), and the directory is synced so the rename
survives a crash. No TensorFlow here: `layertap.config` uses it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["sync_directory", "write_atomically"]


def write_atomically(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Replace the file at `path` with `data`, whole or not at all (its parent is created if needed).

    Args:
        mode: the new file's permissions, set only once `data` is written (so a key written 0o600 is
            never readable by others, not even for a moment).
    """
    file_path = Path(path)
    file_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{file_path.name}.", dir=file_path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).chmod(mode)
        Path(temporary).replace(file_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sync_directory(file_path.parent)


def sync_directory(directory: Path) -> None:
    """fsync `directory`, so the renames done in it are on disk."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
