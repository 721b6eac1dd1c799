"""`layertap config check`: would TF Serving serve this config from this repository, as intended?

Checks, per model: the base path (a local folder, or gs:// read without TensorFlow through
`layertap.storage`) exists and holds versions; every version the policy serves, every version
named by a `specific` policy and every labelled version is on disk and complete (`saved_model.pb` and
`variables/`); each label points at a served version; the signatures the caller names exist in every served
version; and the server release (the pinned image's by default) would load each served version: its graph
checked against that release's op registry (`layertap.config.compat.check_compat`), not version strings.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Literal

from layertap.config import servers
from layertap.config.compat import SERVING_VERSION, check_compat
from layertap.config.models import describe_policy, is_uri
from layertap.config.repository import VersionDir, aspired_versions, list_versions
from layertap.errors import ConfigError, LocationError, StorageError
from layertap.proto import serving_pb2 as pb
from layertap.storage.uri import parse_location
from layertap.version_folder import (
    MAX_WARMUP_RECORDS,
    read_manifest,
    read_saved_model_summary,
    read_warmup_signatures,
)

__all__ = ["CheckReport", "Finding", "check_serving_config", "resolve_base_path"]

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem found: `error` means TF Serving would not serve the model as configured."""

    level: Level
    model: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: model {self.model!r}: {self.message}"


@dataclass(frozen=True)
class CheckReport:
    """All findings, and per model the versions the config would serve."""

    findings: tuple[Finding, ...]
    served: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "warning")


def resolve_base_path(base_path: str, mounts: Mapping[str, str]) -> str:
    """Map a base path as the container sees it to the host, like `docker run -v HOST:CONTAINER`.

    The longest matching container prefix wins; a path under no mount is returned unchanged.
    """
    container_path = PurePosixPath(base_path)
    best: tuple[int, str] | None = None
    for host, container in mounts.items():
        prefix = PurePosixPath(container)
        if container_path == prefix or prefix in container_path.parents:
            relative = container_path.relative_to(prefix)
            candidate = str(Path(host).joinpath(*relative.parts))
            if best is None or len(prefix.parts) > best[0]:
                best = (len(prefix.parts), candidate)
    return best[1] if best else base_path


def check_serving_config(
    config: pb.ModelServerConfig,
    *,
    mounts: Mapping[str, str] | None = None,
    signatures: Mapping[str, Collection[str]] | None = None,
    server: str = SERVING_VERSION,
) -> CheckReport:
    """Check `config` against the repository on disk.

    Args:
        config: the parsed `models.config`.
        mounts: host directory -> container directory, to read container base paths on this machine.
        signatures: model name -> signature names clients will call (e.g. a layer's signature); each must
            exist in every served version. The key `"*"` applies to every model.
        server: the TF Serving release that serves the config; each served version is checked against its
            op registry (`check_compat`).

    Raises:
        ConfigError: `server` is not a release layertap has a profile for.
    """
    servers.server_release(server)
    findings: list[Finding] = []
    served: dict[str, tuple[int, ...]] = {}
    wanted = dict(signatures or {})
    for entry in config.model_config_list.config:
        names = set(wanted.get(entry.name, ())) | set(wanted.get("*", ()))
        model_findings, model_served = _check_model(entry, dict(mounts or {}), names, server)
        findings.extend(model_findings)
        served[entry.name] = model_served
    unknown = sorted(set(wanted) - {"*"} - {entry.name for entry in config.model_config_list.config})
    for name in unknown:
        findings.append(
            Finding("error", name, "signatures were requested for a model the config does not list")
        )
    return CheckReport(tuple(findings), served)


def _check_model(
    entry: pb.ModelConfig, mounts: dict[str, str], signatures: set[str], server: str
) -> tuple[list[Finding], tuple[int, ...]]:
    if is_uri(entry.base_path):
        return _check_remote_model(entry, signatures, server)
    host_path = resolve_base_path(entry.base_path, mounts)
    shown = entry.base_path if host_path == entry.base_path else f"{entry.base_path} (host: {host_path})"
    return _check_repository(entry, host_path, shown, signatures, server)


def _check_remote_model(
    entry: pb.ModelConfig, signatures: set[str], server: str
) -> tuple[list[Finding], tuple[int, ...]]:
    """A gs:// base path, checked like a local one on a sparse copy (`layertap.storage.snapshot`)."""
    from layertap.storage.snapshot import sparse_copy, under_uri

    def refused(message: str) -> tuple[list[Finding], tuple[int, ...]]:
        return [Finding("error", entry.name, message)], ()

    try:
        place = parse_location(entry.base_path)
    except LocationError as error:
        return refused(str(error))
    if isinstance(place, Path):  # file:///...
        return _check_repository(entry, str(place), entry.base_path, signatures, server)
    if place.scheme != "gs":
        return refused(
            f"base_path {entry.base_path}: TF Serving reads local paths and gs:// only; its model server "
            "links no S3 filesystem (tensorflow/serving#1963), so it would serve nothing from here"
        )
    try:
        with sparse_copy(place) as local:
            findings, served = _check_repository(entry, str(local), entry.base_path, signatures, server)
            return [replace(f, message=under_uri(f.message, local, place)) for f in findings], served
    except ConfigError:
        return refused(f"base_path {entry.base_path} does not exist (no object under it)")
    except (LocationError, StorageError) as error:
        return refused(f"base_path {entry.base_path} could not be read: {error}")


