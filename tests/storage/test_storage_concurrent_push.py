"""Concurrent TF-free publishers (`layertap repo push`) get distinct, complete versions.

The 30 SIGKILLs of a publisher mid-upload, with their checks (no numbered version with saved_model.pb is ever
incomplete, every new publisher claims a fresh number, the repair settles every claim and empties staging,
the next publish completes), run in tests/storage/test_storage_gcs_kill_e2e.py, beside a serving
`layertap serve`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from layertap.storage.publish import RemoteRepository
from layertap.storage.uri import ObjectLocation
from tests.storage.emulators import FakeGcs
from tests.storage.kill_checks import expected_objects, loadable_versions_are_complete, push

LEASE_SECONDS = 1.0


def test_concurrent_publishers_get_distinct_complete_versions(
    fake_gcs: FakeGcs, gcs_bucket: str, small_version: Path
) -> None:
    env = {**os.environ, **fake_gcs.env()}
    model = f"gs://{gcs_bucket}/models/hpt"
    children = [push(small_version, model, env, LEASE_SECONDS) for _ in range(4)]
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
