"""Safe loading and concurrent publishing: symlinked versions cannot escape the base path, code-carrying
model files are refused unless allowed, and two writers never share a version.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from layertap.config.repository import list_versions
from layertap.errors import PublishError, UnsafeModelError
from layertap.exporter.loading import load_model
from layertap.exporter.publish import Repository


def test_symlinked_versions_may_not_leave_the_base_path(tmp_path: Path, untrained_cnn_version: Path) -> None:
    base = tmp_path / "cnn"
    base.mkdir()
    (base / "1").symlink_to(untrained_cnn_version)  # elsewhere on disk: ignored
    (base / "real").mkdir()
    (base / "2").symlink_to(base / "real")  # inside the base path: kept
    assert {version: found.path for version, found in list_versions(base, contained=True).items()} == {
        2: base / "2"
    }


def test_a_lambda_layer_is_refused_unless_allowed(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0, name="double")(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(UnsafeModelError):
        load_model(path)
    assert load_model(path, allow_unsafe=True).get_layer("double") is not None


def test_two_writers_of_one_version_one_wins_the_other_is_refused(tmp_path: Path) -> None:
    repository = Repository(tmp_path, "cnn")
    outcomes: list[Any] = []
    barrier = threading.Barrier(8)

    def reserve() -> None:
        barrier.wait(timeout=30)
        try:
            outcomes.append(repository.reserve(7))
        except PublishError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [o for o in outcomes if not isinstance(o, PublishError)]
    refused = [o for o in outcomes if isinstance(o, PublishError)]
    assert len(winners) == 1 and len(refused) == 7
    assert all("being exported right now" in str(error) for error in refused)
    # Once published, the version is never overwritten either.
    repository.publish(winners[0])
    with pytest.raises(PublishError, match="already exists"):
        repository.reserve(7)
    assert len(list((tmp_path / "cnn").glob("7*"))) == 1
