"""What a model repository on disk holds, read without TensorFlow.

Layout (as TF Serving reads it): `<base_path>/<version>/saved_model.pb` + `variables/` + optional
`assets.extra/`. Any child directory whose name is a non-negative int64 is a version; other names are ignored.
TF Serving never checks that a version is complete, so we do: a complete version has `saved_model.pb` (or
`saved_model.pbtxt`) and a `variables/` directory.

What one version folder holds (its file names, manifest, warmup records, signatures) is read by
`layertap.version_folder`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from layertap.proto import serving_pb2 as pb
from layertap.version_folder import has_saved_model

__all__ = [
    "INT64_MAX",
    "VersionDir",
    "aspired_versions",
    "list_versions",
]

logger = logging.getLogger(__name__)

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class VersionDir:
    """One numbered version directory and what it lacks to be loadable."""

    version: int
    path: Path
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """True when `saved_model.pb` and `variables/` are both present."""
        return not self.missing


def list_versions(base_path: str | os.PathLike[str], *, contained: bool = False) -> dict[int, VersionDir]:
    """The version directories under `base_path`, by version number (empty if it is not a directory).

    THE rule for what a version is, shared by the exporter, `layertap serve` and `config check`: a child
    directory whose whole name is a non-negative int64. TF Serving also follows symlinks wherever they lead;
    `contained=True` (what `layertap serve` uses) ignores a version that is a symlink out of `base_path`.
    """
    base = Path(base_path)
    try:
        children = sorted(base.iterdir())
    except OSError:
        return {}
    versions: dict[int, VersionDir] = {}
    for child in children:
        name = child.name
        if not (name.isascii() and name.isdigit()) or int(name) > INT64_MAX or not child.is_dir():
            continue
        if contained and child.is_symlink() and not child.resolve().is_relative_to(base.resolve()):
            # A link out of the base path would serve whatever it points at: refuse the escape.
            logger.warning("ignoring version %s: a symlink to %s, outside %s", child, child.resolve(), base)
            continue
        version = int(name)
        # "0007" and "7" are the same version to TF Serving; the sorted order makes the choice stable.
        if version in versions:
            continue
        missing = []
        if not has_saved_model(child):
            missing.append("saved_model.pb")
        if not (child / "variables").is_dir():
            missing.append("variables/")
        versions[version] = VersionDir(version, child, tuple(missing))
    return versions


def aspired_versions(policy: pb.ServableVersionPolicy, on_disk: Iterable[int]) -> list[int]:
    """The versions TF Serving tries to load under `policy`, given the versions on disk (ascending).

    `specific` versions that are not on disk are not included: TF Serving waits for them to appear.
    """
    present = sorted(set(on_disk))
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return present
    if choice == "specific":
        return sorted(set(policy.specific.versions) & set(present))
    count = policy.latest.num_versions or 1
    return present[-count:] if present else []
