"""Where a base path points: a local directory or an object-store prefix. A URI is never a relative path.

`Path("gs://bucket/models")` is the relative path `gs:/bucket/models`: before this module, `layertap export
--base-path gs://bucket/models` wrote `./gs:/bucket/...` on the local disk and reported success, and `layertap
serve --model_base_path=gs://...` read that same local folder, so each hid the other's mistake. Every command
that takes a base path parses it here first:

- a plain path (absolute or relative, no scheme) is a local directory, as before;
- `file:///abs/path` (or `file://localhost/abs/path`) is that local directory;
- `gs://BUCKET/PREFIX` and `s3://BUCKET/PREFIX` are object-store prefixes (`ObjectLocation`);
- anything else that looks like a URI (`hdfs://`, `s3a://`, `http://`, `gs:/one-slash`, ...) is refused with
  one line naming what is accepted, before any model is loaded or anything is written.

`require_backend` refuses gs:// or s3:// when the package that talks to that store is not installed, naming
the extra to install. Neither function imports anything heavy: this module is safe for `layertap.client`-like
TF-free code paths and for the CLI before it imports TensorFlow.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from layertap.errors import LocationError

__all__ = [
    "BACKENDS",
    "OBJECT_SCHEMES",
    "ObjectLocation",
    "parse_location",
    "require_backend",
    "serving_base_path",
]

#: The object stores layertap publishes to.
OBJECT_SCHEMES = ("gs", "s3")

#: scheme -> (module that must be importable, its distribution, the extra that installs it).
BACKENDS = {
    "gs": ("google.cloud.storage", "google-cloud-storage", "gcs"),
    "s3": ("boto3", "boto3", "s3"),
}

# A scheme per RFC 3986, followed by ':' and at least one '/'. One-letter schemes are left alone so that a
# Windows drive ("C:/models") stays a path.
_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):(?P<slashes>/*)(?P<rest>.*)$", re.DOTALL)
# Bucket names both stores accept: lowercase letters, digits, '-', '_' and '.', 3 to 222 characters (GCS
# allows up to 222 with dots; S3 is stricter, 63, and says so itself).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")

_ACCEPTED = (
    "a local directory (a path, or file:///absolute/path), gs://BUCKET/PREFIX (pip install 'layertap[gcs]') "
    "or s3://BUCKET/PREFIX (pip install 'layertap[s3]')"
)


@dataclass(frozen=True)
class ObjectLocation:
    """A prefix in an object store: `gs://bucket/key` or `s3://bucket/key` (key without a trailing '/')."""

    scheme: str
    bucket: str
    key: str = ""

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}" if self.key else f"{self.scheme}://{self.bucket}"

    def child(self, *parts: str) -> ObjectLocation:
        """The location `parts` below this one (`child("m", "3")` -> `.../m/3`)."""
        key = "/".join(part.strip("/") for part in (self.key, *parts) if part.strip("/"))
        return ObjectLocation(self.scheme, self.bucket, key)

    @property
    def prefix(self) -> str:
        """The key prefix of the objects under this location: `key/` (empty for a whole bucket)."""
        return f"{self.key}/" if self.key else ""


def parse_location(base_path: str | os.PathLike[str]) -> Path | ObjectLocation:
    """A base path as given by a user (`--base-path`, `base_path=`): a local `Path` or an `ObjectLocation`.

    Raises:
        LocationError: a scheme other than file, gs and s3, or a malformed URI (the message names what is
            accepted).
    """
    if not isinstance(base_path, str):
        return Path(base_path)
    match = _URI.match(base_path)
    if match is None:
        if not base_path:
            raise LocationError(f"the base path is empty; expected {_ACCEPTED}")
        return Path(base_path)
    scheme = match["scheme"].lower()
    if scheme not in ("file", *OBJECT_SCHEMES):
        raise LocationError(f"unsupported base path {base_path!r} (scheme {scheme}://); expected {_ACCEPTED}")
    if match["slashes"] != "//" and not (scheme == "file" and match["slashes"] == "///"):
        raise LocationError(
            f"malformed URI {base_path!r}: expected {scheme}:// with two slashes; {_ACCEPTED}"
        )
    if scheme == "file":
        return _file_path(base_path, match["slashes"] + match["rest"])
    return _object_location(base_path, scheme, match["rest"])


def _file_path(base_path: str, after_colon: str) -> Path:
    # file:///abs -> after_colon "///abs"; file://localhost/abs -> "//localhost/abs".
    host, _, path = after_colon[2:].partition("/")
    if host not in ("", "localhost"):
        raise LocationError(
            f"file URI {base_path!r} names the host {host!r}; only local files are supported: "
            "file:///absolute/path (three slashes)"
        )
    local = unquote("/" + path)
    if local == "/" and not path:
        raise LocationError(f"file URI {base_path!r} names no directory; expected file:///absolute/path")
    return Path(local)


def _object_location(base_path: str, scheme: str, rest: str) -> ObjectLocation:
    bucket, _, key = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise LocationError(
            f"{base_path!r} does not start with a valid bucket name (got {bucket!r}): expected "
            f"{scheme}://BUCKET/PREFIX with a bucket of 3-222 lowercase letters, digits, '-', '_' or '.'"
        )
    key = key.strip("/")
    segments = key.split("/") if key else []
    if any(segment in ("", ".", "..") for segment in segments):
        raise LocationError(
            f"{base_path!r} has an empty, '.' or '..' path segment; object names are taken literally, so "
            f"write the prefix plainly ({scheme}://{bucket}/models/...)"
        )
    return ObjectLocation(scheme, bucket, key)


def require_backend(location: ObjectLocation) -> None:
    """Refuse an object store whose client library is not installed, naming the extra that installs it.

    Raises:
        LocationError: the package is missing.
    """
    module, distribution, extra = BACKENDS[location.scheme]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package (google.cloud) is missing
        found = False
    if not found:
        raise LocationError(
            f"{location}: {location.scheme}:// support is not installed (the {distribution} package is "
            f"missing); pip install 'layertap[{extra}]'"
        )


def serving_base_path(model_base_path: str) -> str:
    """A `--model_base_path` as the model server reads it: an absolute local path, or a gs:// URI unchanged.

    TF Serving (and `layertap serve`, which reads through TensorFlow's filesystems) reads local paths and gs://
    only: the stock model server links no other remote filesystem (tensorflow/serving#1963, #2062).

    Raises:
        LocationError: s3:// (with the tools that can copy it), another scheme, or a malformed URI.
    """
    location = parse_location(model_base_path)
    if isinstance(location, Path):
        return str(location.absolute())
    if location.scheme == "s3":
        raise LocationError(
            f"--model_base_path={model_base_path}: TF Serving cannot read s3:// (S3 support was removed from "
            "its model server in 2.7, tensorflow/serving#1963); copy the version to local disk first, as "
            "KServe's storage initializer and SageMaker do at pod start, or publish to gs://"
        )
    return str(location)
