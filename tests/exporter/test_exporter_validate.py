"""`layertap validate` and `export(validate=True)`: the pre-push rehearsal passes good versions and fails,
before publication, on a broken warmup record, a NaN output and an op the target server lacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.errors import ConfigError, RefusedVersionError
from layertap.exporter import export
from layertap.exporter.validate import CLIENT_MESSAGE_LIMIT, validate_version
from layertap.proto import serving_pb2 as pb
from layertap.version_folder import VALIDATION_REPORT_PATH
from layertap.wire import tensors
from tests.exporter.test_exporter_server import WEBP_1X1


@pytest.fixture(scope="module")
def good_version(trained_tutorial_cnn: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial CNN's conv_2 and pool_2, exported and validated before publication."""
    base = tmp_path_factory.mktemp("validate")
    result = export(
        trained_tutorial_cnn,
        ["conv_2", "pool_2"],
        base_path=base,
        name="cnn",
        validate=True,
        validate_batch=8,
    )
    return Path(result.path)


def _copy(version: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy" / "1"
    shutil.copytree(version, target)
    return target


def _save_module(path: Path, kind: str) -> Path:
    """A plain TensorFlow SavedModel with one function (a module saves every tf.function it has): string
    inputs (`strings`), an attr newer than 2.16 (`gather`), or an op newer than 2.19 (`webp`: DecodeWebP on
    a constant image)."""
    import tensorflow as tf

    def strings(text: Any) -> Any:
        return {"length": tf.strings.length(text), "upper": tf.strings.upper(text)}

    def gather(x: Any) -> Any:
        rows = tf.range(tf.shape(x)[0])
        indices = tf.stack([rows, tf.zeros_like(rows)], axis=1)
        return {"first": tf.raw_ops.GatherNd(params=x, indices=indices, bad_indices_policy="ERROR")}

    def webp(x: Any) -> Any:
        return {"y": x + 0.0 * tf.reduce_mean(tf.cast(tf.io.decode_webp(WEBP_1X1), tf.float32))}

    body = {"strings": strings, "gather": gather, "webp": webp}[kind]
    spec = tf.TensorSpec([None], tf.string, name="text") if kind == "strings" else tf.TensorSpec([None, 3])
    module = tf.Module()
    module.serve = tf.function(body, input_signature=[spec])
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def test_a_good_export_passes_and_keeps_its_report(good_version: Path) -> None:
    kept = json.loads((good_version / VALIDATION_REPORT_PATH).read_text())
    assert kept["passed"] and kept["failures"] == [] and kept["batch"] == 8
    report = validate_version(good_version, server="2.16.1", batch=8, runs=3)
    assert report.passed, report.failures
    assert report.compat["compatible"] and report.compat["server_tensorflow"] == "2.16.1"
    assert report.warmup == {"records": 3, "signatures": ["conv_2", "pool_2", "serving_default"]}
    assert sorted(report.signatures) == ["conv_2", "pool_2", "serving_default"]
    conv = report.signatures["conv_2"]
    assert conv["batch_1"]["outputs"] == {"conv_2": [1, 11, 11, 64]}
    assert conv["batch_8"]["outputs"] == {"conv_2": [8, 11, 11, 64]}
    assert 0 < conv["batch_1"]["p50_ms"] <= conv["batch_1"]["p99_ms"]
    # 11*11*64 float32 values per example, plus the framing of the reply.
    assert 4 * 11 * 11 * 64 < conv["reply_bytes"]["typed_per_example"] < 4 * 11 * 11 * 64 + 200
    assert conv["reply_bytes"]["tensor_content_at_batch"] > 8 * 4 * 11 * 11 * 64
    assert report.memory["peak_rss_bytes"] >= report.memory["rss_after_runs_bytes"] > 0
    assert report.load_seconds is not None and report.load_seconds > 0


def test_replies_over_the_clients_4_mib_limit_are_flagged(good_version: Path) -> None:
    per_example = 4 * 11 * 11 * 64
    batch = CLIENT_MESSAGE_LIMIT // per_example + 1
    report = validate_version(good_version, batch=batch, runs=1)
    assert report.passed
    flagged = [w for w in report.warnings if w.startswith("signature conv_2: a reply at batch")]
    assert len(flagged) == 2, report.warnings  # typed and tensor_content alike for float32
    assert "over the 4194304-byte (4 MiB) receive limit" in flagged[0]
    assert not any(w.startswith("signature serving_default: a reply") for w in report.warnings)


def _append_records(version: Path, records: list[bytes]) -> None:
    import tensorflow as tf

    warmup = version / "assets.extra" / "tf_serving_warmup_requests"
    existing = [bytes(r) for r in tf.data.TFRecordDataset(str(warmup)).as_numpy_iterator()]
    with tf.io.TFRecordWriter(str(warmup)) as writer:
        for record in existing + records:
            writer.write(record)


def _record(signature: str, inputs: dict[str, np.ndarray]) -> bytes:
    request = pb.PredictRequest()
    request.model_spec.name = "cnn"
    request.model_spec.signature_name = signature
    for alias, array in inputs.items():
        request.inputs[alias].CopyFrom(tensors.array_to_proto(array))
    return pb.PredictionLog(predict_log=pb.PredictLog(request=request)).SerializeToString()


def test_broken_warmup_records_fail(good_version: Path, tmp_path: Path) -> None:
    version = _copy(good_version, tmp_path)
    _append_records(
        version,
        [
            _record("dense_9", {"image": np.zeros((1, 28, 28, 1), np.float32)}),
            _record("conv_2", {"image": np.zeros((1, 28, 28), np.int32)}),
            b"\xff\x01 not a PredictionLog",
        ],
    )
    report = validate_version(version, runs=1)
    assert not report.passed
    assert report.failures[0].startswith(
        "warmup record 4: names signature 'dense_9', which the version does not have"
    )
    assert report.failures[1].startswith("warmup record 5: signature 'conv_2' fails on the record's inputs")
    assert report.failures[2] == "warmup record 6: does not parse as a PredictionLog"
    # A corrupted checksum: TensorFlow's reader refuses the file, as TF Serving's does.
    warmup = version / "assets.extra" / "tf_serving_warmup_requests"
    data = bytearray(warmup.read_bytes())
    data[20] ^= 0xFF
    warmup.write_bytes(bytes(data))
    report = validate_version(version, runs=1)
    assert any("warmup: TensorFlow cannot read record 1" in f for f in report.failures), report.failures


def test_more_than_1000_warmup_records_fail(good_version: Path, tmp_path: Path) -> None:
    version = _copy(good_version, tmp_path)
    record = _record("conv_2", {"image": np.zeros((1, 28, 28, 1), np.float32)})
    _append_records(version, [record] * 998)  # with the export's own 3: 1001
    report = validate_version(version, runs=1)
    assert report.failures == ["warmup: 1001 records, more than 1000; TF Serving fails the version's load"]
    assert report.warmup["records"] == 1001


def test_a_nan_output_is_refused_before_publication(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(hidden))
    model.get_layer("hidden").kernel.assign(np.full((3, 4), np.nan, np.float32))
    base = tmp_path / "models"
    with pytest.raises(RefusedVersionError) as refused:
        export(model, ["hidden"], base_path=base, name="m", verify=False, validate=True, validate_batch=4)
    message = str(refused.value)
    assert message.startswith("the version failed validation, so it was not published: signature ")
    assert "values are NaN or infinite" in message
    assert (
        not (base / "m").exists()
        or [p.name for p in (base / "m").iterdir() if p.name != ".layertap.lock"] == []
    )


def test_an_op_the_target_server_lacks_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    version = _save_module(tmp_path / "webp" / "1", "webp")
    assert validate_version(version, server="2.20.0", runs=1).passed
    report = validate_version(version, server="2.19.1", runs=1)
    assert not report.passed
    assert report.failures[0].startswith("compat: function ")
    assert "Op type not registered 'DecodeWebP' in TensorFlow 2.19.1, the server's" in report.failures[0]
    assert main(["validate", str(version), "--server", "2.19.1", "--runs", "1"]) == EXIT_USAGE
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("FAIL compat: function ")
    assert "FAILED on TF Serving 2.19.1 at batch 64: 1 failure(s)" in out
    # An attr the server does not know is ignored there (tests/compat): a warning, not a failure.
    gather = validate_version(_save_module(tmp_path / "gather" / "1", "gather"), server="2.16.1", runs=1)
    assert gather.passed
    assert any("NodeDef mentions attr 'bad_indices_policy'" in w for w in gather.warnings), gather.warnings


def test_string_inputs_and_the_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    version = _save_module(tmp_path / "strings" / "1", "strings")
    report_file = tmp_path / "report.json"
    args = ["validate", str(version), "--batch", "5", "--runs", "2", "--json", "--report", str(report_file)]
    assert main(args) == EXIT_OK
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(report_file.read_text())
    assert printed["passed"] and printed["batch"] == 5
    assert printed["signatures"]["serving_default"]["batch_5"]["outputs"] == {"length": [5], "upper": [5]}
    assert printed["warnings"] == ["warmup: no warmup file; every signature initialises on its first request"]


def test_bad_arguments(good_version: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="unknown TF Serving release"):
        validate_version(good_version, server="3.0.0")
    with pytest.raises(ConfigError, match="batch and runs must be positive"):
        validate_version(good_version, batch=0)
    report = validate_version(tmp_path, runs=1)  # no SavedModel at all
    assert not report.passed
    assert report.failures[0].startswith("compat: cannot read")
    assert any(f.startswith("load: TF Serving's session loader cannot load") for f in report.failures)
    assert main(["validate", str(tmp_path), "--runs", "1"]) == EXIT_USAGE
    capsys.readouterr()
