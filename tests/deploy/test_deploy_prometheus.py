"""The PrometheusRule with the real Prometheus (Debian's package): `promtool check rules`, `promtool test
rules` unit tests for every alert, and a Prometheus server scraping `layertap serve` replicas on loopback
while requests run, whose recording rule for the autoscalers must come out non-zero."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import yaml

from layertap.client import LayerClient
from tests.deploy.monitoring import PROMETHEUS_RULE, RULE_TESTS, PrometheusServer, write_rules
from tests.deploy.serving import METRICS_PATH, Replica, free_port

COMPONENTS = PROMETHEUS_RULE.parents[1]


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


def _adapter_query(pod: str) -> str:
    """prometheus-adapter's metricsQuery as it expands for one pod of namespace `layertap`."""
    rule = yaml.safe_load((COMPONENTS / "hpa" / "prometheus-adapter.yaml").read_text())["rules"][0]
    series = rule["seriesQuery"].split("{")[0]
    return (
        rule["metricsQuery"]
        .replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", f'namespace="layertap",pod=~"{pod}"')
        .replace("<<.GroupBy>>", "pod")
    )


def test_prometheus_scrapes_layertap_serve_and_records_the_autoscaler_metric(
    tmp_path: Path, prometheus_tools: tuple[str, str], replicas: list[Replica]
) -> None:
    # The labels Kubernetes service discovery gives each pod; the pod names match the KEDA query's pattern.
    pods = {
        f"{r.address}:{r.rest_port}": f"layertap-serving-5d8c7b9f4-replica{i}"
        for i, r in enumerate(replicas, 1)
    }
    server = PrometheusServer(prometheus_tools[0], tmp_path, free_port(["127.0.0.1"]))
    stop = threading.Event()
    client = LayerClient("ipv4:" + ",".join(f"{r.address}:{r.port}" for r in replicas), "cnn")
    callers: list[threading.Thread] = []
    try:
        server.start(
            METRICS_PATH, {target: {"namespace": "layertap", "pod": pod} for target, pod in pods.items()}
        )
        x = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)

        def call() -> None:
            while not stop.is_set():
                client.predict_layer(x, "pool_1")

        callers.extend(threading.Thread(target=call) for _ in range(4))
        for caller in callers:
            caller.start()

        def recorded() -> list[dict]:  # type: ignore[type-arg]
            return [
                r for r in server.query("pod:tensorflow_serving_requests:rate1m") if float(r["value"][1]) > 0
            ]

        server.wait_for(lambda: len(recorded()) == 3, "a non-zero request rate recorded for every pod")
        assert {r["metric"]["pod"] for r in recorded()} == set(pods.values())
        # Scraped under TF Serving's own names, colons included.
        assert server.query('count(up{job="layertap-serving"} == 1)')[0]["value"][1] == "3"
        assert server.query("count(:tensorflow:serving:request_count)")
        # What the HPA reads through prometheus-adapter, and what the KEDA trigger reads.
        pod = next(iter(pods.values()))
        adapter = server.query(_adapter_query(pod))
        assert [r["metric"] for r in adapter] == [{"pod": pod}] and float(adapter[0]["value"][1]) > 0
        scaled = yaml.safe_load((COMPONENTS / "keda" / "scaledobject.yaml").read_text())
        keda = server.query(scaled["spec"]["triggers"][0]["metadata"]["query"])
        assert len(keda) == 1 and float(keda[0]["value"][1]) > 0
        in_flight = server.query("pod:tensorflow_serving_requests_in_flight:rate1m")
        assert len(in_flight) == 3 and all(float(r["value"][1]) > 0 for r in in_flight)
    finally:
        stop.set()
        for caller in callers:
            caller.join(timeout=30)
        client.close()
        server.stop()
