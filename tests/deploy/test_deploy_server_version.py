"""The deployment files take the TF Serving release as a parameter, the pin by default: a Dockerfile build
argument, a compose variable and a kustomize `images:` entry, each rendered here for two releases."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml  # PyYAML comes with kubernetes-validate (dev extra)

from layertap.config import SERVER_RELEASES, SERVING_VERSION, server_release

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
Validate = Callable[..., subprocess.CompletedProcess[str]]
#: The fleet release the parameter is moved to; a release layertap has a profile for.
OLDER = "2.17.1"


def _compose(validate: Validate, profile: str) -> dict:  # type: ignore[type-arg]
    result = validate("docker-compose", "-f", str(DOCKER_DIR / "compose.yaml"), "--profile", profile,
                      "config", "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfiles_take_the_release_as_a_build_argument(name: str, validate: Validate) -> None:
    text = (DOCKER_DIR / name).read_text()
    assert re.findall(r"^ARG TF_SERVING_VERSION=(\S+)$", text, re.MULTILINE) == [SERVING_VERSION]
    suffix = "-gpu" if name == "Dockerfile" else ""
    assert re.findall(r"^FROM (\S+)$", text, re.MULTILINE) == [
        f"tensorflow/serving:${{TF_SERVING_VERSION}}{suffix}"
    ]
    # Declared again after FROM, so the label names the release the image was built from.
    assert 'org.opencontainers.image.version="${TF_SERVING_VERSION}' + suffix + '"' in text
    result = validate("hadolint", str(DOCKER_DIR / name))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("release", [SERVING_VERSION, OLDER])
def test_compose_variable(release: str, validate: Validate, monkeypatch: pytest.MonkeyPatch) -> None:
    server_release(release)
    if release == SERVING_VERSION:
        monkeypatch.delenv("TF_SERVING_VERSION", raising=False)  # the default is the pin
    else:
        monkeypatch.setenv("TF_SERVING_VERSION", release)
    gpu = _compose(validate, "gpu")["services"]["serving"]
    assert gpu["image"] == f"layertap/serving:{release}-gpu"
    assert gpu["build"]["args"] == {"TF_SERVING_VERSION": release}
    cpu = _compose(validate, "cpu")["services"]["serving-cpu"]
    assert cpu["image"] == f"layertap/serving:{release}"
    assert cpu["build"]["args"] == {"TF_SERVING_VERSION": release}


@pytest.mark.parametrize("release", [SERVING_VERSION, OLDER])
def test_kubernetes_image_is_a_kustomize_images_entry(
    release: str, validate: Validate, tmp_path: Path
) -> None:
    base = DOCKER_DIR / "kubernetes"
    assert yaml.safe_load((base / "kustomization.yaml").read_text())["images"] == [
        {"name": "layertap/serving", "newTag": f"{SERVING_VERSION}-gpu"}
    ]
    target = base
    if release != SERVING_VERSION:
        # What a fleet on an older release writes: an overlay naming its tag.
        overlay = tmp_path / "fleet"
        overlay.mkdir()
        (overlay / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [os.path.relpath(base, overlay)],
                    "images": [{"name": "layertap/serving", "newTag": f"{release}-gpu"}],
                }
            )
        )
        target = overlay
    result = validate("kubectl", "kustomize", str(target))
    assert result.returncode == 0, result.stderr
    deployments = [doc for doc in yaml.safe_load_all(result.stdout) if doc and doc["kind"] == "Deployment"]
    (deployment,) = deployments
    images = [container["image"] for container in deployment["spec"]["template"]["spec"]["containers"]]
    assert images == [f"layertap/serving:{release}-gpu"]


def test_every_release_a_parameter_may_name_has_a_profile() -> None:
    # Moving the parameter to a release compat cannot check would leave the fleet unguarded.
    assert SERVING_VERSION in SERVER_RELEASES and OLDER in SERVER_RELEASES
