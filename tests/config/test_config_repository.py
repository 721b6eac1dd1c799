"""Reading the model repository without TensorFlow: versions, completeness, signatures, manifest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from layertap.config import models, repository
from layertap.errors import ConfigError

VersionWriter = Callable[..., Path]


def test_versions_and_completeness(tmp_path: Path, write_version: VersionWriter) -> None:
    write_version("m", 1)
    write_version("m", 2, drop=("variables",))
    write_version("m", 3, drop=("saved_model.pb",))
    base = tmp_path / "models" / "m"
    (base / "tmp-4").mkdir()  # not a version: TF Serving ignores it (publishing in progress)
    (base / "0005").mkdir()
    (base / "99999999999999999999").mkdir()  # beyond int64
    (base / "6").write_text("a file, not a directory")
    found = repository.list_versions(base)
    assert sorted(found) == [1, 2, 3, 5]
    assert found[1].complete and found[1].missing == ()
    assert found[2].missing == ("variables/",)
    assert found[3].missing == ("saved_model.pb",)
    assert found[5].missing == ("saved_model.pb", "variables/")
    assert repository.list_versions(tmp_path / "absent") == {}


def test_saved_model_summary(write_version: VersionWriter) -> None:
    summary = repository.read_saved_model_summary(write_version("m", 1))
    assert summary.signature_names == frozenset({"serving_default", "conv_2", "pool_2"})
    assert summary.tensorflow_version.startswith("2.21.")


def test_summary_of_a_broken_file(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\xff\xff")
    with pytest.raises(ConfigError, match="is not a SavedModel protobuf"):
        repository.read_saved_model_summary(tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        repository.read_saved_model_summary(tmp_path / "nothing")


def test_manifest(write_version: VersionWriter) -> None:
    assert repository.read_manifest(write_version("m", 1)) is None
    path = write_version("m", 2, manifest={"tensorflow_version": "2.21.0", "keras_version": "3.15.1"})
    assert repository.read_manifest(path) == {"tensorflow_version": "2.21.0", "keras_version": "3.15.1"}
    (path / "assets.extra" / "layertap.json").write_text("[1]")
    with pytest.raises(ConfigError, match="must hold a JSON object; got list"):
        repository.read_manifest(path)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (models.latest_versions(1), [9]),
        (models.latest_versions(2), [5, 9]),
        (models.all_versions(), [1, 5, 9]),
        (models.specific_versions([5, 7]), [5]),
    ],
)
def test_aspired_versions(policy: object, expected: list[int]) -> None:
    assert repository.aspired_versions(policy, [9, 1, 5]) == expected  # type: ignore[arg-type]
