"""A local stand-in for versions stored on gs:// or s3://, for the checks that read them without TensorFlow.

`layertap compat` and `layertap config check` read a version's `saved_model.pb`, its manifest and its warmup
file, and need to know which files it holds, never the bytes of its variable shards. `sparse_copy(location)`
lists every object under `location` once and builds a temporary local tree with the same folders and only
those few files downloaded, so the checks written for local repositories run unchanged on it: a version
counts as having `variables/` when any object lies below that prefix, as TF Serving sees a GCS "folder".
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from layertap.errors import ConfigError
from layertap.storage.store import open_store
from layertap.storage.uri import ObjectLocation
from layertap.version_folder import MANIFEST_PATH, SAVED_MODEL_FILES, WARMUP_PATH

__all__ = ["READ_FILES", "sparse_copy", "under_uri"]

#: The files of a version the TF-free checks read (relative to the version); everything else is listed only.
READ_FILES = frozenset({*SAVED_MODEL_FILES, str(MANIFEST_PATH), str(WARMUP_PATH)})


@contextlib.contextmanager
def sparse_copy(location: ObjectLocation) -> Iterator[Path]:
    """A temporary folder standing for `location` (a model base path or one version); removed on exit.

    Raises:
        LocationError: the store's extra is not installed.
        StorageError: the store refused the listing or a read (missing bucket, credentials).
        ConfigError: nothing is stored under `location`.
    """
    store = open_store(location)
    objects = store.list_objects(location.prefix)
    if not objects:
        raise ConfigError(f"nothing is stored under {location}")
    with tempfile.TemporaryDirectory(prefix="layertap-snapshot-") as folder:
        root = Path(folder) / (location.key.rsplit("/", 1)[-1] or location.bucket)
        root.mkdir()
        for info in objects:
            relative = info.key[len(location.prefix) :]
            parts = relative.split("/")
            # Folder placeholders ("a/b/") and names that would leave the tree ("..") stand for no file.
            if not parts[-1] or any(part in ("", ".", "..") for part in parts[:-1]):
                continue
            target = root.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            if relative in READ_FILES or relative.partition("/")[2] in READ_FILES:
                found = store.read(info.key)
                if found is not None:
                    target.write_bytes(found[0])
        yield root


def under_uri(text: str, root: Path, location: ObjectLocation) -> str:
    """`text` (a message about files of the stand-in at `root`) naming the objects at `location` instead."""
    return text.replace(str(root), str(location))
