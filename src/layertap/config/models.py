"""`models.config` (TF Serving's `--model_config_file`): parse strictly, edit one model, write back.

A `ModelServerConfig` holds a `model_config_list` of `ModelConfig` entries. TF Serving applies the whole
list on every reload (a model left out is unloaded), so every edit here changes exactly one entry and leaves
every other entry, and the order of entries, as it was. Written files are canonical text format (no
comments), so re-writing an unchanged config yields the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from layertap.config.files import ConfigFile
from layertap.config.textformat import opening_lines
from layertap.errors import ConfigError, ConfigParseError
from layertap.proto import serving_pb2 as pb

__all__ = [
    "MODEL_PLATFORM",
    "MODEL_SERVER_CONFIG",
    "all_versions",
    "describe_policy",
    "find_model",
    "format_model_server_config",
    "is_uri",
    "latest_versions",
    "parse_model_server_config",
    "read_model_server_config",
    "remove_model",
    "set_model",
    "set_version_policy",
    "specific_versions",
    "write_model_server_config",
]

#: The only platform the stock `tensorflow/serving` image serves.
MODEL_PLATFORM = "tensorflow"

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _checked(config: pb.ModelServerConfig, text: str, path: str | None) -> pb.ModelServerConfig:
    """The parsed config, refused as TF Serving would refuse it at load time.

    Refused: a model listed twice ("Illegal to list model M multiple times"), a model without a name, a
    missing or relative base path ("Expected model M to have an absolute path or URI"), a platform other
    than "tensorflow", and a `specific` policy that names no version or a negative one.

    Raises:
        ConfigParseError: with `path` and the 1-based `line` of the offending entry.
    """
    entry_lines = opening_lines(text, depth=1) if config.HasField("model_config_list") else []
    for index, problem in _entry_problems(config):
        line = entry_lines[index] if index < len(entry_lines) else None
        raise ConfigParseError(problem, path=path, line=line)
    return config


def _writable(config: pb.ModelServerConfig) -> pb.ModelServerConfig:
    for index, problem in _entry_problems(config):
        raise ConfigError(f"model_config_list entry {index + 1}: {problem}")
    return config


#: `models.config`: checked as TF Serving applies it (see `_checked`) on reading and before writing.
MODEL_SERVER_CONFIG = ConfigFile(pb.ModelServerConfig, _checked, _writable)
parse_model_server_config, read_model_server_config = MODEL_SERVER_CONFIG.parse, MODEL_SERVER_CONFIG.read
format_model_server_config, write_model_server_config = MODEL_SERVER_CONFIG.format, MODEL_SERVER_CONFIG.write


def latest_versions(num_versions: int = 1) -> pb.ServableVersionPolicy:
    """Policy serving the `num_versions` highest version numbers on disk (TF Serving's default is 1)."""
    if num_versions < 1:
        raise ConfigError(f"latest num_versions must be at least 1; got {num_versions}")
    policy = pb.ServableVersionPolicy()
    policy.latest.num_versions = num_versions
    return policy


def all_versions() -> pb.ServableVersionPolicy:
    """Policy serving every version on disk."""
    policy = pb.ServableVersionPolicy()
    policy.all.SetInParent()
    return policy


def specific_versions(versions: Iterable[int]) -> pb.ServableVersionPolicy:
    """Policy serving exactly `versions` (sorted, duplicates dropped)."""
    chosen = sorted(set(versions))
    if not chosen or chosen[0] < 0:
        raise ConfigError(f"specific versions must be one or more non-negative integers; got {chosen}")
    policy = pb.ServableVersionPolicy()
    policy.specific.versions.extend(chosen)
    return policy


def describe_policy(policy: pb.ServableVersionPolicy) -> str:
    """A short human form: `latest 1`, `all`, `specific 3,4`."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return "all"
    if choice == "specific":
        return "specific " + ",".join(str(v) for v in policy.specific.versions)
    return f"latest {policy.latest.num_versions or 1}"


def find_model(config: pb.ModelServerConfig, name: str) -> pb.ModelConfig:
    """Return the entry named `name`.

    Raises:
        ConfigError: no such model; lists the models the config has.
    """
    for entry in config.model_config_list.config:
        if entry.name == name:
            return entry
    present = [entry.name for entry in config.model_config_list.config]
    raise ConfigError(f"no model named {name!r} in the config; models present: {present or 'none'}")


def set_model(
    config: pb.ModelServerConfig,
    name: str,
    base_path: str,
    *,
    policy: pb.ServableVersionPolicy | None = None,
    platform: str = MODEL_PLATFORM,
) -> pb.ModelServerConfig:
    """Return a copy of `config` with model `name` added (at the end) or updated (in place).

    Updating keeps the entry's labels and, unless `policy` is given, its version policy. Every other entry is
    untouched. A label that the new policy would no longer serve is refused (see `layertap.config.labels`).
    """
    updated = _copy(config)
    entries = updated.model_config_list.config
    entry = next((e for e in entries if e.name == name), None)
    if entry is None:
        entry = entries.add()
        entry.name = name
    entry.base_path = base_path
    entry.model_platform = platform
    if policy is not None:
        entry.model_version_policy.CopyFrom(policy)
        _check_labels_served(entry)
    for index, problem in _entry_problems(updated):
        raise ConfigError(f"model_config_list entry {index + 1}: {problem}")
    return updated


def set_version_policy(
    config: pb.ModelServerConfig, name: str, policy: pb.ServableVersionPolicy
) -> pb.ModelServerConfig:
    """Return a copy of `config` with model `name`'s version policy replaced."""
    updated = _copy(config)
    entry = find_model(updated, name)
    entry.model_version_policy.CopyFrom(policy)
    _check_labels_served(entry)
    return updated


def remove_model(config: pb.ModelServerConfig, name: str) -> pb.ModelServerConfig:
    """Return a copy of `config` without model `name` (TF Serving unloads it on the next reload).

    Raises:
        ConfigError: no such model.
    """
    find_model(config, name)
    updated = pb.ModelServerConfig()
    updated.model_config_list.SetInParent()
    for entry in config.model_config_list.config:
        if entry.name != name:
            updated.model_config_list.config.add().CopyFrom(entry)
    return updated


def is_uri(base_path: str) -> bool:
    """True for a base path with a URI scheme (gs://, s3://, hdfs://): remote storage TF Serving reads."""
    return _URI.match(base_path) is not None


def _copy(config: pb.ModelServerConfig) -> pb.ModelServerConfig:
    copied = pb.ModelServerConfig()
    copied.CopyFrom(config)
    copied.model_config_list.SetInParent()
    return copied


def _check_labels_served(entry: pb.ModelConfig) -> None:
    """A `specific` policy must keep every labelled version, or the label can never become available."""
    policy = entry.model_version_policy
    if policy.WhichOneof("policy_choice") != "specific":
        return
    served = set(policy.specific.versions)
    orphaned = {label: v for label, v in sorted(entry.version_labels.items()) if v not in served}
    if orphaned:
        raise ConfigError(
            f"model {entry.name!r}: policy {describe_policy(policy)} would stop serving labelled versions "
            f"{orphaned}; keep those versions in the policy, or move or remove the labels first"
        )


def _entry_problems(config: pb.ModelServerConfig) -> Iterable[tuple[int, str]]:
    """Yield (entry index, problem) for what TF Serving would refuse when applying the config."""
    seen: set[str] = set()
    for index, entry in enumerate(config.model_config_list.config):
        label = f"model {entry.name!r}" if entry.name else f"model entry {index + 1}"
        if not entry.name:
            yield index, f'{label} has no name; every entry needs `name: "..."`'
        elif entry.name in seen:
            yield index, f"illegal to list model {entry.name!r} multiple times in the config list"
        seen.add(entry.name)
        if not entry.base_path:
            yield index, f"{label} has no base_path; it must name the directory holding numbered versions"
        elif not (entry.base_path.startswith("/") or is_uri(entry.base_path)):
            yield (
                index,
                (
                    f"{label} has the relative base_path {entry.base_path!r}; TensorFlow Serving expects an "
                    "absolute path (as the server sees it, e.g. /models/NAME) or a URI (gs://, s3://...)"
                ),
            )
        if entry.model_platform != MODEL_PLATFORM:
            yield (
                index,
                (
                    f"{label} has model_platform {entry.model_platform!r}; TensorFlow Serving accepts "
                    f"{MODEL_PLATFORM!r} (an empty platform is refused)"
                ),
            )
        policy = entry.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific":
            versions = list(policy.specific.versions)
            if not versions or min(versions) < 0:
                yield (
                    index,
                    (
                        f"{label} has a specific policy with versions {versions}; "
                        "it needs one or more non-negative version numbers"
                    ),
                )
        negative = {k: v for k, v in entry.version_labels.items() if v < 0 or not k}
        if negative:
            yield index, f"{label} has invalid labels {negative}; labels need a name and a version >= 0"
