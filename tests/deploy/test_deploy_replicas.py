"""Three `layertap serve` processes on 127.0.0.1-3 (the same ports, as pods behind a headless Service):
a real Prometheus server scrapes them while requests run, and the recording rule the autoscalers use must
come out non-zero; then replicas that fail without failing calls, with one LayerClient given all of them
(`ipv4:` list, round robin). Each server counts the calls it answered (its Predict latency histogram);
16 callers run throughout.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from layertap.client import LayerClient
from tests.deploy.load import Load, milliseconds
from tests.deploy.monitoring import PROMETHEUS_RULE, PrometheusServer
from tests.deploy.serving import METRICS_PATH, Replica, free_port

CALLERS = 16
LAYER = "pool_1"
COMPONENTS = PROMETHEUS_RULE.parents[1]


@pytest.fixture
def client(replicas: list[Replica]) -> Iterator[LayerClient]:
    target = "ipv4:" + ",".join(f"{r.address}:{r.port}" for r in replicas)
    with LayerClient(target, "cnn", timeout=10) as layer_client:
        yield layer_client


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(7).random((1, 28, 28, 1), dtype=np.float32)


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
    tmp_path: Path,
    prometheus_tools: tuple[str, str],
    replicas: list[Replica],
    client: LayerClient,
    x: np.ndarray,
) -> None:
    # The labels Kubernetes service discovery gives each pod; the pod names match the KEDA query's pattern.
    pods = {
        f"{r.address}:{r.rest_port}": f"layertap-serving-5d8c7b9f4-replica{i}"
        for i, r in enumerate(replicas, 1)
    }
    server = PrometheusServer(prometheus_tools[0], tmp_path, free_port(["127.0.0.1"]))
    try:
        server.start(
            METRICS_PATH, {target: {"namespace": "layertap", "pod": pod} for target, pod in pods.items()}
        )
        with Load(client, x, LAYER, callers=4) as load:

            def recorded() -> list[dict[str, Any]]:
                rates = server.query("pod:tensorflow_serving_requests:rate1m")
                return [r for r in rates if float(r["value"][1]) > 0]

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
        assert load.failures() == []
    finally:
        server.stop()


def _served(replicas: list[Replica]) -> list[int]:
    return [r.predicts_served() for r in replicas]


def _report(what: str, **numbers: object) -> None:
    # Shown with `pytest -s`; the replica figures in BENCHMARKS.md §9 come from these lines.
    print(f"\n[replicas] {what}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


def test_round_robin_spreads_calls_over_every_replica(
    replicas: list[Replica], client: LayerClient, x: np.ndarray
) -> None:
    client.predict_layer(x, LAYER)  # connect to every address
    before = _served(replicas)
    with Load(client, x, LAYER, CALLERS) as load:
        time.sleep(2)
    assert load.failures() == []
    served = [after - b for after, b in zip(_served(replicas), before, strict=True)]
    assert sum(served) == len(load.calls)  # every call answered exactly once, by one of the three
    assert min(served) > len(load.calls) / 3 / 2, served  # round robin: none far below its third
    _report(
        "spread", calls=len(load.calls), per_replica=served, p50_ms=round(milliseconds(load.calls, 0.5), 1)
    )


def test_a_sigkilled_replica_fails_no_call_and_takes_traffic_again_after_restart(
    replicas: list[Replica], client: LayerClient, x: np.ndarray
) -> None:
    victim, survivors = replicas[1], [replicas[0], replicas[2]]
    client.predict_layer(x, LAYER)
    with Load(client, x, LAYER, CALLERS) as load:
        time.sleep(2)
        before_kill = _served(replicas)
        assert before_kill[1] > 0
        killed_at = time.monotonic()
        victim.kill()  # SIGKILL under load: calls in flight on it die with the process
        survivors_at_kill = [r.predicts_served() for r in survivors]
        victim.start()  # down until its new process has loaded the model again
        victim.wait_until({1: "AVAILABLE"})
        back_at = time.monotonic()
        survivors_while_down = [
            r.predicts_served() - n for r, n in zip(survivors, survivors_at_kill, strict=True)
        ]
        # The client reconnects on its own (gRPC's reconnect backoff) and the restarted replica serves again.
        deadline = time.monotonic() + 90
        while victim.predicts_served() < 20 and time.monotonic() < deadline:
            time.sleep(0.25)
        rejoined_at = time.monotonic()
        time.sleep(1)
    failures = load.failures()
    assert failures == [], failures[:5]
    assert victim.predicts_served() >= 20, "the restarted replica took no traffic"
    outage = load.between(killed_at, back_at)
    assert outage and all(n > 0 for n in survivors_while_down)
    around_kill = load.between(killed_at - 0.5, killed_at + 1.5)
    steady = load.between(0, killed_at)
    _report(
        "sigkill",
        calls=len(load.calls),
        failed=len(failures),
        per_replica_before_kill=before_kill,
        survivors_while_down=survivors_while_down,
        calls_while_down=len(outage),
        down_s=round(back_at - killed_at, 1),
        rejoined_after_restart_s=round(rejoined_at - back_at, 1),
        steady_p50_p99_ms=(round(milliseconds(steady, 0.5), 1), round(milliseconds(steady, 0.99), 1)),
        kill_p50_p99_max_ms=(
            round(milliseconds(around_kill, 0.5), 1),
            round(milliseconds(around_kill, 0.99), 1),
            round(max(c.seconds for c in around_kill) * 1000, 1),
        ),
    )


def _publish(version_dir: Path, base: Path, version: int) -> None:
    """As the exporter publishes: copy under a hidden name, then one rename makes it visible."""
    hidden = base / f".publishing-{version}"
    shutil.copytree(version_dir, hidden)
    hidden.rename(base / str(version))


def test_a_version_rollout_replica_by_replica_fails_no_call(
    replicas: list[Replica], client: LayerClient, x: np.ndarray, cnn_versions: dict[int, Path]
) -> None:
    first = client.predict_layer(x, LAYER)
    with Load(client, x, LAYER, CALLERS) as load:
        time.sleep(1)
        started_at = time.monotonic()
        for replica in replicas:
            _publish(cnn_versions[2], replica.base_path, 2)
            # TF Serving's order: version 2 loads and becomes AVAILABLE before version 1 is unloaded.
            replica.wait_until({1: "END", 2: "AVAILABLE"})
        done_at = time.monotonic()
        time.sleep(1.5)
    failures = load.failures()
    assert failures == [], failures[:5]
    old = float(np.round(np.sum(first), 3))
    answers = {c.answer for c in load.calls}
    assert old in answers and len(answers) == 2, answers  # version 1, then version 2 (other weights)
    (new,) = answers - {old}
    assert {c.answer for c in load.between(done_at + 0.5)} == {new}  # all on version 2 once rolled out
    during = load.between(started_at, done_at)
    _report(
        "rollout",
        calls=len(load.calls),
        failed=len(failures),
        during_rollout=len(during),
        on_v1=sum(c.answer == old for c in during),
        on_v2=sum(c.answer == new for c in during),
        rollout_s=round(done_at - started_at, 1),
        p50_p99_ms=(round(milliseconds(during, 0.5), 1), round(milliseconds(during, 0.99), 1)),
    )
