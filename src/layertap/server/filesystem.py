"""Where `layertap serve` reads versions and config files: a local folder, or gs:// through TensorFlow.

TF Serving reads every base path through TensorFlow's filesystem layer (`Env::Default()`), and its model
server links exactly one remote filesystem, GCS (`tensorflow_serving/model_servers/BUILD`; S3 and HDFS left
with TF 2.7: tensorflow/serving#1963, #2062). `layertap serve` reads gs:// through the same C++ code, by way
of `tf.io.gfile`, so credentials (Application Default Credentials, `GOOGLE_APPLICATION_CREDENTIALS`), the
`GCS_*` tuning variables and the fixed endpoint behave as they do in TF Serving. Local folders keep
`layertap.config.repository.list_versions` (symlinks out of the base path refused).

What a version is on GCS follows `file_system_storage_path_source.cc` (`PollFileSystemForServable`):

- the base path must exist (`FileExists`), else the poll is a filesystem access error ("Could not find base
  path ...") that changes nothing: versions that serve keep serving, and the next poll tries again;
- GCS has no folders: `GetChildren` lists every object under the prefix, and TF Serving keeps each name up to
  its first `/`. So a version `N/` appears with its FIRST object, before `saved_model.pb` exists; whatever
  then loads it sees a partial version (see docs/publishing.md for the order that makes that safe).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from layertap.config.repository import INT64_MAX, list_versions
from layertap.config.textformat import read_config_text
from layertap.errors import ConfigError, LocationError, ServerError
from layertap.storage.uri import parse_location, serving_base_path

__all__ = [
    "BasePathError",
    "Location",
    "RemotePath",
    "config_location",
    "local_copy",
    "location",
    "read_text",
    "version_paths",
]

logger = logging.getLogger(__name__)


class BasePathError(ServerError):
    """A base path could not be listed: a missing bucket or prefix, refused credentials, a network error.

    A poll that meets it changes nothing (TF Serving's "filesystem access error").
    """


class RemotePath:
    """A file or folder named by a gs:// URI, read through `tf.io.gfile`: the part of `Path` the server uses.

    TensorFlow is imported on the first access, not on construction, so flags can be checked without it.
    """

    __slots__ = ("uri",)

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")

    def __truediv__(self, part: str | os.PathLike[str]) -> RemotePath:
        return RemotePath(f"{self.uri}/{PurePosixPath(os.fspath(part)).as_posix().strip('/')}")

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"RemotePath({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    @property
    def name(self) -> str:
        """The last path segment."""
        return self.uri.rsplit("/", 1)[-1]

    def exists(self) -> bool:
        """True when an object or a prefix has this name (a bucket: when it exists)."""
        return bool(_gfile().exists(self.uri))

    def is_dir(self) -> bool:
        """True when objects exist under this prefix (GCS has no empty folders)."""
        return bool(_gfile().isdir(self.uri))

    def is_file(self) -> bool:
        """True when an object has exactly this name."""
        gfile = _gfile()
        return bool(gfile.exists(self.uri)) and not gfile.isdir(self.uri)

    def open(self, mode: str = "rb") -> IO[Any]:
        """A `tf.io.gfile.GFile` on the object."""
        stream: IO[Any] = _gfile().GFile(self.uri, mode)
        return stream

    def read_bytes(self) -> bytes:
        """The whole object."""
        with self.open("rb") as stream:
            data: bytes = stream.read()
        return data

    def children(self) -> list[str]:
        """The names directly under this prefix, as TF Serving trims them: up to the first `/`.

        Raises:
            tf.errors.OpError: the listing failed.
        """
        return sorted({name.split("/", 1)[0] for name in _gfile().listdir(self.uri)} - {""})


#: A place the server reads from.
Location = Path | RemotePath


def location(path: str) -> Location:
    """The local `Path` (absolute) or `RemotePath` that a base path names.

    Raises:
        LocationError: s3:// or another scheme TF Serving cannot read, or a malformed URI.
    """
    served = serving_base_path(path)
    return Path(served) if isinstance(parse_location(served), Path) else RemotePath(served)


def config_location(path: str) -> Location:
    """The local `Path` or `RemotePath` of a config file (`--model_config_file`).

    Raises:
        LocationError: a scheme other than file:// and gs://, or a malformed URI.
    """
    parsed = parse_location(path)
    if isinstance(parsed, Path):
        return parsed
    if parsed.scheme != "gs":
        raise LocationError(
            f"--model_config_file={path}: the model server reads its config through TensorFlow's "
            "filesystems, which reach local files and gs:// only (tensorflow/serving#1963); copy it to "
            "local disk or gs://"
        )
    return RemotePath(str(parsed))


def version_paths(base_path: str, *, name: str = "") -> dict[int, Location]:
    """The versions under `base_path` (a local folder or a gs:// prefix), by number, as TF Serving lists them.

    A local base path that does not exist has no versions (the caller says so); a remote one that cannot be
    listed raises, so that the caller changes nothing.

    Raises:
        BasePathError: a gs:// base path that does not exist or could not be listed.
        LocationError: the base path's scheme cannot be served.
    """
    base = location(base_path)
    if isinstance(base, Path):
        return {number: version.path for number, version in list_versions(base, contained=True).items()}
    import tensorflow as tf

    servable = f" for servable {name}" if name else ""
    try:
        if not base.exists():
            raise BasePathError(f"Could not find base path {base}{servable}{_missing_bucket_hint(base)}")
        children = base.children()
    except tf.errors.OpError as error:
        raise BasePathError(f"Could not list base path {base}{servable}: {error.message}") from None
    versions: dict[int, Location] = {}
    for child in children:
        # The same rule as on disk: a whole name of ASCII digits within int64 ("0007" is version 7).
        if child.isascii() and child.isdigit() and int(child) <= INT64_MAX:
            versions.setdefault(int(child), base / child)
    return versions


def _missing_bucket_hint(base: RemotePath) -> str:
    bucket = RemotePath("/".join(base.uri.split("/", 3)[:3]))
    try:
        if not bucket.exists():
            return f": the bucket {bucket} does not exist, or these credentials cannot see it"
    except Exception as error:  # the hint must never hide the real error
        logger.debug("checking %s failed: %s", bucket, error)
    return ""


def read_text(path: str) -> str:
    """A config file's text, from the local disk or gs://.

    Raises:
        LocationError: the scheme cannot be read.
        ConfigError: the file or object does not exist, cannot be read, or is not UTF-8.
    """
    place = config_location(path)
    if isinstance(place, Path):
        return read_config_text(place)
    import tensorflow as tf

    try:
        return place.read_bytes().decode("utf-8")
    except tf.errors.OpError as error:
        raise ConfigError(f"cannot read config file {str(place)!r}: {error.message}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"cannot read config file {str(place)!r}: {error}") from None


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A temporary local copy of the version at a gs:// URI, read through `tf.io.gfile`; removed on exit.

    For the commands that check a version as TF Serving would load it (`layertap validate`): they read
    it with TensorFlow's own GCS client, so credentials and endpoint are TF Serving's.

    Raises:
        LocationError: not a gs:// URI (TensorFlow reads no other object store).
        ConfigError: nothing is stored under the URI, or it could not be read.
    """
    place = parse_location(uri)
    if isinstance(place, Path) or place.scheme != "gs":
        raise LocationError(
            f"{uri}: only gs:// versions are read through TensorFlow's filesystems (its pip package has no "
            "s3:// filesystem); give a local folder or a gs:// URI"
        )
    import tensorflow as tf

    source = str(place)
    with tempfile.TemporaryDirectory(prefix="layertap-version-") as folder:
        target = Path(folder) / place.key.rsplit("/", 1)[-1]
        try:
            copied = 0
            for directory, _, files in _gfile().walk(source):
                relative = directory[len(source) :].strip("/")
                (target / relative).mkdir(parents=True, exist_ok=True)
                for name in files:
                    _gfile().copy(f"{directory.rstrip('/')}/{name}", str(target / relative / name))
                    copied += 1
        except tf.errors.OpError as error:
            raise ConfigError(f"cannot read {source}: {error.message}") from None
        if not copied:
            raise ConfigError(f"nothing is stored under {source}; expected a SavedModel version folder")
        yield target


def _gfile() -> Any:
    import tensorflow as tf

    return tf.io.gfile
