"""docker/ says one thing everywhere: the pinned image, the server flags, the mounts, the demo config."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml  # PyYAML comes with kubernetes-validate (dev extra)

from layertap.config import demo_files
from layertap.config.compat import SERVING_IMAGE_CPU, SERVING_IMAGE_GPU, SERVING_VERSION

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
KUBERNETES_DIR = DOCKER_DIR / "kubernetes"
Validate = Callable[..., subprocess.CompletedProcess[str]]


REQUIRED_FLAGS = {
    "--port=8500",
    "--rest_api_port=8501",
    "--model_config_file=/serving_config/models.config",
    "--model_config_file_poll_wait_seconds=30",
    "--enable_batching=true",
    "--batching_parameters_file=/serving_config/batching.config",
    "--monitoring_config_file=/serving_config/monitoring.config",
}


def _dockerfile_cmd(name: str) -> list[str]:
    text = (DOCKER_DIR / name).read_text()
    match = re.search(r"^CMD (\[.*?\])$", text.replace("\\\n", ""), re.MULTILINE | re.DOTALL)
    assert match is not None
    return list(json.loads(match.group(1)))


def _compose(validate: Validate, profile: str) -> dict:  # type: ignore[type-arg]
    result = validate(
        "docker-compose",
        "-f",
        str(DOCKER_DIR / "compose.yaml"),
        "--profile",
        profile,
        "config",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _deployment() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((KUBERNETES_DIR / "deployment.yaml").read_text())  # type: ignore[no-any-return]


def _from_line(name: str) -> str:
    """The Dockerfile's base image with its build argument's default substituted."""
    text = (DOCKER_DIR / name).read_text()
    (default,) = re.findall(r"^ARG TF_SERVING_VERSION=(\S+)$", text, re.MULTILINE)
    (image,) = re.findall(r"^FROM (\S+)$", text, re.MULTILINE)
    return image.replace("${TF_SERVING_VERSION}", default)


def test_images_are_pinned_to_the_version_layertap_config_knows(validate: Validate) -> None:
    assert SERVING_VERSION == "2.21.0"
    assert _from_line("Dockerfile") == SERVING_IMAGE_GPU
    assert _from_line("Dockerfile.cpu") == SERVING_IMAGE_CPU
    assert (
        _compose(validate, "gpu")["services"]["serving"]["image"] == f"layertap/serving:{SERVING_VERSION}-gpu"
    )
    assert (
        _compose(validate, "cpu")["services"]["serving-cpu"]["image"] == f"layertap/serving:{SERVING_VERSION}"
    )
    assert _deployment()["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"layertap/serving:{SERVING_VERSION}-gpu"
    )


def test_the_same_flags_everywhere(validate: Validate) -> None:
    gpu_cmd = _dockerfile_cmd("Dockerfile")
    assert gpu_cmd == _dockerfile_cmd("Dockerfile.cpu")
    assert set(gpu_cmd) >= REQUIRED_FLAGS
    assert _compose(validate, "gpu")["services"]["serving"]["command"] == gpu_cmd
    assert _compose(validate, "cpu")["services"]["serving-cpu"]["command"] == gpu_cmd
    k8s_args = _deployment()["spec"]["template"]["spec"]["containers"][0]["args"]
    assert k8s_args[: len(gpu_cmd)] == gpu_cmd
    assert k8s_args[len(gpu_cmd) :] == [
        "--grpc_channel_arguments=grpc.max_connection_age_ms=30000,grpc.max_connection_age_grace_ms=10000"
    ]


def test_compose_gpu_ports_mounts_and_health(validate: Validate) -> None:
    service = _compose(validate, "gpu")["services"]["serving"]
    assert service["deploy"]["resources"]["reservations"]["devices"] == [
        {"capabilities": ["gpu"], "driver": "nvidia", "count": -1}  # count: all
    ]
    assert [(p["target"], p["published"]) for p in service["ports"]] == [(8500, "8500"), (8501, "8501")]
    mounts = {v["target"]: v for v in service["volumes"]}
    assert set(mounts) == {"/models", "/serving_config"}
    assert all(v["read_only"] is True and v["type"] == "bind" for v in mounts.values())
    assert mounts["/serving_config"]["source"] == str(DOCKER_DIR.parent / "serving_config")
    assert service["healthcheck"]["test"] == [
        "CMD",
        "/usr/local/bin/layertap-healthcheck",
        "tutorial_cnn",
        "8501",
    ]
    assert "deploy" not in _compose(validate, "cpu")["services"]["serving-cpu"]


def test_kubernetes_gpu_probes_and_termination() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    probe = ["/usr/local/bin/layertap-healthcheck", "tutorial_cnn", "8501"]
    assert container["readinessProbe"]["exec"]["command"] == probe
    assert container["startupProbe"]["exec"]["command"] == probe
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # preStop covers max_connection_age + its grace (40 s); the grace period adds a request deadline on top.
    assert 40 < int(pre_stop[1]) < pod["terminationGracePeriodSeconds"]
    assert {m["mountPath"]: m["readOnly"] for m in container["volumeMounts"]} == {
        "/models": True,
        "/serving_config": True,
    }
    service = yaml.safe_load((KUBERNETES_DIR / "service.yaml").read_text())
    assert service["spec"]["clusterIP"] == "None"
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"grpc": 8500, "http": 8501}
    strategy = _deployment()["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxUnavailable": 0, "maxSurge": 1}


def test_configmap_holds_the_demo_files() -> None:
    configmap = yaml.safe_load((KUBERNETES_DIR / "configmap.yaml").read_text())
    assert configmap["data"] == demo_files()