def _check_repository(
    entry: pb.ModelConfig, host_path: str, shown: str, signatures: set[str], server: str
) -> tuple[list[Finding], tuple[int, ...]]:
    findings: list[Finding] = []

    def report(level: Level, message: str) -> None:
        findings.append(Finding(level, entry.name, message))

    if not Path(host_path).is_dir():
        report("error", f"base_path {shown} does not exist or is not a directory")
        return findings, ()
    versions = list_versions(host_path)
    if not versions:
        report(
            "error", f"base_path {shown} holds no numbered version directory; TF Serving would serve nothing"
        )
        return findings, ()
    policy = entry.model_version_policy
    aspired = aspired_versions(policy, versions)
    needed: dict[int, str] = {v: f"served by policy {describe_policy(policy)}" for v in aspired}
    if policy.WhichOneof("policy_choice") == "specific":
        for version in policy.specific.versions:
            needed.setdefault(version, "named by the specific policy")
    for label, version in sorted(entry.version_labels.items()):
        needed.setdefault(version, f"labelled {label!r}")
        if version not in aspired:
            report(
                "error",
                f"label {label!r} points at version {version}, which policy {describe_policy(policy)} "
                f"does not serve (serves {aspired}); TF Serving refuses a label on a version that is not "
                "AVAILABLE",
            )
    if entry.version_labels and policy.WhichOneof("policy_choice") != "specific":
        report(
            "warning",
            f"labels with policy {describe_policy(policy)}: a new version on disk can unload a labelled one; "
            "use a specific policy with labels",
        )
    for version, why in sorted(needed.items()):
        found = versions.get(version)
        if found is None:
            report(
                "error",
                f"version {version} ({why}) is not on disk under {shown}; present: {sorted(versions)}",
            )
        elif not found.complete:
            report(
                "error",
                f"version {version} ({why}) is incomplete: missing {', '.join(found.missing)} in "
                f"{found.path} (half-copied? publish by writing elsewhere and renaming)",
            )
    for version in aspired:
        if versions[version].complete:
            findings.extend(_check_version(entry.name, versions[version], signatures, server))
    return findings, tuple(aspired)


def _check_version(model: str, version: VersionDir, signatures: set[str], server: str) -> list[Finding]:
    findings: list[Finding] = []
    try:
        summary = read_saved_model_summary(version.path)
    except ConfigError as error:
        return [Finding("error", model, f"version {version.version}: {error}")]
    missing = sorted(signatures - summary.signature_names)
    if missing:
        findings.append(
            Finding(
                "error",
                model,
                f"version {version.version} has no signature {', '.join(missing)}; "
                f"it has: {', '.join(sorted(summary.signature_names)) or 'none'}",
            )
        )
    findings.extend(_check_warmup(model, version, summary.signature_names))
    try:
        read_manifest(version.path)
    except ConfigError as error:
        findings.append(Finding("warning", model, f"version {version.version}: {error}"))
    report = check_compat(version.path, server)
    for problem in report.problems:
        findings.append(
            Finding(
                problem.level,
                model,
                f"version {version.version} on TF Serving {report.server} (TensorFlow "
                f"{report.server_tensorflow}; exported with {report.exported_with or 'unknown'}): "
                f"{problem.located}",
            )
        )
    return findings


def _check_warmup(model: str, version: VersionDir, signatures: frozenset[str]) -> list[Finding]:
    """Warmup records TF Serving would fail on (the version then never loads), and signatures left cold."""
    try:
        warmed = read_warmup_signatures(version.path)
    except ConfigError as error:
        return [Finding("error", model, f"version {version.version}: {error}")]
    if warmed is None:
        return []
    findings = []
    if len(warmed) > MAX_WARMUP_RECORDS:
        findings.append(
            Finding(
                "error",
                model,
                f"version {version.version} has {len(warmed)} warmup records; TF Serving refuses more than "
                f"{MAX_WARMUP_RECORDS} and the version fails to load",
            )
        )
    unknown = sorted(set(warmed) - signatures)
    if unknown:
        findings.append(
            Finding(
                "error",
                model,
                f"version {version.version}: warmup records name signatures it does not have: "
                f"{', '.join(unknown)}; the warmup fails and the version never becomes AVAILABLE",
            )
        )
    cold = sorted(signatures - set(warmed))
    if cold:
        findings.append(
            Finding(
                "warning",
                model,
                f"version {version.version}: no warmup record for {', '.join(cold)}; each initialises on its "
                "first request, which is slow (on a GPU, seconds)",
            )
        )
    return findings
