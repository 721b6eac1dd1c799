"""Regenerate tests/deploy/schemas/*.json: JSON schemas of the custom kinds in docker/kustomize/.

Every schema comes from a package registry (PyPI), never from a repository checkout:
- ServiceMonitor, PrometheusRule (prometheus-operator) and ScaledObject (KEDA): the cloudcoil model packages,
  pydantic models that cloudcoil-model-codegen generates from each project's released CRDs (the package
  version is the upstream release: cloudcoil-models-prometheus-operator 0.80.1.x = prometheus-operator
  v0.80.1); their JSON schema is the CRD's openAPIV3Schema as pydantic renders it.
- InferenceService and ServingRuntime (KServe): no registry ships KServe's CRDs (the kserve wheel has none),
  so the schemas are built from the kserve SDK's generated models (`openapi_types`, `attribute_map` and the
  required-field checks of each class), which are generated from the same Go API types as the CRDs, with
  the Kubernetes types (V1Container, V1Volume...) from the kubernetes client wheel. Read from the wheels'
  source text with `ast`, nothing imported.
- PodMonitoring (GKE Managed Prometheus): no registry ships its CRD. The closest justified check: metadata
  and spec.selector from the kubernetes client's V1ObjectMeta/V1LabelSelector (GMP's PodMonitoring embeds
  metav1.LabelSelector), endpoints as GMP documents them (port, path, interval, timeout, scheme): that part
  is hand-written and says so in the file.
Every object is strict (`additionalProperties: false`), as the API server's strict field validation is.

Usage: python tools/crd_schemas.py   (needs pip and network access to PyPI; takes about a minute)
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "tests" / "deploy" / "schemas"
KSERVE = "kserve==0.15.2"
KUBERNETES = "kubernetes==32.0.1"
CLOUDCOIL = {
    "cloudcoil-models-prometheus-operator==0.80.1.0": (
        "prometheus-operator v0.80.1",
        "prometheus_operator",
        "v1",
    ),
    "cloudcoil-models-keda==2.16.1.0": ("KEDA v2.16.1", "keda", "v1alpha1"),
}
PYDANTIC_KINDS = {"ServiceMonitor": 0, "PrometheusRule": 0, "ScaledObject": 1}
KSERVE_KINDS = {
    "InferenceService": ("V1beta1InferenceService", "serving.kserve.io/v1beta1"),
    "ServingRuntime": ("V1alpha1ServingRuntime", "serving.kserve.io/v1alpha1"),
}
Schema = dict[str, Any]


def _download(directory: Path, *requirements: str) -> dict[str, Path]:
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    subprocess.run(
        [*pip, "-d", str(directory), *requirements],
        check=True,
    )
    wheels = {}
    for requirement in requirements:
        name = requirement.split("==")[0].replace("-", "_")
        (wheel,) = directory.glob(f"{name}-*.whl")
        wheels[requirement] = wheel
    return wheels


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ecma_pattern(pattern: str) -> str:
    """Go's (RE2) case-insensitive flag `(?i)`, which ECMA regexes lack, spelt out letter by letter."""
    head, flag, tail = pattern.partition("(?i)")
    if not flag:
        return pattern
    assert "\\" not in tail and "[" not in tail, f"cannot rewrite {pattern!r}"
    return head + re.sub(r"[A-Za-z]", lambda m: f"[{m.group().lower()}{m.group().upper()}]", tail)


def _strict(node: Any) -> Any:
    """Forbid unknown fields in every object that lists its properties; drop pydantic's titles."""
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items() if k != "title"}
        if isinstance(node.get("pattern"), str):
            node["pattern"] = _ecma_pattern(node["pattern"])
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


# --- pydantic models (cloudcoil) ----------------------------------------------------------------------------

_PYDANTIC_SNIPPET = """
import json, sys
from cloudcoil.models.prometheus_operator import v1 as prometheus
from cloudcoil.models.keda import v1alpha1 as keda
models = {"ServiceMonitor": prometheus.ServiceMonitor, "PrometheusRule": prometheus.PrometheusRule,
          "ScaledObject": keda.ScaledObject}
json.dump({kind: model.model_json_schema(by_alias=True) for kind, model in models.items()}, sys.stdout)
"""


def _pydantic_schemas(directory: Path, wheels: dict[str, Path]) -> dict[str, Schema]:
    environment = directory / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", *map(str, wheels.values())], check=True)
    out = subprocess.run([str(python), "-c", _PYDANTIC_SNIPPET], check=True, capture_output=True, text=True)
    raw: dict[str, Schema] = json.loads(out.stdout)
    requirements = list(CLOUDCOIL)
    schemas = {}
    for kind, index in PYDANTIC_KINDS.items():
        requirement = requirements[index]
        upstream = CLOUDCOIL[requirement][0]
        source = (
            f"PyPI {requirement} (sha256 {_sha256(wheels[requirement])}), generated from the {upstream} CRDs"
        )
        schemas[kind] = {"$comment": f"{kind}: {source}; by tools/crd_schemas.py", **_strict(raw[kind])}
    return schemas


# --- OpenAPI-generated SDK models (kserve, kubernetes) ------------------------------------------------------


def _dict_literal(node: ast.expr) -> dict[str, str]:
    value = ast.literal_eval(node)
    assert isinstance(value, dict)
    return value


