"""Every overlay of docker/kustomize/ builds offline with the real kustomize (inside kubectl), and the
built-in kinds it renders pass `kubernetes-validate --strict`; the overlays agree with the base and
with each other."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from layertap.config import demo_files
from tests.deploy.kustomize import (
    COMPONENTS,
    KUSTOMIZE_DIR,
    OVERLAYS,
    REPO_ROOT,
    Validate,
    build,
    by_kind,
    load,
)

BASE = REPO_ROOT / "docker" / "kubernetes"
# Custom kinds are checked against their CRDs' schemas (test_deploy_crds.py), the rest here.
BUILT_IN_GROUPS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2"}

EXPECTED_KINDS = {
    "monitoring": {"ServiceMonitor", "PrometheusRule"},
    "autoscaling": {"ServiceMonitor", "PrometheusRule", "HorizontalPodAutoscaler"},
    "keda": {"ServiceMonitor", "PrometheusRule", "ScaledObject"},
    "gke": {"PodMonitoring"},
}
BASE_KINDS = {"ConfigMap", "PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget"}


def test_every_overlay_is_known() -> None:
    assert set(OVERLAYS) == {*EXPECTED_KINDS, "kserve"}


@pytest.mark.parametrize("overlay", sorted(EXPECTED_KINDS))
def test_overlays_add_to_the_plain_deployment(overlay: str, validate: Validate) -> None:
    kinds = {m["kind"] for m in build(validate, KUSTOMIZE_DIR / "overlays" / overlay)}
    assert kinds == BASE_KINDS | EXPECTED_KINDS[overlay]


def test_kserve_overlay_replaces_the_deployment_and_keeps_config_and_storage(validate: Validate) -> None:
    built = by_kind(build(validate, KUSTOMIZE_DIR / "overlays" / "kserve"))
    assert set(built) == {"ConfigMap", "PersistentVolumeClaim", "ServingRuntime", "InferenceService"}
    assert built["ConfigMap"] == load(BASE / "configmap.yaml")


def test_built_in_kinds_of_every_overlay_pass_kubernetes_validate_strict(
    tmp_path: Path, validate: Validate
) -> None:
    rendered: list[str] = []
    count = 0
    for overlay in OVERLAYS:
        built = build(validate, KUSTOMIZE_DIR / "overlays" / overlay)
        built_in = [m for m in built if m["apiVersion"] in BUILT_IN_GROUPS]
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(built_in))
        rendered.append(str(tmp_path / f"{overlay}.yaml"))
        count += len(built_in)
    result = validate("kubernetes-validate", "--strict", *rendered)  # one run: it loads its schemas once
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == count


def test_kubernetes_validate_rejects_a_broken_hpa(tmp_path: Path, validate: Validate) -> None:
    hpa = (COMPONENTS / "hpa" / "hpa.yaml").read_text()
    broken = tmp_path / "hpa.yaml"
    broken.write_text(hpa.replace("stabilizationWindowSeconds: 600", "stabilisationWindowSeconds: 600"))
    result = validate("kubernetes-validate", "--strict", str(broken))
    assert result.returncode != 0
    assert "stabilisationWindowSeconds" in result.stdout + result.stderr


def test_kustomize_rejects_a_broken_copy(tmp_path: Path, validate: Validate) -> None:
    docker = tmp_path / "docker"
    shutil.copytree(REPO_ROOT / "docker", docker)
    component = docker / "kustomize" / "components" / "hpa" / "kustomization.yaml"
    component.write_text(component.read_text().replace("path: /spec/replicas", "path: /spec/replicaz"))
    result = validate("kubectl", "kustomize", str(docker / "kustomize" / "overlays" / "autoscaling"))
    assert result.returncode != 0
    assert "/spec/replicaz" in result.stderr


@pytest.mark.parametrize("overlay", ["autoscaling", "keda"])
def test_the_autoscaler_owns_the_replica_count(overlay: str, validate: Validate) -> None:
    deployment = by_kind(build(validate, KUSTOMIZE_DIR / "overlays" / overlay))["Deployment"]
    assert "replicas" not in deployment["spec"]
    assert load(BASE / "deployment.yaml")["spec"]["replicas"] == 2  # the base alone keeps its two


def test_hpa_and_keda_scale_alike_and_wait_out_a_cold_start() -> None:
    hpa = load(COMPONENTS / "hpa" / "hpa.yaml")["spec"]
    keda = load(COMPONENTS / "keda" / "scaledobject.yaml")["spec"]
    assert keda["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["behavior"]
    assert (keda["minReplicaCount"], keda["maxReplicaCount"]) == (hpa["minReplicas"], hpa["maxReplicas"])
    assert keda["triggers"][0]["metadata"]["threshold"] == hpa["metrics"][0]["pods"]["target"]["averageValue"]
    # Scale-down waits at least the longest start-up the startupProbe allows (model load + warmup).
    startup = load(BASE / "deployment.yaml")["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= (
        startup["periodSeconds"] * startup["failureThreshold"]
    )
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    # The PodDisruptionBudget may take one replica away: at least one more must stay.
    assert hpa["minReplicas"] >= load(BASE / "pdb.yaml")["spec"]["maxUnavailable"] + 1


def _recorded() -> dict[str, str]:
    rule = load(COMPONENTS / "prometheus-operator" / "prometheusrule.yaml")
    return {r["record"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r}


def test_the_autoscalers_read_the_per_pod_recording_rule() -> None:
    recorded = _recorded()
    assert "rate(:tensorflow:serving:request_count[1m])" in recorded["pod:tensorflow_serving_requests:rate1m"]
    adapter = load(COMPONENTS / "hpa" / "prometheus-adapter.yaml")["rules"][0]
    assert adapter["seriesQuery"].startswith("pod:tensorflow_serving_requests:rate1m{")
    assert re.fullmatch(adapter["name"]["matches"], "pod:tensorflow_serving_requests:rate1m")
    hpa_metric = load(COMPONENTS / "hpa" / "hpa.yaml")["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert adapter["name"]["as"] == hpa_metric
    query = load(COMPONENTS / "keda" / "scaledobject.yaml")["spec"]["triggers"][0]["metadata"]["query"]
    assert query.startswith("sum(pod:tensorflow_serving_requests:rate1m{")
    # The KEDA query's pod pattern matches this Deployment's pods (<deployment>-<replicaset hash>-<pod hash>).
    pattern = re.search(r'pod=~"([^"]+)"', query)
    assert pattern is not None and re.fullmatch(pattern.group(1), "layertap-serving-7d9f8b6c5-x2kqz")


def test_scrapes_name_tf_servings_real_metrics_path() -> None:
    path = re.search(r'path: "([^"]+)"', demo_files()["monitoring.config"])
    assert path is not None and path.group(1) == "/monitoring/prometheus/metrics"
    monitor = load(COMPONENTS / "prometheus-operator" / "servicemonitor.yaml")["spec"]
    assert [(e["port"], e["path"]) for e in monitor["endpoints"]] == [("http", path.group(1))]
    pods = load(COMPONENTS / "gke-managed-prometheus" / "podmonitoring.yaml")["spec"]
    assert [(e["port"], e["path"]) for e in pods["endpoints"]] == [("http", path.group(1))]
    pod_template = load(BASE / "deployment.yaml")["spec"]["template"]
    assert {p["name"] for p in pod_template["spec"]["containers"][0]["ports"]} >= {"http"}
    assert pods["selector"] == monitor["selector"]
    assert pods["selector"]["matchLabels"].items() <= pod_template["metadata"]["labels"].items()


def test_serving_runtime_fixes_the_stock_runtimes_metrics(validate: Validate) -> None:
    built = by_kind(build(validate, KUSTOMIZE_DIR / "overlays" / "kserve"))
    runtime, service = built["ServingRuntime"]["spec"], built["InferenceService"]
    container = runtime["containers"][0]
    args = container["args"]
    rest_port = next(a.split("=")[1] for a in args if a.startswith("--rest_api_port="))
    monitoring_flag = "--monitoring_config_file=/serving_config/monitoring.config"
    assert monitoring_flag in args
    assert runtime["annotations"] == {
        "prometheus.kserve.io/port": rest_port,
        "prometheus.kserve.io/path": "/monitoring/prometheus/metrics",
    }
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v["configMap"]["name"] for v in runtime["volumes"]}
    assert mounts == {"serving-config": "/serving_config"}
    assert volumes == {"serving-config": built["ConfigMap"]["metadata"]["name"]}
    assert {"monitoring.config", "batching.config"} <= set(built["ConfigMap"]["data"])
    # The same image as the plain Deployment as built (after any kustomize `images:` transform of the base).
    deployment = by_kind(build(validate, KUSTOMIZE_DIR / "overlays" / "monitoring"))["Deployment"]
    assert container["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["command"] == ["/usr/bin/tensorflow_model_server"]
    # The InferenceService names this runtime, and its storage is the base's model PVC.
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == built["ServingRuntime"]["metadata"]["name"]
    assert {"name": model["modelFormat"]["name"], "version": model["modelFormat"]["version"]} in [
        {"name": f["name"], "version": f["version"]} for f in runtime["supportedModelFormats"]
    ]
    assert model["protocolVersion"] in runtime["protocolVersions"]
    claim = built["PersistentVolumeClaim"]["metadata"]["name"]
    assert re.fullmatch(rf"pvc://{claim}/[a-z0-9_]+", model["storageUri"])
    # The readiness probe asks TF Serving about the model KServe names after the InferenceService.
    assert model["readinessProbe"]["exec"]["command"][1:] == [service["metadata"]["name"], rest_port]
