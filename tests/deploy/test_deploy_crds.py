"""The custom kinds the overlays render, validated by check-jsonschema against their CRDs' schemas.

tests/deploy/schemas/*.json are produced by tools/crd_schemas.py from registry packages only, each file's
`$comment` naming its package, version and sha256 (prometheus-operator and KEDA: the cloudcoil models
generated from the released CRDs; KServe: the kserve SDK's generated models, as no registry ships its CRDs;
GKE PodMonitoring: no registry ships it, see the script). Every schema forbids unknown fields.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.deploy.kustomize import KUSTOMIZE_DIR, OVERLAYS, Manifest, Validate, build

SCHEMAS = Path(__file__).parent / "schemas"
CUSTOM_KINDS = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "ScaledObject": "keda.sh/v1alpha1",
    "PodMonitoring": "monitoring.googleapis.com/v1",
    "InferenceService": "serving.kserve.io/v1beta1",
    "ServingRuntime": "serving.kserve.io/v1alpha1",
}
# One mistake per kind that its schema must refuse: a misspelt field or a value of the wrong form.
BREAKAGES = {
    "ServiceMonitor": ("interval: 15s", "intervall: 15s"),
    "PrometheusRule": ("for: 5m", "for: five minutes"),
    "ScaledObject": ("minReplicaCount: 2", "minReplicaCount: two"),
    "PodMonitoring": ("matchLabels:", "matchLabel:"),
    "InferenceService": ("storageUri:", "storageURI:"),
    "ServingRuntime": ("autoSelect: false", "autoSelect: nope"),
}


@pytest.fixture(scope="module")
def custom_objects(validate: Validate) -> dict[str, list[Manifest]]:
    """Every custom object of every overlay, by kind (identical copies from several overlays once)."""
    found: dict[str, list[Manifest]] = {}
    for overlay in OVERLAYS:
        for manifest in build(validate, KUSTOMIZE_DIR / "overlays" / overlay):
            if manifest["kind"] in CUSTOM_KINDS and manifest not in found.setdefault(manifest["kind"], []):
                found[manifest["kind"]].append(manifest)
    return found


def _check(validate: Validate, kind: str, files: list[Path]) -> tuple[int, str]:
    schema = SCHEMAS / f"{kind.lower()}.json"
    result = validate("check-jsonschema", "--schemafile", str(schema), *map(str, files))
    return result.returncode, result.stdout + result.stderr


def test_every_custom_kind_has_a_schema_with_its_source(custom_objects: dict[str, list[Manifest]]) -> None:
    assert set(custom_objects) == set(CUSTOM_KINDS)
    assert sorted(p.stem for p in SCHEMAS.glob("*.json")) == sorted(k.lower() for k in CUSTOM_KINDS)
    for kind, api_version in CUSTOM_KINDS.items():
        assert all(m["apiVersion"] == api_version for m in custom_objects[kind])
        comment = json.loads((SCHEMAS / f"{kind.lower()}.json").read_text())["$comment"]
        assert comment.startswith(f"{kind}") and "tools/crd_schemas.py" in comment
        assert "PyPI " in comment and "sha256 " in comment


@pytest.mark.parametrize("kind", sorted(CUSTOM_KINDS))
def test_check_jsonschema_accepts_the_manifests(
    kind: str, custom_objects: dict[str, list[Manifest]], tmp_path: Path, validate: Validate
) -> None:
    files = []
    for index, manifest in enumerate(custom_objects[kind]):
        files.append(tmp_path / f"{kind}-{index}.yaml")
        files[-1].write_text(yaml.safe_dump(manifest, sort_keys=False))
    code, output = _check(validate, kind, files)
    assert code == 0, output


@pytest.mark.parametrize("kind", sorted(CUSTOM_KINDS))
def test_check_jsonschema_rejects_a_broken_copy(
    kind: str, custom_objects: dict[str, list[Manifest]], tmp_path: Path, validate: Validate
) -> None:
    old, new = BREAKAGES[kind]
    text = yaml.safe_dump(custom_objects[kind][0], sort_keys=False)
    assert old in text, f"{old!r} not in the {kind}"
    broken = tmp_path / f"{kind}.yaml"
    broken.write_text(text.replace(old, new, 1))
    code, output = _check(validate, kind, [broken])
    assert code == 1, output
    assert new.split(":")[0] in output or new.split(": ")[1] in output, output
