"""SIGKILL the TF-free publisher (`layertap repo push`) at 30 random moments while it uploads a ~100 MB
version to fake-gcs-server: no numbered version with saved_model.pb is ever incomplete, every new publisher
claims a fresh number, and after the kills a repair removes every partial version and the next publish
completes."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from layertap.storage.claims import read_claims
from layertap.storage.publish import RemoteRepository
from layertap.storage.store import ObjectStore, crc32c_of_file
from layertap.storage.uri import ObjectLocation
from tests.storage.emulators import FakeGcs, start_fake_gcs, unique_bucket

CHILD = Path(__file__).with_name("publish_child.py")
ROOT = Path(__file__).resolve().parents[2]
KILLS = 30
LEASE_SECONDS = 1.0


@pytest.fixture(scope="module")
def big_version(small_version: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small real SavedModel plus 4 x 25 MB of random variable shards (~100 MB to upload)."""
    version = tmp_path_factory.mktemp("big-version") / "1"
    shutil.copytree(small_version, version)
    rng = random.Random(17)
    for shard in range(1, 5):
        (version / "variables" / f"variables.data-{shard:05d}-of-00005").write_bytes(rng.randbytes(25 << 20))
    return version


@pytest.fixture(scope="module")
def memory_gcs() -> Iterator[FakeGcs]:
    """A fake-gcs-server of its own, storing in memory-backed /dev/shm when there is one: the kill test
    writes ~3 GB in total (each new publisher deletes what the killed one left); a shared disk is slow."""
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="layertap-kill-", dir=shm if shm.is_dir() else None))
    try:
        with start_fake_gcs(root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


def push(version: Path, model: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(version), model, "--lease-seconds", str(LEASE_SECONDS)],
        env={**env, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expected_objects(version: Path) -> dict[str, tuple[int, str]]:
    return {
        p.relative_to(version).as_posix(): (p.stat().st_size, crc32c_of_file(p))
        for p in version.rglob("*")
        if p.is_file()
    }


def loadable_versions_are_complete(
    store: ObjectStore, prefix: str, expected: dict[str, tuple[int, str]]
) -> int:
    """Every numbered version that holds saved_model.pb holds every object, byte-exact; returns how many."""
    by_version: dict[str, dict[str, tuple[int, str | None]]] = {}
    for info in store.list_objects(prefix):
        version, _, relative = info.key[len(prefix) :].partition("/")
        if version.isdigit():
            by_version.setdefault(version, {})[relative] = (info.size, info.crc32c)
    complete = 0
    for version, objects in by_version.items():
        if "saved_model.pb" in objects:
            assert objects == expected, f"version {version} holds saved_model.pb but is incomplete"
            complete += 1
    return complete


def wait_for_claims(
    store: ObjectStore, prefix: str, known: set[int], count: int, timeout: float = 120
) -> set[int]:
    """The numbers claimed beyond `known`, once `count` of them exist."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = {
            int(info.key.rsplit("/", 1)[1]) for info in store.list_objects(prefix + "_layertap/claims/")
        } - known
        if len(new) >= count:
            return new
        time.sleep(0.05)
    raise AssertionError(f"no {count} new claims within {timeout} s (known {sorted(known)})")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_sigkill_at_random_moments_never_leaves_a_loadable_partial_version(
    memory_gcs: FakeGcs, big_version: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in memory_gcs.env().items():
        monkeypatch.setenv(key, value)
    env = {**os.environ, **memory_gcs.env()}
    bucket = unique_bucket("kill")
    memory_gcs.create_bucket(bucket)
    model = f"gs://{bucket}/models/big"
    repository = RemoteRepository(ObjectLocation("gs", bucket, "models"), "big")
    store, prefix = repository.store, repository.prefix
    expected = expected_objects(big_version)

    first = push(big_version, model, env)
    wait_for_claims(store, prefix, set(), 1)
    claimed_at = time.monotonic()
    out, err = first.communicate(timeout=300)
    upload = time.monotonic() - claimed_at  # from the claim to the end: the upload and the commit
    assert first.returncode == 0, err
    assert json.loads(out)["version"] == 1

    # One publisher at a time, killed at a random moment of its upload (from its claim to where the first one
    # had finished), until 30 were killed before they finished. Each new one repairs what the last one left.
    rng = random.Random(1234)
    claimed = {1}
    kills = rounds = 0
    while kills < KILLS:
        rounds += 1
        assert rounds <= 2 * KILLS, f"only {kills} kills in {rounds - 1} rounds"
        child = push(big_version, model, env)
        new = wait_for_claims(store, prefix, claimed, 1)
        assert min(new) > max(claimed)  # a fresh number, never one used before
        time.sleep(rng.uniform(0, upload))
        child.send_signal(signal.SIGKILL)
        kills += child.wait() == -signal.SIGKILL
        loadable_versions_are_complete(store, prefix, expected)
        assert set(read_claims(store, prefix)) - claimed == new  # nobody else claimed anything
        claimed |= new

    time.sleep(LEASE_SECONDS + 1.5)  # every killed publisher's lease has run out
    last = push(big_version, model, env)
    out, err = last.communicate(timeout=300)
    assert last.returncode == 0, err
    result = json.loads(out)
    assert result["version"] == max(claimed) + 1
    # The repair settled every claim the kills left: complete versions kept, partial ones deleted.
    states = {v: c.state for v, c in read_claims(store, prefix).items()}
    assert set(states.values()) <= {"published", "abandoned"}
    published = sorted(v for v, state in states.items() if state == "published")
    assert published == repository.versions()
    assert loadable_versions_are_complete(store, prefix, expected) == len(published)
    assert store.list_objects(prefix + "_layertap/staging/") == []
    print(f"{kills} kills in {rounds} rounds, upload {upload:.1f} s; published {published} of {len(states)}")


def test_concurrent_publishers_get_distinct_complete_versions(
    fake_gcs: FakeGcs, gcs_bucket: str, small_version: Path
) -> None:
    env = {**os.environ, **fake_gcs.env()}
    model = f"gs://{gcs_bucket}/models/hpt"
    children = [push(small_version, model, env) for _ in range(4)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        assert "uploaded" not in err  # progress is for terminals; stderr is a pipe here
        results.append(json.loads(out)["version"])
    assert sorted(results) == [1, 2, 3, 4]
    repository = RemoteRepository(ObjectLocation("gs", gcs_bucket, "models"), "hpt")
    expected = expected_objects(small_version)
    assert loadable_versions_are_complete(repository.store, repository.prefix, expected) == 4
    assert repository.complete_versions() == [1, 2, 3, 4]