def _models(wheel: Path, folder: str) -> dict[str, Schema]:
    """Class name -> {types, names, required} for every generated model in `folder` of the wheel."""
    found: dict[str, Schema] = {}
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if not (member.startswith(folder) and member.endswith(".py")):
                continue
            source = archive.read(member).decode()
            for node in ast.parse(source).body:
                if not isinstance(node, ast.ClassDef):
                    continue
                fields: dict[str, dict[str, str]] = {}
                for statement in node.body:
                    target = statement.targets[0] if isinstance(statement, ast.Assign) else None
                    if isinstance(target, ast.Name) and target.id in ("openapi_types", "attribute_map"):
                        fields[target.id] = _dict_literal(statement.value)  # type: ignore[union-attr]
                if "openapi_types" in fields:
                    required = set(re.findall(r"Invalid value for `(\w+)`, must not be `None`", source))
                    found[node.name] = {**fields, "required": required}
    return found


_PRIMITIVES: dict[str, Schema] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string"},
    "date": {"type": "string"},
    "object": {},  # IntOrString, raw JSON: anything
    "ResourceQuantity": {"type": ["string", "integer", "number"]},  # "4", 8Gi, 0.5
}


class _Builder:
    def __init__(self, models: dict[str, Schema]) -> None:
        self.models = models
        self.definitions: dict[str, Schema] = {}

    def type_schema(self, openapi_type: str) -> Schema:
        if openapi_type in _PRIMITIVES:
            return dict(_PRIMITIVES[openapi_type])
        if match := re.fullmatch(r"list\[(.+)\]", openapi_type):
            return {"type": "array", "items": self.type_schema(match.group(1))}
        if match := re.fullmatch(r"dict\(str, (.+)\)", openapi_type):
            return {"type": "object", "additionalProperties": self.type_schema(match.group(1))}
        return {"$ref": f"#/definitions/{self.define(openapi_type)}"}

    def define(self, name: str) -> str:
        # kserve names some Kubernetes types by Go package (K8sIoApiAppsV1DeploymentStrategy: V1...).
        if match := re.fullmatch(r"K8sIoApi[A-Z][a-z]+(V\d+(?:alpha\d+|beta\d+)?)(\w+)", name):
            name = match.group(1) + match.group(2)
        if name in self.definitions:
            return name
        if name not in self.models:
            # Named by a field, missing from the wheel (kserve 0.15.2 lacks V1alpha1WorkerSpec): any object.
            print(f"warning: {name} is not defined in the SDK wheels; accepting any object", file=sys.stderr)
            self.definitions[name] = {"type": "object", "$comment": f"{name}: not defined in the SDK wheels"}
            return name
        model = self.models[name]
        self.definitions[name] = {}  # placeholder: types may refer to themselves
        properties = {
            model["attribute_map"][a]: self.type_schema(t) for a, t in model["openapi_types"].items()
        }
        schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
        required = sorted(model["attribute_map"][a] for a in model["required"])
        if required:
            schema["required"] = required
        self.definitions[name] = schema
        return name


def _sdk_schemas(wheels: dict[str, Path]) -> dict[str, Schema]:
    models = {
        **_models(wheels[KUBERNETES], "kubernetes/client/models/"),
        **_models(wheels[KSERVE], "kserve/models/"),
    }
    source = (
        f"built from the generated SDK models of PyPI {KSERVE} (sha256 {_sha256(wheels[KSERVE])}) and "
        f"{KUBERNETES} (sha256 {_sha256(wheels[KUBERNETES])}): no package registry ships KServe's CRDs"
    )
    schemas = {}
    for kind, (model, api_version) in KSERVE_KINDS.items():
        # `status` is the controller's to write (and refers to Knative types no wheel here defines).
        types = {a: t for a, t in models[model]["openapi_types"].items() if a != "status"}
        builder = _Builder({**models, model: {**models[model], "openapi_types": types}})
        root = builder.definitions[builder.define(model)]
        builder.definitions.pop(model)
        root["properties"]["apiVersion"] = {"const": api_version}
        root["properties"]["kind"] = {"const": kind}
        root["required"] = sorted({*root.get("required", []), "apiVersion", "kind", "metadata", "spec"})
        schemas[kind] = {
            "$comment": f"{kind}: {source}; by tools/crd_schemas.py",
            **root,
            "definitions": builder.definitions,
        }
    builder = _Builder(models)
    metadata, selector = builder.define("V1ObjectMeta"), builder.define("V1LabelSelector")
    endpoint = {
        "type": "object",
        "properties": {
            "port": {"type": ["string", "integer"]},
            "path": {"type": "string"},
            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
            "timeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
            "scheme": {"enum": ["http", "https"]},
        },
        "required": ["port"],
        "additionalProperties": False,
    }
    schemas["PodMonitoring"] = {
        "$comment": (
            "PodMonitoring (monitoring.googleapis.com/v1): no package registry ships its CRD. metadata and "
            f"spec.selector from PyPI {KUBERNETES} (sha256 {_sha256(wheels[KUBERNETES])}) models; "
            "spec.endpoints HAND-WRITTEN from GMP's documented API (port, path, interval, timeout, scheme); "
            "by tools/crd_schemas.py"
        ),
        "type": "object",
        "properties": {
            "apiVersion": {"const": "monitoring.googleapis.com/v1"},
            "kind": {"const": "PodMonitoring"},
            "metadata": {"$ref": f"#/definitions/{metadata}"},
            "spec": {
                "type": "object",
                "properties": {
                    "selector": {"$ref": f"#/definitions/{selector}"},
                    "endpoints": {"type": "array", "minItems": 1, "items": endpoint},
                },
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
            },
        },
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "definitions": builder.definitions,
    }
    return schemas


def main() -> None:
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        sdk = _download(directory, KSERVE, KUBERNETES)
        cloudcoil = _download(directory, *CLOUDCOIL)
        schemas = {**_pydantic_schemas(directory, cloudcoil), **_sdk_schemas(sdk)}
    OUT.mkdir(parents=True, exist_ok=True)
    for kind, schema in sorted(schemas.items()):
        target = OUT / f"{kind.lower()}.json"
        target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(f"{target}: {target.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
