"""Version labels under TF Serving's availability rule, and the two-step label move."""

from __future__ import annotations

import pytest

from layertap.config import labels, models
from layertap.config.gate import GateDecision
from layertap.errors import ConfigError

STABLE_ON_1 = """\
model_config_list {
  config {
    name: "other"
    base_path: "/models/other"
    model_platform: "tensorflow"
  }
  config {
    name: "cnn"
    base_path: "/models/cnn"
    model_platform: "tensorflow"
    model_version_policy {
      specific {
        versions: 1
      }
    }
    version_labels {
      key: "stable"
      value: 1
    }
  }
}
"""

#: The promotion gate's verdict that `stable` of `cnn` may move from version 1 to 2 (see test_config_gate).
ALLOWED = GateDecision("cnn", "stable", 1, 2, allowed=True, accepted_new_space=False, source="space ids")


def test_two_step_move() -> None:
    config = models.parse_model_server_config(STABLE_ON_1)
    step1 = labels.begin_label_move(config, "cnn", "stable", 2, versions_on_disk={1, 2})
    entry = models.find_model(step1, "cnn")
    assert list(entry.model_version_policy.specific.versions) == [1, 2]
    assert dict(entry.version_labels) == {"stable": 1}
    step2 = labels.finish_label_move(step1, "cnn", "stable", 2, versions_on_disk={1, 2}, decision=ALLOWED)
    entry = models.find_model(step2, "cnn")
    assert list(entry.model_version_policy.specific.versions) == [1, 2]
    assert dict(entry.version_labels) == {"stable": 2}
    retired = labels.finish_label_move(
        step1, "cnn", "stable", 2, versions_on_disk={1, 2}, decision=ALLOWED, retire_unlabelled=True
    )
    assert list(models.find_model(retired, "cnn").model_version_policy.specific.versions) == [2]
    # The other model is byte-for-byte untouched in every step.
    for step in (step1, step2, retired):
        other = models.format_model_server_config(step).split('  config {\n    name: "cnn"')[0]
        assert other == STABLE_ON_1.split('  config {\n    name: "cnn"', maxsplit=1)[0]


def test_moving_straight_to_an_unserved_version_is_refused_with_the_two_step_hint() -> None:
    config = models.parse_model_server_config(STABLE_ON_1)
    with pytest.raises(ConfigError) as caught:
        labels.set_label(config, "cnn", "stable", 2, versions_on_disk={1, 2})
    message = str(caught.value)
    assert "version 2 is on disk but the config does not serve it (serves [1])" in message
    assert "--step 1" in message


def test_label_for_a_version_not_on_disk_is_refused() -> None:
    config = models.parse_model_server_config(STABLE_ON_1)
    for call in (labels.set_label, labels.begin_label_move, labels.finish_label_move):
        with pytest.raises(ConfigError, match=r"version 7 is not on disk \(versions present: \[1, 2\]\)"):
            call(config, "cnn", "stable", 7, versions_on_disk={1, 2})


def test_new_label_on_a_served_version() -> None:
    config = models.parse_model_server_config(STABLE_ON_1)
    updated = labels.set_label(config, "cnn", "canary", 1, versions_on_disk={1})
    assert dict(models.find_model(updated, "cnn").version_labels) == {"canary": 1, "stable": 1}
    # Map entries are written sorted by label: stable output.
    assert models.format_model_server_config(updated).index('"canary"') < models.format_model_server_config(
        updated
    ).index('"stable"')


def test_latest_policy_label_and_move_keeps_loaded_versions() -> None:
    config = models.set_model(models.parse_model_server_config(STABLE_ON_1), "other", "/m", policy=None)
    # `other` has the default latest-1 policy; versions 3 and 4 on disk, 4 is served.
    labelled = labels.set_label(config, "other", "stable", 4, versions_on_disk={3, 4})
    with pytest.raises(ConfigError, match=r"serves \[4\]"):
        labels.set_label(config, "other", "stable", 3, versions_on_disk={3, 4})
    step1 = labels.begin_label_move(labelled, "other", "stable", 5, versions_on_disk={3, 4, 5})
    assert list(models.find_model(step1, "other").model_version_policy.specific.versions) == [4, 5]


def test_remove_label_and_bad_names() -> None:
    config = models.parse_model_server_config(STABLE_ON_1)
    removed = labels.remove_label(config, "cnn", "stable")
    assert dict(models.find_model(removed, "cnn").version_labels) == {}
    with pytest.raises(ConfigError, match="has no label 'canary'"):
        labels.remove_label(config, "cnn", "canary")
    with pytest.raises(ConfigError, match="a label must be non-empty"):
        labels.set_label(config, "cnn", "a/b", 1, versions_on_disk={1})
    with pytest.raises(ConfigError, match="no model named 'x'"):
        labels.set_label(config, "x", "stable", 1, versions_on_disk={1})


def test_a_label_moves_only_with_the_gates_allowing_decision_for_that_move() -> None:
    step1 = labels.begin_label_move(
        models.parse_model_server_config(STABLE_ON_1), "cnn", "stable", 2, versions_on_disk={1, 2}
    )
    for call in (labels.set_label, labels.finish_label_move):
        with pytest.raises(ConfigError) as caught:
            call(step1, "cnn", "stable", 2, versions_on_disk={1, 2})
        assert str(caught.value).startswith(
            "moving label 'stable' of model 'cnn' from version 1 to 2 needs the promotion gate's decision: "
            "pass decision=decide_label_move('cnn', 'stable', 1, 2, base_path=...)"
        )
        other_move = GateDecision("cnn", "canary", 1, 2, allowed=True, accepted_new_space=False, source="x")
        with pytest.raises(
            ConfigError, match=r"decision given is for another move \(model 'cnn', label 'canary'"
        ):
            call(step1, "cnn", "stable", 2, versions_on_disk={1, 2}, decision=other_move)
        refused = GateDecision(
            "cnn",
            "stable",
            1,
            2,
            allowed=False,
            accepted_new_space=False,
            source="compared now",
            blocking={"embedding": "mean cosine 0.12 < 0.99"},
        )
        with pytest.raises(ConfigError, match=r"refused by the promotion gate: .*mean cosine 0\.12 < 0\.99"):
            call(step1, "cnn", "stable", 2, versions_on_disk={1, 2}, decision=refused)
    # A new label, and a label set to the version it names already, are not moves: no decision needed.
    assert dict(
        models.find_model(
            labels.set_label(step1, "cnn", "canary", 2, versions_on_disk={1, 2}), "cnn"
        ).version_labels
    ) == {"canary": 2, "stable": 1}
    assert labels.set_label(step1, "cnn", "stable", 1, versions_on_disk={1, 2}) == step1
