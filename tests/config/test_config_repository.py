"""Reading the model repository without TensorFlow: versions, completeness, version policies.

What one version folder holds is tested in test_version_folder.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from layertap.config import models, repository
from tests.fixtures.config_repos import VersionWriter


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
