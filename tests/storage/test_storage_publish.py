"""Publishing a built version to fake-gcs-server and moto (real servers on loopback): read back exactly, the
commit order, checks after upload, claims, repair of what dead publishers left."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from layertap.errors import IntegrityError, PublishError
from layertap.storage.claims import Lease, read_claims
from layertap.storage.publish import RemoteRepository, upload_order
from layertap.storage.store import ObjectInfo, ObjectStore, crc32c_of_file, open_store
from layertap.storage.uri import ObjectLocation


@pytest.fixture(params=["gs", "s3"])
def base(request: pytest.FixtureRequest) -> ObjectLocation:
    """`<scheme>://<fresh bucket>/models` on the session's emulator."""
    bucket = request.getfixturevalue("gcs_bucket" if request.param == "gs" else "s3_bucket")
    return ObjectLocation(request.param, bucket, "models")


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def objects_under(store: ObjectStore, prefix: str) -> dict[str, bytes]:
    found = {}
    for info in store.list_objects(prefix):
        data = store.read(info.key)
        assert data is not None
        found[info.key[len(prefix) :]] = data[0]
    return found


class RecordingStore:
    """A real store that records the order in which objects appear (uploads and copies)."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self.location = store.location
        self.written: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def upload(self, path: Path, key: str, crc32c: str, progress: Any = None) -> ObjectInfo:
        info = self._store.upload(path, key, crc32c, progress)
        self.written.append(key)
        return info

    def copy(self, source: str, key: str) -> ObjectInfo:
        info = self._store.copy(source, key)
        self.written.append(key)
        return info


def test_publish_reads_back_exactly(base: ObjectLocation, small_version: Path) -> None:
    repository = RemoteRepository(base, "hpt")
    first = repository.publish(small_version)
    second = repository.publish(small_version)
    assert (first.version, second.version) == (1, 2)
    assert first.uri == f"{base}/hpt/1"
    expected = files_of(small_version)
    assert first.files == len(expected) and first.bytes == sum(len(v) for v in expected.values())
    store = repository.store
    for version in (1, 2):
        assert objects_under(store, f"models/hpt/{version}/") == expected
    # Nothing left in staging; the claims say published; TF Serving's view holds the two versions only.
    assert store.list_objects("models/hpt/_layertap/staging/") == []
    assert {v: c.state for v, c in read_claims(store, "models/hpt/").items()} == {
        1: "published",
        2: "published",
    }
    assert store.children("models/hpt/") == ["1", "2", "_layertap"]
    assert repository.versions() == [1, 2]


def test_upload_order_of_every_kind_of_file(tmp_path: Path) -> None:
    names = [
        "saved_model.pb",
        "fingerprint.pb",
        "keras_metadata.pb",
        "assets.extra/tf_serving_warmup_requests",
        "assets/vocab.txt",
        "variables/variables.index",
        "variables/variables.data-00001-of-00002",
        "variables/variables.data-00000-of-00002",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    assert [[entry.relative for entry in group] for group in upload_order(tmp_path)] == [
        ["variables/variables.data-00000-of-00002", "variables/variables.data-00001-of-00002"],
        ["variables/variables.index"],
        ["assets/vocab.txt"],
        ["assets.extra/tf_serving_warmup_requests"],
        ["fingerprint.pb"],
        ["keras_metadata.pb"],
        ["saved_model.pb"],
    ]
    (tmp_path / "saved_model.pb").unlink()
    with pytest.raises(PublishError, match=f"{tmp_path} is not a SavedModel version directory: it has no"):
        upload_order(tmp_path)


def test_upload_order_makes_saved_model_pb_the_commit_point(gcs_bucket: str, small_version: Path) -> None:
    groups = [[entry.relative for entry in group] for group in upload_order(small_version)]
    assert groups == [  # TF1's SavedModelBuilder writes no fingerprint.pb
        ["variables/variables.data-00000-of-00001"],
        ["variables/variables.index"],
        ["assets/vocab.txt"],
        ["assets.extra/layertap_manifest.json", "assets.extra/tf_serving_warmup_requests"],
        ["saved_model.pb"],
    ]
    base = ObjectLocation("gs", gcs_bucket, "m")
    store = RecordingStore(open_store(base))
    RemoteRepository(base, "hpt", store=store).publish(small_version)
    visible = [key.removeprefix("m/hpt/1/") for key in store.written if key.startswith("m/hpt/1/")]
    staged = [key for key in store.written if key.startswith("m/hpt/_layertap/staging/1/")]
    # Every byte went to staging before the first object of 1/ appeared; then 1/ was filled in commit order.
    assert store.written[: len(staged)] == staged and len(staged) == 6
    assert [visible[0:1], visible[1:2], visible[2:3], sorted(visible[3:5]), visible[5:]] == groups


class CorruptingStore(RecordingStore):
    """A real store whose uploads of one file carry one flipped byte (as a bad network card would)."""

    def __init__(self, store: ObjectStore, victim: str, scratch: Path) -> None:
        super().__init__(store)
        self._victim = victim
        self._scratch = scratch

    def upload(self, path: Path, key: str, crc32c: str, progress: Any = None) -> ObjectInfo:
        if key.endswith(self._victim):
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            bad = self._scratch / "corrupt"
            bad.write_bytes(bytes(data))
            return self._store.upload(bad, key, crc32c_of_file(bad), progress)
        return self._store.upload(path, key, crc32c, progress)


def test_crc_mismatch_is_caught_and_nothing_is_published(
    base: ObjectLocation, small_version: Path, tmp_path: Path
) -> None:
    store = CorruptingStore(open_store(base), "variables/variables.index", tmp_path)
    repository = RemoteRepository(base, "hpt", store=store)
    with pytest.raises(IntegrityError) as caught:
        repository.publish(small_version)
    index = small_version / "variables" / "variables.index"
    assert f"but {index} has {index.stat().st_size} bytes with CRC32C {crc32c_of_file(index)}" in str(
        caught.value
    )
    assert "models/hpt/_layertap/staging/1/variables/variables.index: the store reports" in str(caught.value)
    # Nothing reached 1/, so the number was given back, and the next publish uses it.
    assert (
        store.list_objects("models/hpt/1/") == []
        and store.list_objects("models/hpt/_layertap/staging/") == []
    )
    assert read_claims(store, "models/hpt/") == {}
    assert RemoteRepository(base, "hpt").publish(small_version).version == 1


def dead_publisher(repository: RemoteRepository, version_dir: Path, *, copied: int, lease: float) -> int:
    """What a publisher killed after copying `copied` objects into N/ leaves (its lease not renewed)."""
    store = repository.store
    held = Lease.acquire(store, repository.prefix, max([0, *repository.versions()]) + 1, "dead:1:x", lease)
    assert held is not None
    entries = [entry for group in upload_order(version_dir) for entry in group]
    staging = f"{repository.prefix}_layertap/staging/{held.version}/"
    for position, entry in enumerate(entries):
        folder = f"{repository.prefix}{held.version}/" if position < copied else staging
        store.upload(entry.path, folder + entry.relative, entry.crc32c)
    # Its last renewal: the claim with the file list (the lease runs from here).
    held.update(state="uploading", files=[entry.record() for entry in entries])
    return held.version


def test_repair_deletes_an_abandoned_version_and_the_next_publish_gets_a_new_number(
    base: ObjectLocation, small_version: Path
) -> None:
    repository = RemoteRepository(base, "hpt")
    version = dead_publisher(repository, small_version, copied=3, lease=1.0)
    assert repository.versions() == [version] == [1]
    assert repository.repair() == []  # the lease has not run out: could be a slow, live publisher
    time.sleep(2.2)  # a lease, plus the second S3 truncates modification times to
    [action] = repository.repair()
    assert (action.version, action.action, action.deleted) == (1, "abandoned", 6)
    store = repository.store
    assert (
        store.list_objects("models/hpt/1/") == []
        and store.list_objects("models/hpt/_layertap/staging/") == []
    )
    assert read_claims(store, "models/hpt/")[1].state == "abandoned"
    # A request the dead publisher had sent lands late (the store was still writing it): swept next time.
    late = small_version / "saved_model.pb"
    store.upload(late, "models/hpt/1/saved_model.pb", crc32c_of_file(late))
    assert [(a.version, a.action, a.deleted) for a in repository.repair()] == [(1, "swept", 1)]
    assert store.list_objects("models/hpt/1/") == []
    assert RemoteRepository(base, "hpt").publish(small_version).version == 2


def test_repair_keeps_a_version_whose_publisher_died_after_the_commit_point(
    gcs_bucket: str, small_version: Path
) -> None:
    base = ObjectLocation("gs", gcs_bucket, "models")
    repository = RemoteRepository(base, "hpt")
    dead_publisher(repository, small_version, copied=6, lease=0.5)
    time.sleep(1.7)
    assert [(a.version, a.action) for a in repository.repair()] == [(1, "completed")]
    assert objects_under(repository.store, "models/hpt/1/") == files_of(small_version)
    assert read_claims(repository.store, "models/hpt/")[1].state == "published"


def test_repair_sweeps_the_staging_copies_of_a_publisher_killed_after_its_commit(
    gcs_bucket: str, small_version: Path
) -> None:
    """The last CI run found this: a publisher killed between marking its claim published and deleting its
    staging copies left them for good (only abandoned numbers were swept)."""
    base = ObjectLocation("gs", gcs_bucket, "models")
    repository = RemoteRepository(base, "hpt")
    version = dead_publisher(repository, small_version, copied=6, lease=60.0)
    staging = f"models/hpt/_layertap/staging/{version}/"
    leftover = [entry for group in upload_order(small_version) for entry in group][:2]
    for entry in leftover:  # what its parallel staging deletion had not reached when it died
        repository.store.upload(entry.path, staging + entry.relative, entry.crc32c)
    claim = read_claims(repository.store, "models/hpt/")[version]
    Lease(repository.store, "models/hpt/", version, claim.body, claim.token).finish("published")
    assert [(a.version, a.action, a.deleted) for a in repository.repair()] == [(version, "swept", 2)]
    assert repository.store.list_objects("models/hpt/_layertap/staging/") == []
    assert objects_under(repository.store, "models/hpt/1/") == files_of(small_version)
    assert repository.repair() == []  # nothing left to do: the claim stays published


def test_a_paused_publisher_loses_its_claim_to_a_repair(gcs_bucket: str, small_version: Path) -> None:
    base = ObjectLocation("gs", gcs_bucket, "models")
    paused = RemoteRepository(base, "hpt", lease_seconds=0.5)
    lease = paused.claim()  # renewing every 0.125 s
    lease.stop()  # ... until the process is paused (SIGSTOP, a long GC) past its lease
    time.sleep(1.7)
    assert [(a.version, a.action) for a in RemoteRepository(base, "hpt").repair()] == [(1, "abandoned")]
    with pytest.raises(PublishError, match="the claim was taken over by another process"):
        paused.upload(lease, small_version)
    assert paused.store.list_objects("models/hpt/1/") == []
    assert read_claims(paused.store, "models/hpt/")[1].state == "abandoned"


def test_a_live_claim_is_left_alone_and_numbers_are_claimed_not_guessed(gcs_bucket: str) -> None:
    base = ObjectLocation("gs", gcs_bucket, "models")
    first = RemoteRepository(base, "hpt", lease_seconds=0.5)
    second = RemoteRepository(base, "hpt", lease_seconds=0.5)
    held = first.claim()
    try:
        time.sleep(2.0)  # two leases (and the second of slack), renewed all along
        assert second.repair() == []
        other = second.claim()
        other.stop()
        assert other.version == 2
        with pytest.raises(
            PublishError, match=r"version 1 of gs://.*/models/hpt already exists or was claimed"
        ):
            second.claim(1)
    finally:
        held.stop()
    body = json.loads(second.store.read("models/hpt/_layertap/claims/1")[0])
    assert body["state"] == "claimed" and body["owner"] == first.owner


def test_read_api_lists_complete_versions_and_reads_their_files(gcs_bucket: str, small_version: Path) -> None:
    base = ObjectLocation("gs", gcs_bucket, "models")
    repository = RemoteRepository(base, "hpt")
    repository.publish(small_version)
    dead_publisher(repository, small_version, copied=2, lease=60.0)  # version 2: partial, its owner "alive"
    assert repository.versions() == [1, 2]
    assert repository.complete_versions() == [1]
    manifest = small_version / "assets.extra" / "layertap_manifest.json"
    assert repository.read(1, "assets.extra/layertap_manifest.json") == manifest.read_bytes()
    assert repository.read(1, "no/such/file") is None


def test_transfer_progress_reports_bytes_up_to_the_total(gcs_bucket: str, small_version: Path) -> None:
    calls: list[tuple[int, int, float]] = []
    repository = RemoteRepository(
        ObjectLocation("gs", gcs_bucket, "models"), "hpt", transfer=lambda *call: calls.append(call)
    )
    result = repository.publish(small_version)
    assert calls and calls[-1][:2] == (result.bytes, result.bytes)
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)
    assert all(total == result.bytes and seconds >= 0 for _, total, seconds in calls)


def test_repo_cli_lists_and_repairs(
    gcs_bucket: str, small_version: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from layertap.cli import main

    repository = RemoteRepository(ObjectLocation("gs", gcs_bucket, "models"), "hpt")
    repository.publish(small_version)
    dead_publisher(repository, small_version, copied=2, lease=0.5)
    model = f"gs://{gcs_bucket}/models/hpt"
    assert main(["repo", "list", model]) == 0
    assert capsys.readouterr().out.splitlines() == ["1\tvisible\tpublished", "2\tvisible\tuploading"]
    time.sleep(1.7)
    assert main(["repo", "repair", model]) == 0
    assert capsys.readouterr().out.splitlines() == ["version 2: abandoned (6 objects deleted)"]
    assert main(["repo", "list", "--json", model]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"version": 1, "visible": True, "claim": "published"},
        {"version": 2, "visible": False, "claim": "abandoned"},
    ]
    assert main(["repo", "repair", model]) == 0
    assert capsys.readouterr().out == f"nothing to repair in {model}\n"
