"""`layertap.beam` on Beam's DirectRunner: RunInference with the TF Serving handler (against
`layertap serve`) and the in-process handler give the features `layertap extract` gives, which
equal Keras' (tests/extract/test_extract_formats.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.extract.conftest import CNN_LAYERS, column, keras_features
from tests.fixtures.local_serving import version_dir


def run_pipeline(handler: Any, digits: np.ndarray, output: Path) -> Any:
    import apache_beam as beam
    import pyarrow as pa
    import pyarrow.parquet as pq
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    from layertap.beam import as_row

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("model_id", pa.string()),
            ("conv_2", pa.list_(pa.float32(), 7744)),
            ("flatten", pa.list_(pa.float32(), 1600)),
        ]
    )
    keyed = [(f"d{index:02d}", image) for index, image in enumerate(digits)]
    with beam.Pipeline(runner="DirectRunner") as pipeline:
        _ = (
            pipeline
            | beam.Create(keyed)
            | RunInference(KeyedModelHandler(handler))
            | beam.Map(lambda pair: {**as_row(pair), "model_id": pair[1].model_id})
            | beam.io.WriteToParquet(str(output / "part"), schema, file_name_suffix=".parquet")
        )
    table = pq.read_table(output).sort_by("id")
    assert table.column("id").to_pylist() == [key for key, _ in keyed]
    assert set(table.column("model_id").to_pylist()) == {"digits/1"}
    return table


@pytest.fixture(scope="module")
def reference(untrained_tutorial_cnn: Any, digits: np.ndarray) -> dict[str, np.ndarray]:
    return keras_features(untrained_tutorial_cnn, digits, CNN_LAYERS)


@pytest.mark.slow
def test_tf_serving_handler(tmp_path: Path, cnn_target: str, digits: np.ndarray, reference: Any) -> None:
    from layertap.beam import LayerServingHandler

    handler = LayerServingHandler(cnn_target, "digits", CNN_LAYERS, max_batch_size=16)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 16}
    table = run_pipeline(handler, digits, tmp_path)
    np.testing.assert_allclose(column(table, "conv_2", (11, 11, 64)), reference["conv_2"], atol=2e-5)
    np.testing.assert_allclose(column(table, "flatten", (1600,)), reference["flatten"], atol=2e-5)


@pytest.mark.slow
def test_in_process_handler(tmp_path: Path, cnn_export: Any, digits: np.ndarray, reference: Any) -> None:
    from layertap.beam import SavedModelHandler
    from layertap.extract import extract

    table = run_pipeline(SavedModelHandler(version_dir(cnn_export), CNN_LAYERS), digits, tmp_path / "beam")
    np.testing.assert_allclose(column(table, "conv_2", (11, 11, 64)), reference["conv_2"], atol=2e-5)
    # What `layertap extract` writes, through the same session path; Beam batches differently, and a
    # convolution's last bits depend on the batch it runs in (measured: up to 7e-8 here).
    np.save(tmp_path / "digits.npy", digits)
    extract(tmp_path / "digits.npy", CNN_LAYERS, tmp_path / "extract", version_dir=version_dir(cnn_export))
    import pyarrow.parquet as pq

    extracted = pq.read_table(tmp_path / "extract")
    for name in CNN_LAYERS:
        shape = (1600,) if name == "flatten" else (11, 11, 64)
        np.testing.assert_allclose(
            column(table, name, shape), column(extracted, name, shape), rtol=0, atol=1e-6
        )


def test_retries_only_what_may_pass() -> None:
    from layertap.beam.handlers import _retryable
    from layertap.errors import InvalidArgumentError, LayerNotFoundError, ServerUnavailableError

    assert _retryable(ServerUnavailableError("queue full", code="UNAVAILABLE"))
    assert not _retryable(InvalidArgumentError("bad shape", code="INVALID_ARGUMENT"))
    assert not _retryable(LayerNotFoundError("no layer"))
