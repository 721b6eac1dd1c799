"""One version folder read without TensorFlow: the `serve` MetaGraph, the manifest, the warmup records."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from layertap import version_folder
from layertap.errors import ConfigError
from layertap.proto import graph_pb2
from layertap.proto import serving_pb2 as pb
from tests.fixtures.config_repos import VersionWriter


def test_saved_model_summary(write_version: VersionWriter) -> None:
    summary = version_folder.read_saved_model_summary(write_version("m", 1))
    # TensorFlow also stores `__saved_model_init_op` as a signature: it is left out.
    assert summary.signature_names == frozenset({"serving_default", "conv_2", "pool_2"})
    assert summary.tensorflow_version.startswith("2.21.")


def test_summary_of_a_broken_file(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\xff\xff")
    with pytest.raises(ConfigError, match="is not a SavedModel protobuf"):
        version_folder.read_saved_model_summary(tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        version_folder.read_saved_model_summary(tmp_path / "nothing")


def test_a_saved_model_without_a_serve_meta_graph(tmp_path: Path) -> None:
    saved_model = graph_pb2.SavedModel()
    saved_model.meta_graphs.add().meta_info_def.tags.append("train")
    (tmp_path / "saved_model.pb").write_bytes(saved_model.SerializeToString())
    with pytest.raises(ConfigError) as caught:
        version_folder.read_serve_meta_graph(tmp_path)
    assert str(caught.value) == (
        f"{str(tmp_path / 'saved_model.pb')!r} has no MetaGraph tagged 'serve' (the one TF Serving loads); "
        "tag sets: [['train']]"
    )


def test_has_saved_model(tmp_path: Path) -> None:
    assert not version_folder.has_saved_model(tmp_path)
    (tmp_path / "saved_model.pbtxt").write_text("")
    assert version_folder.has_saved_model(tmp_path)


def test_manifest(write_version: VersionWriter) -> None:
    assert version_folder.read_manifest(write_version("m", 1)) is None
    path = write_version("m", 2, manifest={"tensorflow_version": "2.21.0", "keras_version": "3.15.1"})
    assert version_folder.read_manifest(path) == {"tensorflow_version": "2.21.0", "keras_version": "3.15.1"}
    (path / "assets.extra" / "layertap.json").write_text("[1]")
    with pytest.raises(ConfigError, match="must hold a JSON object; got list"):
        version_folder.read_manifest(path)
    (path / "assets.extra" / "layertap.json").write_bytes(b"{\xff")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        version_folder.read_manifest(path)


def test_write_manifest_round_trips_and_leaves_no_temporary(tmp_path: Path) -> None:
    manifest = {"format": version_folder.MANIFEST_FORMAT, "layers": {"conv_2": ["conv_2"]}}
    written = version_folder.write_manifest(tmp_path, manifest)
    assert written == tmp_path / "assets.extra" / "layertap.json"
    assert version_folder.read_manifest(tmp_path) == manifest
    assert sorted(p.name for p in written.parent.iterdir()) == ["layertap.json"]
    assert written.read_text(encoding="utf-8").endswith("}\n")


def _record(data: bytes) -> bytes:
    # TFRecord framing with zero CRCs: this reader checks the framing only.
    return len(data).to_bytes(8, "little") + b"\0" * 4 + data + b"\0" * 4


def _warmup_log(signature: str) -> bytes:
    request = pb.PredictRequest(model_spec=pb.ModelSpec(name="m", signature_name=signature))
    return pb.PredictionLog(predict_log=pb.PredictLog(request=request)).SerializeToString()


def test_warmup_records_and_signatures(tmp_path: Path) -> None:
    assert version_folder.read_warmup_signatures(tmp_path) is None
    path = tmp_path / version_folder.WARMUP_PATH
    path.parent.mkdir()
    path.write_bytes(_record(_warmup_log("conv_2")) + _record(_warmup_log("")) + _record(b""))
    assert list(version_folder.warmup_records(path)) == [_warmup_log("conv_2"), _warmup_log(""), b""]
    with pytest.raises(ConfigError, match=r"record 3 .* is not a predict_log"):
        version_folder.read_warmup_signatures(tmp_path)
    path.write_bytes(_record(_warmup_log("conv_2")) + _record(_warmup_log("")))
    # An empty signature name is serving_default, as TF Serving resolves it.
    assert version_folder.read_warmup_signatures(tmp_path) == ["conv_2", "serving_default"]


def test_truncated_warmup_files(tmp_path: Path) -> None:
    path = tmp_path / "records"
    whole = _record(_warmup_log("conv_2"))
    path.write_bytes(whole + whole[:5])
    with pytest.raises(ConfigError, match=r"is truncated at byte \d+$") as caught:
        list(version_folder.warmup_records(path))
    assert str(caught.value).endswith(f"truncated at byte {len(whole)}")
    path.write_bytes(whole + whole[:-1])
    with pytest.raises(ConfigError, match=r"is truncated in record 2$"):
        list(version_folder.warmup_records(path))


def test_the_module_imports_no_tensorflow() -> None:
    code = (
        "import sys\n"
        "sys.modules['tensorflow'] = None\n"
        "import layertap.version_folder\n"
        "print(sorted(m for m in sys.modules if m.startswith(('tensorflow', 'keras')) and sys.modules[m]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
