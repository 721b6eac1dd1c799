"""`ModelSource` (what a model path holds, found before Keras loads) and the pipeline's stage list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from layertap.errors import UsageError
from layertap.exporter.source import ModelSource
from layertap.exporter.stages import STAGES


def test_kind_is_found_without_loading(trained_tutorial_cnn: Any, cnn_export: Any, tmp_path: Path) -> None:
    model_file = tmp_path / "cnn.keras"
    trained_tutorial_cnn.save(model_file)
    assert ModelSource(trained_tutorial_cnn).kind() == "model"
    assert ModelSource(model_file).kind() == "keras"
    assert ModelSource(str(model_file)).path == model_file
    assert ModelSource(cnn_export.path).kind() == "savedmodel"
    assert ModelSource(cnn_export.path).is_graph_savedmodel
    assert not ModelSource(model_file).is_graph_savedmodel
    assert not ModelSource(tmp_path / "missing").is_graph_savedmodel
    with pytest.raises(UsageError, match=r"model file '.*missing\.keras' does not exist"):
        ModelSource(tmp_path / "missing.keras").kind()


def test_a_source_travels_to_another_process_as_json(tmp_path: Path) -> None:
    source = ModelSource(
        tmp_path / "m.keras",
        allow_unsafe=True,
        input_shape=[28, 28, 1],
        custom_objects=[tmp_path / "layers.py", "pkg.layers"],
    )
    assert source.input_shape == (28, 28, 1)
    assert source.custom_objects == (str(tmp_path / "layers.py"), "pkg.layers")
    assert ModelSource.from_json(json.loads(json.dumps(source.to_json()))) == source
    with pytest.raises(UsageError, match="a model in memory cannot be passed to another process"):
        ModelSource(object()).to_json()


def test_preset_options_are_refused_for_other_models(trained_tutorial_cnn: Any, tmp_path: Path) -> None:
    preset_only = r"--with-preprocessor and --sequence-length apply to a KerasHub preset directory; "
    with pytest.raises(UsageError, match=preset_only + "a model in memory is not one"):
        ModelSource(trained_tutorial_cnn, with_preprocessor=True).load()
    model_file = tmp_path / "cnn.keras"
    trained_tutorial_cnn.save(model_file)
    with pytest.raises(UsageError, match=preset_only + r".*cnn\.keras is a model file"):
        ModelSource(model_file, sequence_length=8).load()


def test_export_runs_every_stage_in_order_and_times_each(cnn_export: Any) -> None:
    names = [stage.name for stage in STAGES]
    assert names == [
        "preflight",
        "load",
        "plan",
        "reserve",
        "trace_and_save",
        "verify",
        "extras",
        "gate",
        "publish",
    ]
    assert list(cnn_export.timings) == [*names, "total"]
    assert cnn_export.timings["total"] >= sum(cnn_export.timings[name] for name in names)
