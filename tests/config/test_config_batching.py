"""batching.config: every field round-trips, TF Serving's rules are enforced, defaults are GPU-minded."""

from __future__ import annotations

from pathlib import Path

import pytest

from layertap.config import batching
from layertap.errors import ConfigError, ConfigParseError
from layertap.proto import serving_pb2 as pb

EVERY_FIELD = """\
max_batch_size {
  value: 256
}
batch_timeout_micros {
  value: 5000
}
max_enqueued_batches {
  value: 8
}
num_batch_threads {
  value: 6
}
thread_pool_name {
  value: "layer_batch_threads"
}
allowed_batch_sizes: 16
allowed_batch_sizes: 32
allowed_batch_sizes: 64
pad_variable_length_inputs: true
enable_large_batch_splitting {
  value: true
}
max_execution_batch_size {
  value: 64
}
"""


def test_every_field_round_trips_byte_identical() -> None:
    settings = batching.parse_batching_config(EVERY_FIELD)
    assert settings == batching.BatchingSettings(
        max_batch_size=256,
        batch_timeout_micros=5000,
        max_enqueued_batches=8,
        num_batch_threads=6,
        thread_pool_name="layer_batch_threads",
        allowed_batch_sizes=(16, 32, 64),
        pad_variable_length_inputs=True,
        enable_large_batch_splitting=True,
        max_execution_batch_size=64,
    )
    assert batching.format_batching_config(settings) == EVERY_FIELD
    # Every field of the message is covered, so a field added to the schema cannot be silently dropped.
    written = {field.name for field, _ in settings.to_proto().ListFields()}
    assert written == {field.name for field in pb.BatchingParameters.DESCRIPTOR.fields}


def test_gpu_defaults() -> None:
    settings = batching.gpu_batching_defaults(num_batch_threads=8)
    assert settings.max_batch_size == 64
    assert settings.allowed_batch_sizes == (8, 16, 32, 64)
    assert settings.batch_timeout_micros == 2000
    assert settings.num_batch_threads == 8
    assert settings.max_enqueued_batches == 8


def test_unset_fields_are_left_out() -> None:
    assert batching.format_batching_config(batching.BatchingSettings(max_batch_size=8)) == (
        "max_batch_size {\n  value: 8\n}\n"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be a positive integer; got 0"),
        ({"num_batch_threads": -1}, "num_batch_threads must be a positive integer; got -1"),
        ({"max_enqueued_batches": 0}, "max_enqueued_batches must be a positive integer; got 0"),
        ({"batch_timeout_micros": -1}, "batch_timeout_micros must be between 0 and 10000000 (10 s); got -1"),
        ({"batch_timeout_micros": 10_000_001}, "got 10000001"),
        ({"allowed_batch_sizes": (8, 32, 16, 64)}, "strictly ascending; got [8, 32, 16, 64]"),
        ({"allowed_batch_sizes": (8, 8, 64)}, "strictly ascending; got [8, 8, 64]"),
        ({"allowed_batch_sizes": (8, 16, 32)}, "must equal max_batch_size (64); got [8, 16, 32]"),
        ({"max_execution_batch_size": 32}, "only applies with enable_large_batch_splitting: true"),
        ({"thread_pool_name": ""}, "thread_pool_name must not be empty"),
    ],
)
def test_invalid_values_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        batching.gpu_batching_defaults().replace(**changes)
    assert message in str(caught.value)


def test_splitting_rules() -> None:
    split = batching.BatchingSettings(
        max_batch_size=512,
        enable_large_batch_splitting=True,
        max_execution_batch_size=64,
        allowed_batch_sizes=(32, 64),
    )
    assert split.allowed_batch_sizes == (32, 64)
    with pytest.raises(ConfigError, match=r"must equal max_execution_batch_size \(64\)"):
        split.replace(allowed_batch_sizes=(32, 512))
    with pytest.raises(
        ConfigError, match=r"max_execution_batch_size \(1024\) must not exceed max_batch_size"
    ):
        split.replace(max_execution_batch_size=1024, allowed_batch_sizes=())
    with pytest.raises(ConfigError, match=r"needs max_batch_size set"):
        batching.BatchingSettings(allowed_batch_sizes=(8,))


def test_parse_errors_carry_the_line() -> None:
    with pytest.raises(ConfigParseError) as caught:
        batching.parse_batching_config(
            EVERY_FIELD.replace("max_enqueued_batches", "max_enqueued_batchs"), "b.cfg"
        )
    assert caught.value.line == 7
    bad_order = EVERY_FIELD.replace("allowed_batch_sizes: 32\n", "allowed_batch_sizes: 8\n")
    with pytest.raises(ConfigParseError) as caught:
        batching.parse_batching_config(bad_order, "b.cfg")
    assert caught.value.line == 16
    assert "strictly ascending; got [16, 8, 64]" in str(caught.value)
    with pytest.raises(ConfigParseError) as caught:
        batching.parse_batching_config(EVERY_FIELD.replace("value: 8\n", "value: 0\n"), "b.cfg")
    assert caught.value.line == 7


def test_write_and_read(tmp_path: Path) -> None:
    path = tmp_path / "batching.config"
    batching.write_batching_config(path, batching.gpu_batching_defaults())
    assert batching.read_batching_config(path) == batching.gpu_batching_defaults()
