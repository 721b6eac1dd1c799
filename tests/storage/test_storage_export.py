"""`layertap export --base-path gs://... | s3://...` (CLI and Python API) end to end against the emulators,
and base paths that must be refused before anything loads or is written anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from layertap.cli import main
from layertap.errors import LocationError
from layertap.storage.claims import read_claims
from layertap.storage.store import open_store
from layertap.storage.uri import ObjectLocation
from tests.storage.emulators import FakeGcs


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer Keras model saved as .keras."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="hidden"), keras.layers.Dense(2, name="out")]
    )
    path = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    model.save(path)
    return path


def run_cli(args: list[str]) -> int:
    """`layertap ARGS` in this process; argparse's refusals exit with SystemExit."""
    try:
        return main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def _tree(store: Any, prefix: str) -> list[str]:
    return sorted(info.key[len(prefix) :] for info in store.list_objects(prefix))


def test_export_cli_publishes_to_gcs(
    tiny_model: Path, gcs_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "export",
                str(tiny_model),
                "--layer",
                "hidden",
                "--base-path",
                f"gs://{gcs_bucket}/models",
                "--name",
                "tiny",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith(f"exported tiny version 1 to gs://{gcs_bucket}/models/tiny/1\n")
    assert "TF Serving (and `layertap serve`) polling this gs:// base path loads it" in out
    store = open_store(ObjectLocation("gs", gcs_bucket))
    files = _tree(store, "models/tiny/1/")
    assert {"saved_model.pb", "variables/variables.index", "fingerprint.pb"} <= set(files)
    assert "assets.extra/layertap.json" in files and "assets.extra/tf_serving_warmup_requests" in files
    manifest = json.loads(store.read("models/tiny/1/assets.extra/layertap.json")[0])
    assert manifest["model"]["version"] == 1
    assert read_claims(store, "models/tiny/")[1].state == "published"
    assert _tree(store, "models/tiny/_layertap/staging/") == []


def test_export_api_publishes_to_s3(tiny_model: Path, s3_bucket: str) -> None:
    from layertap.exporter import export

    result = export(tiny_model, ["out"], base_path=f"s3://{s3_bucket}/m", name="tiny", verify=False)
    assert (result.version, result.path) == (1, f"s3://{s3_bucket}/m/tiny/1")
    store = open_store(ObjectLocation("s3", s3_bucket))
    assert "saved_model.pb" in _tree(store, "m/tiny/1/")
    assert (
        export(tiny_model, ["out"], base_path=f"s3://{s3_bucket}/m", name="tiny", verify=False).version == 2
    )


@pytest.mark.parametrize(
    ("base_path", "words"),
    [
        ("hdfs://nn/models", "unsupported base path 'hdfs://nn/models' (scheme hdfs://)"),
        ("s3a://bucket/models", "(scheme s3a://)"),
        ("gs:/bucket/models", "malformed URI 'gs:/bucket/models'"),
        ("file://server/models", "names the host 'server'"),
    ],
)
def test_export_cli_refuses_bad_base_paths_before_loading(
    base_path: str,
    words: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    # The model file does not exist: the base path is refused first, in one line.
    assert run_cli(["export", "missing.keras", "--layer", "x", "--base-path", base_path, "--name", "m"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert "gs://BUCKET/PREFIX (pip install 'layertap[gcs]')" in err or "host" in err
    assert list(tmp_path.iterdir()) == []


def test_export_api_refuses_bad_base_paths_and_writes_nothing(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from layertap.exporter import export

    monkeypatch.chdir(tmp_path)
    for base_path in ("gs:/bucket/models", "hdfs://nn/models", "s3://b/../x"):
        with pytest.raises(LocationError):
            export(tiny_model, ["out"], base_path=base_path, name="m")
    assert list(tmp_path.iterdir()) == []
    # file:// is a local directory, never a relative one.
    result = export(tiny_model, ["out"], base_path=f"file://{tmp_path}/repo", name="m", verify=False)
    assert result.path == tmp_path / "repo" / "m" / "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_export_to_a_missing_bucket_fails_before_loading(
    fake_gcs: FakeGcs, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in fake_gcs.env().items():
        monkeypatch.setenv(key, value)
    code = run_cli(
        ["export", "missing.keras", "--layer", "x", "--base-path", "gs://no-such-bucket-xyz/m", "--name", "m"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "gs://no-such-bucket-xyz/m/_layertap/claims/" in err or "no-such-bucket-xyz" in err
    assert "missing.keras" not in err
