"""The PrometheusRule with the real Prometheus tools (Debian's package): `promtool check rules` and `promtool
test rules` unit tests for every alert. test_deploy_replicas.py runs a real Prometheus server against
`layertap serve` replicas."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.monitoring import PROMETHEUS_RULE, RULE_TESTS, write_rules


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, check=False)


def _alerts(rule: Path = PROMETHEUS_RULE) -> set[str]:
    groups = yaml.safe_load(rule.read_text())["spec"]["groups"]
    return {r["alert"] for g in groups for r in g["rules"] if "alert" in r}


def test_promtool_checks_the_rules(tmp_path: Path, prometheus_tools: tuple[str, str]) -> None:
    result = _promtool(prometheus_tools[1], "check", "rules", str(write_rules(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: 1[0-9] rules found", result.stdout), result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path, prometheus_tools: tuple[str, str]) -> None:
    broken = tmp_path / "prometheusrule.yaml"
    text = PROMETHEUS_RULE.read_text()
    old = "sum by (namespace, pod) (rate(:tensorflow:serving:request_count[1m]))"
    assert old in text
    broken.write_text(
        text.replace(old, "sum by (namespace, pod) (rate(:tensorflow:serving:request_count[1m])")
    )
    result = _promtool(prometheus_tools[1], "check", "rules", str(write_rules(tmp_path, broken)))
    assert result.returncode == 1
    assert "unclosed left parenthesis" in result.stdout + result.stderr


def _run_unit_tests(
    tmp_path: Path, promtool: str, rule: Path = PROMETHEUS_RULE
) -> subprocess.CompletedProcess[str]:
    write_rules(tmp_path, rule)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    return _promtool(promtool, "test", "rules", str(tmp_path / RULE_TESTS.name))


def test_promtool_unit_tests_pass_for_every_alert(tmp_path: Path, prometheus_tools: tuple[str, str]) -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = [t for group in tests for t in group.get("alert_rule_test", [])]
    assert {t["alertname"] for t in tested} == _alerts()
    for alert in _alerts():  # each alert is shown both firing and not firing
        assert {bool(t["exp_alerts"]) for t in tested if t["alertname"] == alert} == {True, False}, alert
    result = _run_unit_tests(tmp_path, prometheus_tools[1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_catch_a_changed_threshold(
    tmp_path: Path, prometheus_tools: tuple[str, str]
) -> None:
    changed = tmp_path / "prometheusrule.yaml"
    text = PROMETHEUS_RULE.read_text()
    changed.write_text(text.replace("ratio_rate5m > 0.05", "ratio_rate5m > 0.10"))
    result = _run_unit_tests(tmp_path, prometheus_tools[1], changed)
    assert result.returncode == 1
    assert "alertname: TFServingRequestErrors" in result.stdout + result.stderr
