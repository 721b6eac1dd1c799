"""Metrics: prometheus_client instruments under TF Serving's names, always served as text format 0.0.4."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path

from layertap.server.dataplane import metrics


def test_tf_serving_names_labels_and_buckets_through_prometheus_client() -> None:
    metrics.record_request("metrics-unit", "OK", "Classify", "GRPC", 20.0)
    metrics.record_request("metrics-unit", "INVALID_ARGUMENT", "Classify", "REST", 0)
    registry = metrics.METRICS.registry
    count = ":tensorflow:serving:request_count"
    assert registry.get_sample_value(count, {"model_name": "metrics-unit", "status": "OK"}) == 1
    latency = {"model_name": "metrics-unit", "API": "Classify", "entrypoint": "GRPC"}
    bucket = ":tensorflow:serving:request_latency_bucket"
    assert registry.get_sample_value(bucket, {**latency, "le": "18"}) == 0
    assert registry.get_sample_value(bucket, {**latency, "le": "32.4"}) == 1
    text = metrics.METRICS.render()
    assert f'{count}{{model_name="metrics-unit",status="INVALID_ARGUMENT"}} 1' in text.splitlines()
    assert "_total" not in text and "_created" not in text and "# HELP" not in text
    ours = f'{bucket}{{model_name="metrics-unit",API="Classify",entrypoint="GRPC",le="'
    bounds = [line[len(ours) :].split('"')[0] for line in text.splitlines() if line.startswith(ours)]
    assert bounds[:4] == ["10", "18", "32.4", "58.32"] and bounds[32:] == ["1.47476e+09", "+Inf"]


def test_an_openmetrics_scraper_still_gets_text_format_with_colons(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple], tmp_path: Path
) -> None:
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }\n')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server, _ = start_server(
        model_name="m",
        model_base_path=str(make_repo("m", {1: "1"})),
        rest_api_port=port,
        monitoring_config_file=str(monitoring),
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.rest_port}/metrics",
        headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4"
        text = response.read().decode()
    assert "# TYPE :tensorflow:cc:saved_model:load_attempt_count counter" in text
    assert "# EOF" not in text
