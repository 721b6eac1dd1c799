"""`export(compare_with=...)`: compare the staged version with a published one, and record the verdict.

The record goes into the new version's manifest (`comparison`), with the space ids of the version it was
compared against, so the label gate (`layertap.config.gate`) can answer from it without TensorFlow as
long as that version is still the one on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from layertap.errors import UsageError
from layertap.exporter.publish import Repository

__all__ = ["PREVIOUS", "compare_staged", "resolve_compare_with"]

PREVIOUS = "previous"


def resolve_compare_with(repository: Repository, compare_with: int | str | None) -> int | None:
    """The published version to compare with: a number, or the highest one for "previous" (None when
    there is none yet, or nothing was asked).

    Raises:
        UsageError: an unknown version, or a value that is neither a version nor "previous".
    """
    if compare_with is None:
        return None
    published = repository.versions()
    if compare_with == PREVIOUS:
        return published[-1] if published else None
    try:
        number = int(compare_with)
    except (TypeError, ValueError):
        raise UsageError(
            f"compare_with must be a published version number or {PREVIOUS!r}; got {compare_with!r}"
        ) from None
    if number not in published:
        raise UsageError(
            f"cannot compare with version {number} of {repository.path}: it is not published (versions: "
            f"{published or 'none'})"
        )
    return number


def compare_staged(
    repository: Repository,
    *,
    against: int,
    staging: Path,
    final: Path,
    manifest: dict[str, Any],
    report: Callable[[str], None],
) -> Any:
    """Compare the staged version with version `against`, add the record to `manifest`, and return it
    (a `layertap.compare.Comparison`)."""
    from layertap.compare import LocalVersion, compare_versions

    old_path = repository.path / str(against)
    report(f"comparing with version {against} ({old_path})")
    comparison = compare_versions(LocalVersion(old_path), LocalVersion(staging))
    for key, signature in comparison.signatures.items():
        report(f"compare: {key}: {signature.verdict} ({signature.reason})")
    for warning in comparison.warnings:
        report(f"compare: warning: {warning}")
    record = comparison.to_json()
    record["new"] = {"location": str(final), "version": manifest["model"]["version"]}
    record["old"] = {"location": str(old_path), "version": against}
    manifest["comparison"] = record
    return comparison
