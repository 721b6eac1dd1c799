"""Publishing into a model folder: version choice, reservations, leftovers, refusals."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from layertap.errors import PublishError, UsageError
from layertap.exporter.publish import TEMP_PREFIX, Repository


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    return int(done.stdout)


def _publish_file(repository: Repository, version: int | None = None) -> int:
    reservation = repository.reserve(version)
    (reservation.staging / "saved_model.pb").write_bytes(b"model")
    repository.publish(reservation)
    return reservation.version


def test_versions_start_at_one_and_ignore_other_names(tmp_path: Path) -> None:
    repository = Repository(tmp_path, "m")
    assert repository.versions() == []
    assert _publish_file(repository) == 1
    (tmp_path / "m" / "notes").mkdir()
    (tmp_path / "m" / "12abc").mkdir()
    (tmp_path / "m" / "5").mkdir()
    assert repository.versions() == [1, 5]
    assert _publish_file(repository) == 6
    assert (tmp_path / "m" / "6" / "saved_model.pb").read_bytes() == b"model"


def test_staging_directory_is_not_numeric_and_sits_beside_versions(tmp_path: Path) -> None:
    repository = Repository(tmp_path, "m")
    reservation = repository.reserve()
    assert reservation.staging.parent == reservation.final.parent == tmp_path / "m"
    assert reservation.staging.name.startswith(f"{TEMP_PREFIX}1-")
    assert not reservation.staging.name.isdigit()
    repository.abandon(reservation)
    assert not reservation.staging.exists()
    assert repository.versions() == []


def test_leftovers_of_dead_processes_are_removed_live_ones_kept(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    dead = folder / f"{TEMP_PREFIX}3-{_dead_pid()}-0a1b2c3d"
    (dead / "variables").mkdir(parents=True)
    (dead / "saved_model.pb").write_bytes(b"half")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = folder / f"{TEMP_PREFIX}4-{sleeper.pid}-0a1b2c3d"
        live.mkdir()
        repository = Repository(tmp_path, "m")
        with pytest.raises(
            PublishError, match=rf"version 4 of 'm' is being exported right now .*\({sleeper.pid}\)"
        ):
            repository.reserve(4)
        assert not dead.exists()
        assert live.exists()
        # the live reservation's version is skipped
        assert repository.reserve().version == 5
    finally:
        sleeper.kill()
        sleeper.wait()


def test_existing_version_is_never_overwritten(tmp_path: Path) -> None:
    repository = Repository(tmp_path, "m")
    _publish_file(repository, 2)
    with pytest.raises(PublishError, match=r"version 2 of 'm' already exists .* the next free one is 3"):
        repository.reserve(2)
    # a version appearing while exporting (even an empty directory, which rename would replace)
    reservation = repository.reserve(3)
    (tmp_path / "m" / "3").mkdir()
    with pytest.raises(PublishError, match="version 3 appeared"):
        repository.publish(reservation)
    assert list((tmp_path / "m" / "3").iterdir()) == []
    assert (tmp_path / "m" / "2" / "saved_model.pb").read_bytes() == b"model"


def test_concurrent_exports_get_distinct_versions(tmp_path: Path) -> None:
    repository = Repository(tmp_path, "m")
    versions: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        version = _publish_file(Repository(tmp_path, "m"))
        with lock:
            versions.append(version)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == list(range(1, 9))
    assert repository.versions() == list(range(1, 9))


def test_invalid_names_and_versions(tmp_path: Path) -> None:
    for name in ["", "a/b", "..", ".hidden"]:
        with pytest.raises(UsageError, match="not a plain directory name"):
            Repository(tmp_path, name)
    with pytest.raises(PublishError, match="out of range"):
        Repository(tmp_path, "m").reserve(-1)
