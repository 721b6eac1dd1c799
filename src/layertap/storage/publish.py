"""Publishing a built version directory to gs:// or s3:// so that TF Serving never loads half of it.

Facts the protocol stands on (tensorflow/serving):
- A version exists for TF Serving as soon as ANY object under `<name>/<N>/` exists: GCS has no directories,
  and the storage path source aspires every integer child of the base path without checking for saved_model.pb
  (sources/storage_path/file_system_storage_path_source.cc).
- Without saved_model.pb the load fails and is retried `--max_num_load_retries` (5) times,
  `--load_retry_interval_micros` (60 s) apart; then the version stays in ERROR and its number is never retried
  while it is aspired (core/aspired_versions_manager.cc; tensorflow/serving#1738, #2273).
- With saved_model.pb but an incomplete `variables/`, the C++ loader restores nothing, reports OK and the
  version goes AVAILABLE, failing every request (tensorflow/serving#1086, #572, #1027). Warmup data that
  arrives after saved_model.pb is skipped.

So saved_model.pb is the commit point and goes last, after every other object has been written AND checked
(size and CRC32C as the store reports them, against the local file): variable shards, the index, assets,
assets.extra/ (warmup, manifest), fingerprint, then saved_model.pb.

Staging, then server-side copies (chosen over uploading in place): the bytes travel to a non-numeric prefix
`<name>/_layertap/staging/<N>/`, invisible to TF Serving, for as long as the upload takes; only then are the
objects copied into `<name>/<N>/` inside the store, in the order above. `<N>/` is visible without
saved_model.pb only while those copies run (a server-side copy inside one bucket moves no bytes through the
publisher; on GCS within one location and storage class it is a metadata operation), instead of for the whole
upload. The window is measured on every publish (`PublishResult.window_ms`) and in bench/.

Version numbers and dead publishers: see `layertap.storage.claims`. `repair()` (run by every publish before it
claims, and by `layertap repo repair`) settles each stale claim: a version whose objects all match the
claim's recorded file list is complete (its publisher died after the commit point) and is marked published;
anything else loses saved_model.pb first, then its other objects and staging copies, and the claim is marked
abandoned, so its number is never reused and the next publish gets a NEW one.

Why one module of ~480 lines: upload, commit and repair are one protocol over the same object layout, and
each step's safety rests on the others' order (repair may delete only what a commit never completed; the
sweep may touch only settled numbers), so they are kept where they can be read together.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layertap.errors import IntegrityError, PublishError
from layertap.storage.claims import (
    DEFAULT_LEASE_SECONDS,
    FINAL_STATES,
    STAGING,
    Lease,
    new_owner,
    read_claims,
)
from layertap.storage.store import ObjectInfo, ObjectStore, crc32c_of_file, open_store
from layertap.storage.uri import ObjectLocation
from layertap.version_folder import ASSETS_EXTRA

__all__ = [
    "DEFAULT_WORKERS",
    "LocalFile",
    "PublishResult",
    "RemoteRepository",
    "RepairAction",
    "TransferCallback",
    "upload_order",
]

logger = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
#: Called as (bytes done, bytes total, seconds since the upload started), a few times a second at most.
TransferCallback = Callable[[int, int, float], None]
_MAX_CLAIM_ATTEMPTS = 50


@dataclass(frozen=True)
class LocalFile:
    """One file of the version: its path relative to the version directory, size and CRC32C."""

    relative: str
    path: Path
    size: int
    crc32c: str

    def record(self) -> dict[str, object]:
        return {"path": self.relative, "size": self.size, "crc32c": self.crc32c}


@dataclass(frozen=True)
class RepairAction:
    """What a repair did to a claim: "completed", "abandoned" (with the objects deleted), "live" (renewed
    meanwhile) or "swept" (objects left under a settled number, deleted: late arrivals under an abandoned
    one, or staging copies its publisher did not get to delete)."""

    version: int
    action: str
    deleted: int = 0


@dataclass(frozen=True)
class PublishResult:
    """A published version: where it is, what it weighs, and how long `<N>/` lacked saved_model.pb."""

    version: int
    uri: str
    bytes: int
    files: int
    upload_seconds: float
    window_ms: float
    repaired: tuple[RepairAction, ...] = ()


def _rank(relative: str) -> tuple[int, str]:
    """The upload order: shards, index, assets, assets.extra, fingerprint, anything else, saved_model.pb."""
    if relative == "saved_model.pb":
        return 6, relative
    if relative.startswith("variables/") and relative != "variables/variables.index":
        return 0, relative
    if relative == "variables/variables.index":
        return 1, relative
    if relative.startswith("assets/"):
        return 2, relative
    if relative.startswith(f"{ASSETS_EXTRA}/"):
        return 3, relative
    if relative == "fingerprint.pb":
        return 4, relative
    return 5, relative


def upload_order(directory: Path) -> list[list[LocalFile]]:
    """The version's files in commit order, as groups: each group after the previous one; saved_model.pb alone
    last.

    Raises:
        PublishError: the directory holds no saved_model.pb (or is not a directory).
    """
    if not (directory / "saved_model.pb").is_file():
        raise PublishError(f"{directory} is not a SavedModel version directory: it has no saved_model.pb")
    files = sorted(
        (path for path in directory.rglob("*") if path.is_file()),
        key=lambda path: _rank(path.relative_to(directory).as_posix()),
    )
    groups: dict[int, list[LocalFile]] = {}
    for path in files:
        relative = path.relative_to(directory).as_posix()
        entry = LocalFile(relative, path, path.stat().st_size, crc32c_of_file(path))
        groups.setdefault(_rank(relative)[0], []).append(entry)
    return [groups[rank] for rank in sorted(groups)]


def check_object(info: ObjectInfo | None, local: LocalFile, key: str, uri: str) -> None:
    """Refuse an object whose size or CRC32C (as the store reports them) differs from the local file.

    Raises:
        IntegrityError: missing, or another size or CRC32C.
    """
    if info is None:
        raise IntegrityError(f"{uri}/{key} is missing right after it was written")
    if info.size != local.size or info.crc32c != local.crc32c:
        raise IntegrityError(
            f"{uri}/{key}: the store reports {info.size} bytes with CRC32C {info.crc32c}, but "
            f"{local.path} has {local.size} bytes with CRC32C {local.crc32c}"
        )


@dataclass
class _Progress:
    total: int
    callback: TransferCallback | None
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    _last: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, count: int) -> None:
        # Called from the upload threads; reporting under the lock keeps the reported totals in order.
        with self._lock:
            self.done += count
            now = time.monotonic()
            if self.callback is None or (now - self._last < 0.25 and self.done < self.total):
                return
            self._last = now
            self.callback(min(self.done, self.total), self.total, now - self.started)


class RemoteRepository:
    """The folder of one model on gs:// or s3://, `<base>/<name>/`, holding numbered version prefixes."""

    def __init__(
        self,
        location: ObjectLocation,
        name: str,
        *,
        store: ObjectStore | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        workers: int = DEFAULT_WORKERS,
        report: Callable[[str], None] | None = None,
        transfer: TransferCallback | None = None,
    ) -> None:
        self.location = location.child(name)
        self.name = name
        self.store = store if store is not None else open_store(location)
        self.lease_seconds = lease_seconds
        self.workers = workers
        self.owner = new_owner()
        self._report = report or (lambda message: logger.info("%s", message))
        self._transfer = transfer

    @classmethod
    def at(cls, model: ObjectLocation, **options: Any) -> RemoteRepository:
        """The repository whose model folder is `model` (`gs://b/models/m`: base `gs://b/models`, name m)."""
        base, _, name = model.key.rpartition("/")
        return cls(ObjectLocation(model.scheme, model.bucket, base), name, **options)

    @property
    def uri(self) -> str:
        return str(self.location)

    @property
    def prefix(self) -> str:
        return self.location.prefix

    def versions(self) -> list[int]:
        """The integer children of the model, as TF Serving sees them (complete or not), ascending."""
        return sorted(int(name) for name in self.store.children(self.prefix) if name.isdigit())

    def complete_versions(self) -> list[int]:
        """The versions whose claim says published, or that hold saved_model.pb (published by other tools)."""
        claims = read_claims(self.store, self.prefix)
        found = []
        for version in self.versions():
            claim = claims.get(version)
            if claim is not None:
                if claim.state == "published":
                    found.append(version)
            elif self.store.stat(f"{self.prefix}{version}/saved_model.pb") is not None:
                found.append(version)
        return found

    def read(self, version: int, relative: str) -> bytes | None:
        """The bytes of one file of a version (`read(3, "assets.extra/layertap_manifest.json")`), or None."""
        found = self.store.read(f"{self.prefix}{version}/{relative.lstrip('/')}")
        return None if found is None else found[0]

    def download(self, version: int, directory: Path, under: str = "") -> Path:
        """Copy the files of a version (only those below `under`, e.g. "assets.extra/") into `directory`."""
        prefix = f"{self.prefix}{version}/"
        for info in self.store.list_objects(prefix + under):
            found = self.store.read(info.key)
            if found is None:
                continue
            target = directory / info.key[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(found[0])
        return directory

    def check(self, version: int | None = None) -> None:
        """Reach the store and refuse a version that is taken, before any model is loaded.

        Raises:
            StorageError: the bucket cannot be reached or read.
            PublishError: `version` exists or is claimed.
        """
        published = self.versions()
        if version is None:
            return
        claims = read_claims(self.store, self.prefix)
        if version in published or version in claims:
            raise PublishError(
                f"version {version} of {self.uri} already exists or was claimed; versions are never reused "
                f"(TF Serving never retries a number it failed). The next free one is "
                f"{max([*published, *claims, 0]) + 1}"
            )

    def repair(self) -> list[RepairAction]:
        """Settle every stale claim (see the module docstring); returns what was done.

        Settled versions are swept too. A request a killed publisher had already sent can land after the
        repair that deleted its version (the store may still be writing it), so objects found under an
        abandoned number are deleted again, saved_model.pb first. And a publisher killed between its commit
        and the deletion of its staging copies leaves a published claim with staging objects nobody else
        would delete: the staging copies of every settled claim are deleted.
        """
        actions: list[RepairAction] = []
        claims = read_claims(self.store, self.prefix)
        settled = {version for version, claim in claims.items() if claim.state in FINAL_STATES}
        swept = self._sweep_staging(settled)
        for claim in claims.values():
            if claim.state == "abandoned":
                swept[claim.version] = swept.get(claim.version, 0) + self._delete_version(claim.version)
            if not claim.stale():
                continue
            lease = Lease.take_over(self.store, self.prefix, claim, self.owner)
            if lease is None:
                actions.append(RepairAction(claim.version, "live"))
                continue
            actions.append(self._settle(lease))
        actions += [
            RepairAction(version, "swept", count) for version, count in sorted(swept.items()) if count
        ]
        return actions

    def _sweep_staging(self, settled: set[int]) -> dict[int, int]:
        """Delete the staging copies left under claims that were final when read (final states never change,
        so no live publisher's staging is touched); returns how many objects went, by version."""
        staging = self.prefix + STAGING
        doomed: dict[int, list[str]] = {}
        for info in self.store.list_objects(staging):
            number = info.key[len(staging) :].split("/", 1)[0]
            if number.isdigit() and int(number) in settled:
                doomed.setdefault(int(number), []).append(info.key)
        with ThreadPoolExecutor(self.workers) as pool:
            return {version: sum(pool.map(self.store.delete, keys)) for version, keys in doomed.items()}

    def _settle(self, lease: Lease) -> RepairAction:
        version = lease.version
        recorded = lease.body.get("files")
        if isinstance(recorded, list) and recorded and self._complete(version, recorded):
            self._delete_prefix(self._staging(version))
            lease.update(state="published")
            self._report(
                f"repair: version {version} was complete (its publisher died after the commit point)"
            )
            return RepairAction(version, "completed")
        deleted = self._delete_version(version)
        deleted += self._delete_prefix(self._staging(version))
        lease.update(state="abandoned")
        self._report(
            f"repair: version {version} was abandoned by a dead publisher; deleted its {deleted} objects "
            "(the number is not reused)"
        )
        return RepairAction(version, "abandoned", deleted)

    def _complete(self, version: int, recorded: Sequence[object]) -> bool:
        present = {info.key: info for info in self.store.list_objects(f"{self.prefix}{version}/")}
        for entry in recorded:
            if not isinstance(entry, dict):
                return False
            info = present.get(f"{self.prefix}{version}/{entry.get('path')}")
            if info is None or info.size != entry.get("size"):
                return False
            # Listings may not carry checksums (S3): ask for the object itself.
            info = self.store.stat(info.key) if info.crc32c is None else info
            if info is None or info.crc32c != entry.get("crc32c"):
                return False
        return True

    def _delete_version(self, version: int) -> int:
        """Delete `<N>/`: saved_model.pb first, so no moment of the deletion is a loadable half version."""
        deleted = int(self.store.delete(f"{self.prefix}{version}/saved_model.pb"))
        return deleted + self._delete_prefix(f"{self.prefix}{version}/")

    def _delete_prefix(self, prefix: str) -> int:
        keys = [info.key for info in self.store.list_objects(prefix)]
        with ThreadPoolExecutor(self.workers) as pool:
            return sum(pool.map(self.store.delete, keys))

    def _staging(self, version: int) -> str:
        return f"{self.prefix}{STAGING}{version}/"

    def claim(self, version: int | None = None) -> Lease:
        """Claim `version` (or the next free number) and start renewing the lease.

        Raises:
            PublishError: `version` is taken, or no number could be claimed.
        """
        for _ in range(_MAX_CLAIM_ATTEMPTS):
            taken = set(self.versions()) | set(read_claims(self.store, self.prefix))
            candidate = version if version is not None else max([*taken, 0]) + 1
            if version is not None and version in taken:
                self.check(version)
            lease = Lease.acquire(self.store, self.prefix, candidate, self.owner, self.lease_seconds)
            if lease is not None:
                lease.start()
                self._report(f"claimed version {candidate} of {self.uri}")
                return lease
            if version is not None:
                self.check(version)
        raise PublishError(f"could not claim a version of {self.uri} in {_MAX_CLAIM_ATTEMPTS} attempts")

    def upload(self, lease: Lease, directory: Path) -> PublishResult:
        """Upload `directory` as the claimed version, in commit order, checking every object.

        On any failure the objects written so far are deleted (saved_model.pb first) and the claim is marked
        abandoned, so the number is not reused.

        Raises:
            PublishError, StorageError, IntegrityError: nothing loadable was left behind.
        """
        groups = upload_order(directory)
        files = [entry for group in groups for entry in group]
        total = sum(entry.size for entry in files)
        started = time.monotonic()
        copying = False
        try:
            lease.check()
            lease.update(state="uploading", files=[entry.record() for entry in files])
            self._report(
                f"uploading {len(files)} files ({total / 1e6:.1f} MB) to {self.uri}/{STAGING}{lease.version}/"
            )
            self._upload_staging(lease, files, _Progress(total, self._transfer))
            copying = True
            first_visible = time.monotonic()
            for group in groups:
                self._copy_group(lease, group)
            window_ms = (time.monotonic() - first_visible) * 1000
            lease.finish("published")
        except BaseException as error:
            self._abandon(lease, visible=copying, reason=error)
            raise
        elapsed = time.monotonic() - started
        self._delete_prefix(self._staging(lease.version))
        self._report(
            f"published {self.uri}/{lease.version}: {total / 1e6:.1f} MB in {elapsed:.1f} s; "
            f"{lease.version}/ lacked saved_model.pb for {window_ms:.0f} ms"
        )
        return PublishResult(
            version=lease.version,
            uri=f"{self.uri}/{lease.version}",
            bytes=total,
            files=len(files),
            upload_seconds=elapsed,
            window_ms=window_ms,
        )

    def _upload_staging(self, lease: Lease, files: Sequence[LocalFile], progress: _Progress) -> None:
        staging = self._staging(lease.version)

        def send(entry: LocalFile) -> None:
            lease.check()
            info = self.store.upload(entry.path, staging + entry.relative, entry.crc32c, progress.add)
            check_object(
                info, entry, staging + entry.relative, f"{self.location.scheme}://{self.location.bucket}"
            )

        # Largest first, so the long shards start at once and small files fill the gaps.
        ordered = sorted(files, key=lambda entry: -entry.size)
        with ThreadPoolExecutor(self.workers) as pool:
            for _ in pool.map(send, ordered):
                pass

    def _copy_group(self, lease: Lease, group: Sequence[LocalFile]) -> None:
        staging = self._staging(lease.version)
        target = f"{self.prefix}{lease.version}/"

        def copy(entry: LocalFile) -> None:
            lease.check()
            info = self.store.copy(staging + entry.relative, target + entry.relative)
            check_object(
                info, entry, target + entry.relative, f"{self.location.scheme}://{self.location.bucket}"
            )

        with ThreadPoolExecutor(self.workers) as pool:
            for _ in pool.map(copy, group):
                pass

    def _abandon(self, lease: Lease, *, visible: bool, reason: BaseException) -> None:
        """Undo a failed upload; the claim keeps its number unless nothing ever reached `<N>/`.

        A publisher whose claim was taken over touches nothing: the version belongs to the repair now (which
        may have found it complete and kept it).
        """
        lease.stop()
        if lease.lost.is_set():
            return
        try:
            deleted = self._delete_version(lease.version) + self._delete_prefix(self._staging(lease.version))
            if visible:
                lease.update(state="abandoned", reason=str(reason)[:500])
            else:
                lease.release()
            logger.info("abandoned version %d of %s (%d objects deleted)", lease.version, self.uri, deleted)
        except Exception as cleanup:  # the original error matters more; a later repair finishes the job
            logger.warning("could not clean up version %d of %s: %s", lease.version, self.uri, cleanup)

    def abandon(self, lease: Lease, reason: BaseException) -> None:
        """Give up a claim before anything reached `<N>/` (the export failed while building)."""
        self._abandon(lease, visible=False, reason=reason)

    def publish(self, directory: Path, version: int | None = None) -> PublishResult:
        """Claim a version and upload an already-built version directory (TF-free): `layertap repo push`."""
        repaired = self.repair()
        lease = self.claim(version)
        result = self.upload(lease, directory)
        return PublishResult(**{**result.__dict__, "repaired": tuple(repaired)})
