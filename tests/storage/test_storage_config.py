"""`layertap config models ...` on a models.config that lives on gs:// (fake-gcs-server): guarded writes that
never lose a concurrent editor's change, and the two-step label move over versions published to the bucket."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from layertap.cli import main
from layertap.config import parse_model_server_config
from layertap.errors import StorageConflictError
from layertap.storage.config_file import RemoteText
from layertap.storage.publish import RemoteRepository
from layertap.storage.store import crc32c_of_file
from layertap.storage.uri import ObjectLocation


def run_cli(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def models_in(location: ObjectLocation) -> dict[str, str]:
    text = RemoteText.read(location).text
    assert text is not None
    return {entry.name: entry.base_path for entry in parse_model_server_config(text).model_config_list.config}


def test_a_concurrent_edit_is_refused_not_lost(gcs_bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = f"gs://{gcs_bucket}/serving/models.config"
    location = ObjectLocation("gs", gcs_bucket, "serving/models.config")
    assert (
        run_cli(["config", "models", "set", "a", "--base-path", f"gs://{gcs_bucket}/m/a", "--config", config])
        == 0
    )
    assert "wrote gs://" in capsys.readouterr().err
    slow = RemoteText.read(location)  # an editor reads ...
    assert run_cli(["config", "models", "set", "b", "--base-path", "/models/b", "--config", config]) == 0
    with pytest.raises(
        StorageConflictError, match="was changed by another editor after this command read it"
    ):
        slow.write(slow.text.replace("/m/a", "/m/a2"))  # ... and writes after another editor did
    assert models_in(location) == {"a": f"gs://{gcs_bucket}/m/a", "b": "/models/b"}


def test_concurrent_editors_through_the_cli_all_land(gcs_bucket: str) -> None:
    config = f"gs://{gcs_bucket}/serving/models.config"
    location = ObjectLocation("gs", gcs_bucket, "serving/models.config")
    assert run_cli(["config", "models", "set", "m0", "--base-path", "/models/m0", "--config", config]) == 0
    refusals: list[int] = []

    def editor(index: int) -> None:
        # A pipeline that runs the command again when told another editor got there first.
        for _ in range(20):
            code = run_cli(
                [
                    "config",
                    "models",
                    "set",
                    f"m{index}",
                    "--base-path",
                    f"/models/m{index}",
                    "--config",
                    config,
                ]
            )
            if code == 0:
                return
            refusals.append(code)
        raise AssertionError(f"editor {index} never got its change in")

    threads = [threading.Thread(target=editor, args=(index,)) for index in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert models_in(location) == {f"m{i}": f"/models/m{i}" for i in range(7)}
    assert set(refusals) <= {1}  # a refused edit exits 1 (the operation failed) and is simply run again


@pytest.fixture
def spaced_version(small_version: Path, tmp_path: Path) -> Path:
    """small_version with a manifest naming one embedding space, so the label gate answers from space ids."""
    version = tmp_path / "1"
    shutil.copytree(small_version, version)
    (version / "assets.extra" / "layertap.json").write_text(
        json.dumps({"signatures": {"serving_default": {"space": "s-1"}}})
    )
    return version


def test_two_step_label_move_with_versions_and_config_on_gcs(
    gcs_bucket: str, spaced_version: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = RemoteRepository(ObjectLocation("gs", gcs_bucket, "models"), "m")
    assert repository.publish(spaced_version).version == 1
    config = f"gs://{gcs_bucket}/serving/models.config"
    base = f"gs://{gcs_bucket}/models/m"
    common = ["--config", config]
    assert run_cli(["config", "models", "set", "m", "--base-path", base, "--specific", "1", *common]) == 0
    assert run_cli(["config", "models", "label", "m", "stable", "1", *common]) == 0
    # Version 2 is claimed but not yet uploaded completely: it cannot carry a label.
    lease = repository.claim()
    index = spaced_version / "variables" / "variables.index"
    repository.store.upload(index, "models/m/2/variables/variables.index", crc32c_of_file(index))
    assert run_cli(["config", "models", "label", "m", "stable", "2", "--step", "1", *common]) == 2
    assert "version 2 in gs://" in capsys.readouterr().err
    repository.upload(lease, spaced_version)

    assert run_cli(["config", "models", "label", "m", "stable", "2", "--step", "1", *common]) == 0
    capsys.readouterr()
    assert run_cli(["config", "models", "show", "--json", *common]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["labels"] == {"stable": 1} and "2" in row["policy"] and "1" in row["policy"]
    assert run_cli(["config", "models", "label", "m", "stable", "2", "--step", "2", *common]) == 0
    assert "gate:" in capsys.readouterr().err
    assert run_cli(["config", "models", "show", "--json", *common]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["labels"] == {"stable": 2} and row["base_path"] == base
