"""The tutorial CNN: export by name and by index, true shapes, values, sizes, warmup, manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.exporter import export

SessionRunner = Callable[[Path, str, dict[str, np.ndarray]], dict[str, np.ndarray]]


def _keras_output(model: Any, layer: str, images: np.ndarray) -> np.ndarray:
    import keras

    sub = keras.Model(model.inputs, model.get_layer(layer).output)
    return np.asarray(sub([images], training=False))


def test_published_layout(cnn_export: Any) -> None:
    path: Path = cnn_export.path
    assert cnn_export.version == 1
    assert path.name == "1" and path.parent.name == "mnist"
    assert sorted(p.name for p in path.parent.iterdir()) == [".layertap.lock", "1"]
    assert (path / "saved_model.pb").is_file()
    assert sorted(p.name for p in (path / "variables").iterdir()) == [
        "variables.data-00000-of-00001",
        "variables.index",
    ]
    assert sorted(p.name for p in (path / "assets.extra").iterdir()) == [
        "layertap.json",
        "tf_serving_warmup_requests",
    ]


def test_signatures_have_true_shapes_and_names(cnn_export: Any) -> None:
    signatures = cnn_export.signatures
    assert list(signatures) == ["serving_default", "conv_1", "conv_2", "flatten", "early"]
    assert signatures["conv_2"].outputs == {"conv_2": ((None, 11, 11, 64), "float32")}
    assert signatures["conv_1"].outputs == {"conv_1": ((None, 26, 26, 32), "float32")}
    assert signatures["flatten"].outputs == {"flatten": ((None, 1600), "float32")}
    assert signatures["serving_default"].outputs == {"output_layer": ((None, 10), "float32")}
    assert signatures["early"].outputs == {
        "conv_1": ((None, 26, 26, 32), "float32"),
        "pool_1": ((None, 13, 13, 32), "float32"),
    }
    for info in signatures.values():
        assert info.inputs == {"image": ((None, 28, 28, 1), "float32")}
    assert set(cnn_export.max_errors) == set(signatures)
    assert all(error <= 1e-5 for error in cnn_export.max_errors.values())


def test_every_signature_through_the_session_loader_matches_keras(
    trained_tutorial_cnn: Any, cnn_export: Any, digits: np.ndarray, run_in_session: SessionRunner
) -> None:
    for key, layer in [("conv_1", "conv_1"), ("conv_2", "conv_2"), ("flatten", "flatten")]:
        got = run_in_session(cnn_export.path, key, {"image": digits})
        np.testing.assert_allclose(
            got[layer], _keras_output(trained_tutorial_cnn, layer, digits), rtol=0, atol=1e-5
        )
    group = run_in_session(cnn_export.path, "early", {"image": digits})
    np.testing.assert_allclose(
        group["pool_1"], _keras_output(trained_tutorial_cnn, "pool_1", digits), rtol=0, atol=1e-5
    )
    full = run_in_session(cnn_export.path, "serving_default", {"image": digits})
    np.testing.assert_allclose(
        full["output_layer"], np.asarray(trained_tutorial_cnn(digits, training=False)), atol=1e-6
    )
    # batch dimension is free: one image works as well as eight
    one = run_in_session(cnn_export.path, "conv_2", {"image": digits[:1]})
    assert one["conv_2"].shape == (1, 11, 11, 64)


def test_weights_stored_once_for_one_and_ten_signatures(trained_tutorial_cnn: Any, tmp_path: Path) -> None:
    one = export(trained_tutorial_cnn, ["conv_2"], base_path=tmp_path, name="one")
    specs = ["conv_1", "pool_1", "conv_2", "pool_2", "flatten", "output_layer"]
    groups = {f"g{i}": specs[i : i + 2] for i in range(4)}
    ten = export(trained_tutorial_cnn, specs, base_path=tmp_path, name="ten", groups=groups, verify=False)
    assert len(one.signatures) == 2 and len(ten.signatures) == 11
    parameter_bytes = 4 * trained_tutorial_cnn.count_params()
    for result in (one, ten):
        files = sum(f.stat().st_size for f in (result.path / "variables").iterdir())
        assert result.sizes.variables_bytes == files
        assert result.sizes.parameter_bytes == parameter_bytes == 139304
        assert result.sizes.ratio <= 1.01, result.sizes
    # more signatures do not grow the weights
    assert abs(ten.sizes.variables_bytes - one.sizes.variables_bytes) < 200


def test_warmup_has_one_batch1_request_per_signature(cnn_export: Any) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(
        tf.data.TFRecordDataset(str(cnn_export.path / "assets.extra" / "tf_serving_warmup_requests"))
    )
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in records]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == list(cnn_export.signatures)
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "mnist"
        assert list(request.inputs) == ["image"]
        assert tf.make_ndarray(request.inputs["image"]).shape == (1, 28, 28, 1)


def test_manifest(trained_tutorial_cnn: Any, cnn_export: Any) -> None:
    import keras
    import tensorflow as tf

    manifest = json.loads((cnn_export.path / "assets.extra" / "layertap.json").read_text())
    assert manifest["layers"] == {
        "conv_1": ["conv_1", "early"],
        "conv_2": ["conv_2"],
        "flatten": ["flatten"],
        "pool_1": ["early"],
    }
    conv_2 = manifest["signatures"]["conv_2"]
    assert conv_2["inputs"] == {"image": {"shape": [None, 28, 28, 1], "dtype": "float32"}}
    assert conv_2["outputs"] == {"conv_2": {"shape": [None, 11, 11, 64], "dtype": "float32"}}
    assert conv_2["parameters"] == 320 + 18496
    # conv_1: 2*3*3*1*32 per position over 26*26 positions, + bias; relu-pool: 13*13*32; conv_2 likewise
    conv_1_flops = 2 * 288 * 676 + 21632
    conv_2_flops = 2 * 18432 * 121 + 7744
    assert manifest["signatures"]["conv_1"]["flops"] == conv_1_flops
    assert conv_2["flops"] == conv_1_flops + 5408 + conv_2_flops
    assert manifest["model"]["parameters"] == trained_tutorial_cnn.count_params() == 34826
    assert manifest["signatures"]["serving_default"]["outputs"] == {
        "output_layer": {"shape": [None, 10], "dtype": "float32"}
    }
    assert manifest["versions"]["tensorflow"] == tf.__version__
    assert manifest["versions"]["keras"] == keras.__version__
    assert manifest["model"]["version"] == 1
    assert manifest["created"].endswith("+00:00")


def test_no_device_placement_in_the_graph(cnn_export: Any) -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((cnn_export.path / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    compute = [
        f
        for f in graph.library.function
        if "traced_save" not in f.signature.name and "traced_restore" not in f.signature.name
    ]
    assert compute
    placed = [(f.signature.name, n.name, n.device) for f in compute for n in f.node_def if n.device]
    assert placed == []


def test_unnamed_model_by_index(digits: np.ndarray, run_in_session: SessionRunner, tmp_path: Path) -> None:
    from layertap.demo.tutorial_cnn import build_tutorial_cnn

    model = build_tutorial_cnn(named=False)
    conv_2 = model.layers[2]
    result = export(model, [2, 0], base_path=tmp_path, name="unnamed")
    assert list(result.signatures)[1:] == [conv_2.name, model.layers[0].name]
    assert result.signatures[conv_2.name].outputs == {conv_2.name: ((None, 11, 11, 64), "float32")}
    input_alias = next(iter(result.signatures[conv_2.name].inputs))
    got = run_in_session(result.path, conv_2.name, {input_alias: digits})[conv_2.name]
    np.testing.assert_allclose(got, _keras_output(model, conv_2.name, digits), atol=1e-5)


def test_batch_norm_variant_conv_before_normalisation(
    cnn_bn: Any, digits: np.ndarray, run_in_session: SessionRunner, tmp_path: Path
) -> None:
    import keras

    bn = cnn_bn.get_layer("bn_1")
    moving_mean = np.asarray(bn.moving_mean)
    assert np.abs(moving_mean).max() > 1e-3  # training moved the statistics: inference mode matters
    result = export(cnn_bn, ["conv_1", "bn_1"], base_path=tmp_path, name="bn")
    conv = run_in_session(result.path, "conv_1", {"image": digits})["conv_1"]
    kernel, bias = (np.asarray(w) for w in cnn_bn.get_layer("conv_1").weights)
    direct = np.asarray(keras.ops.conv(digits, kernel)) + bias
    np.testing.assert_allclose(conv, direct, atol=1e-5)  # the raw conv output, before BN
    normalised = run_in_session(result.path, "bn_1", {"image": digits})["bn_1"]
    expected = (direct - moving_mean) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
    expected = expected * np.asarray(bn.gamma) + np.asarray(bn.beta)
    np.testing.assert_allclose(normalised, expected, atol=1e-4)


def test_versions_increment_and_are_never_overwritten(trained_tutorial_cnn: Any, tmp_path: Path) -> None:
    from layertap.errors import PublishError

    first = export(trained_tutorial_cnn, ["conv_1"], base_path=tmp_path, name="m", verify=False)
    second = export(trained_tutorial_cnn, ["conv_1"], base_path=tmp_path, name="m", verify=False)
    explicit = export(trained_tutorial_cnn, ["conv_1"], base_path=tmp_path, name="m", version=7, verify=False)
    after = export(trained_tutorial_cnn, ["conv_1"], base_path=tmp_path, name="m", verify=False)
    assert [first.version, second.version, explicit.version, after.version] == [1, 2, 7, 8]
    before = (tmp_path / "m" / "7" / "saved_model.pb").read_bytes()
    with pytest.raises(PublishError, match=r"version 7 of 'm' already exists .* the next free one is 9"):
        export(trained_tutorial_cnn, ["conv_2"], base_path=tmp_path, name="m", version=7, verify=False)
    assert (tmp_path / "m" / "7" / "saved_model.pb").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [".layertap.lock", "1", "2", "7", "8"]


def test_signature_key_collisions_fail_before_writing(trained_tutorial_cnn: Any, tmp_path: Path) -> None:
    from layertap.errors import UsageError

    with pytest.raises(UsageError, match=r"group name 'conv_1' is already a signature key"):
        export(trained_tutorial_cnn, ["conv_1"], base_path=tmp_path, name="m", groups={"conv_1": ["conv_2"]})
    with pytest.raises(UsageError, match="group name 'serving_default'"):
        export(trained_tutorial_cnn, [], base_path=tmp_path, name="m", groups={"serving_default": ["conv_2"]})
    with pytest.raises(UsageError, match="lists a layer twice"):
        export(trained_tutorial_cnn, [], base_path=tmp_path, name="m", groups={"g": ["conv_2", 2]})
    assert not (tmp_path / "m").exists()
    # the same layer by name and by index is one signature
    result = export(trained_tutorial_cnn, ["conv_1", 0], base_path=tmp_path, name="m", verify=False)
    assert list(result.signatures) == ["serving_default", "conv_1"]
