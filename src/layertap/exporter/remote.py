"""`export(base_path="gs://..." or "s3://...")`: build the version locally as always, then upload it.

The export builds, verifies and validates the version in a local staging directory exactly as for a local base
path; only the last step differs: instead of a rename, `layertap.storage.publish` uploads it under a claimed
version number with saved_model.pb as the commit point. The version number is claimed BEFORE the build (the
manifest records it) and the claim is renewed while the model is traced and checked.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from layertap.errors import PublishError
from layertap.exporter.publish import Repository, Reservation
from layertap.storage.claims import Lease
from layertap.storage.publish import PublishResult, RemoteRepository, TransferCallback
from layertap.storage.uri import ObjectLocation, parse_location, require_backend

__all__ = ["RemoteExportRepository", "VersionRepository", "open_repository", "readers_note"]


class VersionRepository(Protocol):
    """What `export()` needs from where versions are published (a local folder or an object store)."""

    def check(self, version: int | None = None) -> None: ...

    def reserve(self, version: int | None = None) -> Reservation: ...

    def publish(self, reservation: Reservation) -> Path | str: ...

    def abandon(self, reservation: Reservation) -> None: ...


def readers_note(location: ObjectLocation) -> str:
    """What will and will not pick up a version published at `location` (printed by `layertap export`)."""
    if location.scheme == "gs":
        return (
            "TF Serving (and `layertap serve`) polling this gs:// base path loads it; saved_model.pb was "
            "written last, so it never sees a partial version"
        )
    return (
        "TF Serving cannot read s3:// (its model server links only gs://, tensorflow/serving#1963): nothing "
        "polls this path. KServe's storage initializer and SageMaker copy it to local disk when a pod or "
        "endpoint starts"
    )


class RemoteExportRepository:
    """A model folder on gs:// or s3:// behind the local `Repository`'s interface, for `export()`."""

    def __init__(
        self,
        location: ObjectLocation,
        name: str,
        *,
        report: Callable[[str], None] | None = None,
        transfer: TransferCallback | None = None,
    ) -> None:
        Repository(Path(), name)  # the same name rules as a local folder (checked, nothing created)
        self.remote = RemoteRepository(location, name, report=report, transfer=transfer)
        self._report = report
        self._leases: dict[Path, Lease] = {}
        self.result: PublishResult | None = None

    def check(self, version: int | None = None) -> None:
        """Reach the store (a missing bucket or bad credentials fail here, before the model loads)."""
        self.remote.check(version)

    def reserve(self, version: int | None = None) -> Reservation:
        """Repair stale claims, claim the version, and make a local directory to build it in.

        `final` is the local build directory too (`<tmp>/<name>/<version>`, so its parent is named after the
        model as a local version's is): the version reaches the store only through `publish`.
        """
        self.remote.repair()
        lease = self.remote.claim(version)
        staging = Path(tempfile.mkdtemp(prefix="layertap-publish-")) / self.remote.name / str(lease.version)
        staging.mkdir(parents=True)
        self._leases[staging] = lease
        return Reservation(version=lease.version, staging=staging, final=staging)

    def publish(self, reservation: Reservation) -> str:
        lease = self._leases.pop(reservation.staging)
        try:
            self.result = self.remote.upload(lease, reservation.staging)
        finally:
            shutil.rmtree(reservation.staging.parent.parent, ignore_errors=True)
        return self.result.uri

    def abandon(self, reservation: Reservation) -> None:
        lease = self._leases.pop(reservation.staging, None)
        if lease is not None:
            self.remote.abandon(lease, PublishError("the export failed before publishing"))
        shutil.rmtree(reservation.staging.parent.parent, ignore_errors=True)


def open_repository(
    base_path: Path | str,
    name: str,
    *,
    report: Callable[[str], None] | None = None,
    transfer: TransferCallback | None = None,
) -> VersionRepository:
    """The repository a base path names: a local folder, or a model folder on gs:// or s3://.

    Raises:
        LocationError: an unsupported scheme, a malformed URI, or a missing extra (nothing written).
        UsageError: an invalid model name (nothing written).
    """
    location = parse_location(base_path)
    if isinstance(location, Path):
        return Repository(location, name)
    require_backend(location)
    return RemoteExportRepository(location, name, report=report, transfer=transfer)
