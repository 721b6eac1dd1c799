"""Fixtures for the object-storage tests: one fake-gcs-server and one moto S3 server per session (real
servers on 127.0.0.1, see tests/storage/emulators.py), a fresh bucket per test, and the environment variables
that point layertap (in this process and in child processes) at them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.storage.emulators import FakeGcs, MotoS3, start_fake_gcs, start_moto_s3, unique_bucket
from tests.storage.gcs_serving import export_scale
from tests.storage.tensorflow_gcs import TensorFlowGcs, start_tensorflow_gcs


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    with start_fake_gcs(tmp_path_factory.mktemp("fake-gcs")) as server:
        yield server


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    with start_moto_s3() as server:
        yield server


@pytest.fixture
def gcs_bucket(fake_gcs: FakeGcs, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the session's fake-gcs-server; STORAGE_EMULATOR_HOST points at it."""
    return fake_gcs.fresh_bucket(monkeypatch, "gcs")


@pytest.fixture
def s3_bucket(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the session's moto server; AWS_ENDPOINT_URL and dummy credentials point
    at it."""
    for key, value in moto_s3.env().items():
        monkeypatch.setenv(key, value)
    name = unique_bucket("s3")
    moto_s3.create_bucket(name)
    return name


@pytest.fixture(scope="session")
def tensorflow_gcs(fake_gcs: FakeGcs) -> Iterator[TensorFlowGcs]:
    """The relay that sends TensorFlow's own gs:// requests to the session's fake-gcs-server: add
    `tensorflow_gcs.environment()` to a child process's environment (see tests/storage/tensorflow_gcs.py)."""
    with start_tensorflow_gcs(fake_gcs.endpoint) as relay:
        yield relay


@pytest.fixture(scope="session")
def scale_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Small SavedModels (tests/storage/gcs_serving.py `export_scale`) multiplying their input by 1, 2, 3."""
    root = tmp_path_factory.mktemp("scale")
    for factor in (1, 2, 3):
        export_scale(root / str(factor), float(factor))
    return {factor: root / str(factor) for factor in (1, 2, 3)}


@pytest.fixture(scope="session")
def small_version(half_plus_two: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SavedModel version directory (TF Serving's half_plus_two) with the files a layertap export adds:
    assets.extra/ with a warmup file and a manifest, and an asset. Read-only."""
    version = tmp_path_factory.mktemp("small-version") / "1"
    shutil.copytree(next(half_plus_two.iterdir()), version)
    (version / "assets").mkdir(exist_ok=True)
    (version / "assets" / "vocab.txt").write_text("a\nb\n")
    extra = version / "assets.extra"
    extra.mkdir()
    (extra / "tf_serving_warmup_requests").write_bytes(os.urandom(3000))
    (extra / "layertap_manifest.json").write_text('{"name": "half_plus_two"}')
    return version
