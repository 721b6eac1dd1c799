"""A URI is never a relative path: how base paths are parsed (layertap.storage.uri), TF-free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from layertap.errors import LocationError, UsageError
from layertap.storage.uri import ObjectLocation, parse_location, require_backend, serving_base_path


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("models", Path("models")),
        ("./a/b", Path("a/b")),
        ("/srv/models", Path("/srv/models")),
        (Path("gs:/not-a-uri"), Path("gs:/not-a-uri")),  # a Path object is always a path
        ("file:///tmp/x", Path("/tmp/x")),
        ("file://localhost/tmp/x", Path("/tmp/x")),
        ("file:///tmp/with%20space", Path("/tmp/with space")),
        ("C:/models", Path("C:/models")),  # a drive letter is not a scheme
    ],
)
def test_local_paths(given: str | Path, expected: Path) -> None:
    assert parse_location(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("gs://bucket/models", ObjectLocation("gs", "bucket", "models")),
        ("gs://bucket/models/", ObjectLocation("gs", "bucket", "models")),
        ("gs://bucket", ObjectLocation("gs", "bucket", "")),
        ("GS://my.bucket-1/a/b", ObjectLocation("gs", "my.bucket-1", "a/b")),
        ("s3://bucket/p/q", ObjectLocation("s3", "bucket", "p/q")),
    ],
)
def test_object_locations(given: str, expected: ObjectLocation) -> None:
    assert parse_location(given) == expected


def test_location_children_and_prefix() -> None:
    base = ObjectLocation("gs", "b", "models")
    assert str(base.child("m", "3")) == "gs://b/models/m/3"
    assert base.child("m").prefix == "models/m/"
    assert str(ObjectLocation("s3", "b").child("m")) == "s3://b/m"
    assert ObjectLocation("s3", "b").prefix == ""


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("hdfs://nn/models", "unsupported base path 'hdfs://nn/models' (scheme hdfs://)"),
        ("s3a://b/models", "(scheme s3a://)"),
        ("http://host/models", "(scheme http://)"),
        ("gs:/bucket/models", "malformed URI 'gs:/bucket/models': expected gs:// with two slashes"),
        ("gs:bucket", "malformed URI"),
        ("file://otherhost/tmp/x", "names the host 'otherhost'"),
        ("file://", "names no directory"),
        ("gs://Bad_Bucket/x", "does not start with a valid bucket name (got 'Bad_Bucket')"),
        ("gs:///models", "malformed URI 'gs:///models'"),
        ("s3://bucket/a//b", "empty, '.' or '..' path segment"),
        ("gs://bucket/a/../b", "empty, '.' or '..' path segment"),
        ("", "the base path is empty"),
    ],
)
def test_refused(given: str, words: str) -> None:
    with pytest.raises(LocationError) as caught:
        parse_location(given)
    message = str(caught.value)
    assert words in message
    assert "\n" not in message
    assert isinstance(caught.value, UsageError)
    if "scheme" in words:
        assert "gs://BUCKET/PREFIX (pip install 'layertap[gcs]')" in message
        assert "s3://BUCKET/PREFIX (pip install 'layertap[s3]')" in message


def test_serving_base_path() -> None:
    assert serving_base_path("file:///srv/m") == "/srv/m"
    assert serving_base_path("gs://bkt/models/m/") == "gs://bkt/models/m"
    assert serving_base_path("rel/m") == str(Path("rel/m").absolute())
    with pytest.raises(LocationError, match=r"TF Serving cannot read s3://.*KServe's storage initializer"):
        serving_base_path("s3://bkt/m")
    with pytest.raises(LocationError, match="scheme hdfs://"):
        serving_base_path("hdfs://nn/m")


def test_backends_installed_here() -> None:
    require_backend(ObjectLocation("gs", "bucket"))
    require_backend(ObjectLocation("s3", "bucket"))


def test_missing_backend_names_the_extra(tmp_path: Path) -> None:
    # A fresh interpreter where google.cloud.storage and boto3 cannot be imported, as without the extras.
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('boto3',) or name.startswith('google.cloud'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    code = (
        "from layertap.storage.uri import ObjectLocation, require_backend\n"
        "for scheme in ('gs', 's3'):\n"
        "    try:\n"
        "        require_backend(ObjectLocation(scheme, 'bucket', 'm'))\n"
        "    except Exception as error:\n"
        "        print(type(error).__name__, error)\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": f"{tmp_path}:{src}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [
        "LocationError gs://bucket/m: gs:// support is not installed (the google-cloud-storage package is "
        "missing); pip install 'layertap[gcs]'",
        "LocationError s3://bucket/m: s3:// support is not installed (the boto3 package is missing); "
        "pip install 'layertap[s3]'",
    ]
