"""models.config: strict parsing with line numbers, and edits that touch exactly one entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from layertap.config import models
from layertap.errors import ConfigError, ConfigParseError
from layertap.proto import serving_pb2 as pb

TWO_MODELS = """\
model_config_list {
  config {
    name: "a"
    base_path: "/models/a"
    model_platform: "tensorflow"
  }
  config {
    name: "b"
    base_path: "/models/b"
    model_platform: "tensorflow"
    model_version_policy {
      specific {
        versions: 1
        versions: 2
      }
    }
    version_labels {
      key: "stable"
      value: 1
    }
  }
}
"""


def test_parse_and_format_round_trip_is_byte_identical() -> None:
    config = models.parse_model_server_config(TWO_MODELS)
    assert [entry.name for entry in config.model_config_list.config] == ["a", "b"]
    assert list(config.model_config_list.config[1].model_version_policy.specific.versions) == [1, 2]
    assert dict(config.model_config_list.config[1].version_labels) == {"stable": 1}
    assert models.format_model_server_config(config) == TWO_MODELS


def test_unknown_field_is_refused_with_its_line() -> None:
    text = TWO_MODELS.replace('    base_path: "/models/b"', '    base_pth: "/models/b"')
    with pytest.raises(ConfigParseError) as caught:
        models.parse_model_server_config(text, "serving/models.config")
    assert caught.value.line == 9
    assert caught.value.path == "serving/models.config"
    assert str(caught.value).startswith("serving/models.config:9: ")
    assert 'no field named "base_pth"' in str(caught.value)


def test_syntax_error_carries_line() -> None:
    with pytest.raises(ConfigParseError) as caught:
        models.parse_model_server_config('model_config_list {\n  config {\n    name: a"\n')
    assert caught.value.line == 3


@pytest.mark.parametrize(
    ("old", "new", "line", "fragment"),
    [
        ('name: "b"', 'name: "a"', 7, "illegal to list model 'a' multiple times"),
        ('    base_path: "/models/b"\n', "", 7, "has no base_path"),
        ('"tensorflow"\n    model_version', '"tf"\n    model_version', 7, "model_platform 'tf'"),
        ("versions: 1\n        versions: 2", "versions: -2", 7, "versions [-2]"),
        ('    name: "a"\n', "", 2, "model entry 1 has no name"),
        (
            '"/models/b"',
            '"models/b"',
            7,
            "relative base_path 'models/b'; TensorFlow Serving expects an absolute",
        ),
    ],
)
def test_semantic_errors_point_at_the_entry(old: str, new: str, line: int, fragment: str) -> None:
    text = TWO_MODELS.replace(old, new, 1)
    assert text != TWO_MODELS
    with pytest.raises(ConfigParseError) as caught:
        models.parse_model_server_config(text, "m.config")
    assert caught.value.line == line
    assert fragment in str(caught.value)


def test_oneof_policy_twice_is_refused() -> None:
    text = TWO_MODELS.replace("specific {", "all {\n      }\n      specific {")
    with pytest.raises(ConfigParseError) as caught:
        models.parse_model_server_config(text)
    assert caught.value.line == 14
    assert "oneof" in str(caught.value)


def test_set_model_updates_in_place_and_keeps_others_byte_stable() -> None:
    config = models.parse_model_server_config(TWO_MODELS)
    updated = models.set_model(config, "a", "/models/a2", policy=models.latest_versions(2))
    text = models.format_model_server_config(updated)
    assert text == TWO_MODELS.replace(
        '    base_path: "/models/a"\n    model_platform: "tensorflow"\n',
        '    base_path: "/models/a2"\n    model_platform: "tensorflow"\n'
        "    model_version_policy {\n      latest {\n        num_versions: 2\n      }\n    }\n",
    )
    # The input is not modified.
    assert models.format_model_server_config(config) == TWO_MODELS


def test_set_model_appends_new_entry_last() -> None:
    updated = models.set_model(models.parse_model_server_config(TWO_MODELS), "c", "/models/c")
    assert [entry.name for entry in updated.model_config_list.config] == ["a", "b", "c"]
    assert models.format_model_server_config(updated).startswith(TWO_MODELS[: -len("}\n")])


def test_set_model_keeps_labels_and_policy_when_no_policy_given() -> None:
    updated = models.set_model(models.parse_model_server_config(TWO_MODELS), "b", "/elsewhere/b")
    entry = models.find_model(updated, "b")
    assert entry.base_path == "/elsewhere/b"
    assert dict(entry.version_labels) == {"stable": 1}
    assert models.describe_policy(entry.model_version_policy) == "specific 1,2"


def test_policy_that_drops_a_labelled_version_is_refused() -> None:
    config = models.parse_model_server_config(TWO_MODELS)
    with pytest.raises(ConfigError, match=r"would stop serving labelled versions \{'stable': 1\}"):
        models.set_version_policy(config, "b", models.specific_versions([2]))


def test_remove_model_keeps_the_rest() -> None:
    updated = models.remove_model(models.parse_model_server_config(TWO_MODELS), "a")
    assert models.format_model_server_config(updated) == TWO_MODELS.replace(
        '  config {\n    name: "a"\n    base_path: "/models/a"\n    model_platform: "tensorflow"\n  }\n', ""
    )
    emptied = models.remove_model(updated, "b")
    assert models.format_model_server_config(emptied) == "model_config_list {\n}\n"
    with pytest.raises(ConfigError, match=r"no model named 'x' in the config; models present: \['b'\]"):
        models.remove_model(updated, "x")


def test_policies() -> None:
    assert models.describe_policy(models.latest_versions()) == "latest 1"
    assert models.describe_policy(models.all_versions()) == "all"
    assert list(models.specific_versions([3, 1, 3]).specific.versions) == [1, 3]
    assert models.describe_policy(pb.ServableVersionPolicy()) == "latest 1"
    with pytest.raises(ConfigError):
        models.latest_versions(0)
    with pytest.raises(ConfigError):
        models.specific_versions([])


def test_write_is_atomic_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "models.config"
    models.write_model_server_config(path, models.parse_model_server_config(TWO_MODELS))
    assert path.read_text() == TWO_MODELS
    assert models.format_model_server_config(models.read_model_server_config(path)) == TWO_MODELS
    assert sorted(p.name for p in path.parent.iterdir()) == ["models.config"]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        models.read_model_server_config(tmp_path / "absent.config")


def test_uri_base_paths_are_accepted() -> None:
    text = TWO_MODELS.replace('"/models/b"', '"gs://bucket/models/b"')
    entry = models.find_model(models.parse_model_server_config(text), "b")
    assert entry.base_path == "gs://bucket/models/b"
    assert models.is_uri("s3://x/y")
    assert not models.is_uri("/models/b")
    with pytest.raises(ConfigError, match="relative base_path"):
        models.set_model(models.parse_model_server_config(TWO_MODELS), "c", "models/c")
