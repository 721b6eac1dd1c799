"""Publishing a version into a TF Serving model folder so that no reader ever sees it half-written.

TF Serving loads any numeric child of `<base>/<name>/` as soon as it appears and never checks it is
complete (tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc; issues #1086, #631,
#572 report half-copied versions loaded). So a version is built in a non-numeric directory beside the
versions (`.layertap-tmp-<version>-<pid>-<random>`), every file and directory in it is fsynced, and it is
renamed to `<version>` in one step: a rename within one filesystem is atomic.

Concurrent exports of one model coordinate through an fcntl lock on `<base>/<name>/.layertap.lock`,
held only while choosing a version and while renaming. A temporary directory reserves its version
while its process lives; the next export removes those whose process is dead (killed mid-export).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from layertap.config.repository import INT64_MAX, list_versions
from layertap.errors import PublishError, UsageError

__all__ = ["TEMP_PREFIX", "Repository", "Reservation", "fsync_tree"]

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".layertap-tmp-"
LOCK_FILE = ".layertap.lock"
_TEMP_NAME = re.compile(rf"^{re.escape(TEMP_PREFIX)}(?P<version>\d+)-(?P<pid>\d+)-[0-9a-f]+$")
# TF Serving parses version directories as int64.
MAX_VERSION = INT64_MAX
# Model names become directory names and URL path segments (REST): a conservative, portable set.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Reservation:
    """A version being built: `staging` is the temporary directory that becomes `final`."""

    version: int
    staging: Path
    final: Path
    created: tuple[Path, ...] = ()  # folders reserve() created, removed again if the export fails


class Repository:
    """The folder of one model, `<base_path>/<name>`, holding numeric version directories."""

    def __init__(self, base_path: Path | str, name: str) -> None:
        if not _SAFE_NAME.fullmatch(name):
            raise UsageError(
                f"model name {name!r} is not a plain directory name (e.g. 'mnist_cnn'): use letters, "
                "digits, '.', '_' and '-', starting with a letter or digit"
            )
        self.path = Path(base_path) / name

    def versions(self) -> list[int]:
        """The published versions, ascending."""
        if not self.path.is_dir():
            return []
        return sorted(list_versions(self.path))

    def check(self, version: int | None = None) -> None:
        """Refuse, without writing anything, a version that is out of range or already published.

        Cheap enough to run before loading a model, so a mistake is reported at once.

        Raises:
            PublishError: the version is invalid or exists.
        """
        for folder in (self.path.parent, self.path):
            if folder.exists() and not folder.is_dir():
                raise PublishError(f"{folder} exists but is not a directory; it cannot hold model versions")
        if version is None:
            return
        if not 0 <= version <= MAX_VERSION:
            raise PublishError(f"version {version} is out of range; TF Serving accepts 0..{MAX_VERSION}")
        published = self.versions()
        if version in published:
            raise self._exists(version, published, [])

    def reserve(self, version: int | None = None) -> Reservation:
        """Choose a version (next free one if None), remove dead leftovers, create its staging directory.

        Raises:
            PublishError: the version exists, is being built by a live process, or is invalid.
        """
        self.check(version)
        # The folders this export creates, outermost first: a failed export removes them again.
        created = tuple(folder for folder in (*reversed(self.path.parents), self.path) if not folder.exists())
        for _ in range(3):  # a failed export elsewhere may remove a folder it created while we wait
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise PublishError(f"cannot create the model folder {self.path}: {error}") from error
            try:
                with self._locked():
                    staging, version = self._stage(version)
                break
            except _FolderRemovedError:
                continue
        else:
            raise PublishError(f"the model folder {self.path} keeps being removed by failed exports")
        _fsync_dir(self.path)
        return Reservation(version=version, staging=staging, final=self.path / str(version), created=created)

    def _stage(self, version: int | None) -> tuple[Path, int]:
        """Under the lock: choose the version and create its staging directory."""
        live = self._sweep_staging()
        published = self.versions()
        if version is None:
            version = max([*published, *live, 0]) + 1
        elif version in published:
            raise self._exists(version, published, list(live))
        elif version in live:
            raise PublishError(
                f"version {version} of {self.path.name!r} is being exported right now by another "
                f"process ({live[version]}); choose another version"
            )
        staging = self.path / f"{TEMP_PREFIX}{version}-{os.getpid()}-{secrets.token_hex(4)}"
        staging.mkdir()
        return staging, version

    def _exists(self, version: int, published: list[int], live: list[int]) -> PublishError:
        return PublishError(
            f"version {version} of {self.path.name!r} already exists in {self.path}; versions are "
            f"never overwritten. Existing versions: {published}; the next free one is "
            f"{max([*published, *live, 0]) + 1}"
        )

    def publish(self, reservation: Reservation) -> Path:
        """fsync the staging directory, then rename it to its version in one atomic step."""
        fsync_tree(reservation.staging)
        with self._locked():
            # rename() would silently replace an EMPTY directory of that name: check first (under
            # the lock, so no cooperating exporter can create it in between).
            if reservation.final.exists():
                raise PublishError(
                    f"version {reservation.version} appeared in {self.path} while exporting; not "
                    "overwriting it. Export again to get the next version."
                )
            reservation.staging.rename(reservation.final)
        _fsync_dir(self.path)
        logger.info("published %s", reservation.final)
        return reservation.final

    def abandon(self, reservation: Reservation) -> None:
        """Undo a failed export: its staging directory, and the folders it created if nothing else is there.

        An empty model folder left behind would make TF Serving (and `layertap serve`) wait for a
        version forever, so the repository is left exactly as it was found.
        """
        shutil.rmtree(reservation.staging, ignore_errors=True)
        if self.path not in reservation.created:
            return
        with self._locked():
            if {entry.name for entry in self.path.iterdir()} != {LOCK_FILE}:
                return  # another export is using the folder now
            (self.path / LOCK_FILE).unlink()
            for folder in reversed(reservation.created):
                try:
                    folder.rmdir()
                except OSError:
                    break  # not empty (something else appeared) or not ours to remove

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            descriptor = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:  # e.g. a read-only or full volume: say so instead of a bare OSError
            raise PublishError(
                f"cannot publish into {self.path}: {error.strerror} ({error.filename})"
            ) from error
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if not _same_file(descriptor, self.path / LOCK_FILE):
                # A failed export removed the folder (and this lock file) while we waited.
                raise _FolderRemovedError(f"{self.path} was removed while waiting for its lock")
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    def _sweep_staging(self) -> dict[int, int]:
        """Delete staging directories of dead processes; return {version: pid} of live ones."""
        live: dict[int, int] = {}
        for entry in self.path.iterdir():
            match = _TEMP_NAME.match(entry.name)
            if match is None:
                continue
            pid = int(match["pid"])
            if _process_alive(pid):
                live[int(match["version"])] = pid
            else:
                logger.info("removing %s left by dead process %d", entry, pid)
                shutil.rmtree(entry, ignore_errors=True)
        return live


class _FolderRemovedError(PublishError):
    """The model folder was removed (by a failed export that had created it) while waiting for its lock."""


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (opened.st_dev, opened.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under `root` (directories after their contents)."""
    for directory, _, files in os.walk(root, topdown=False):
        for file_name in files:
            descriptor = os.open(Path(directory) / file_name, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _fsync_dir(Path(directory))


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    except OSError as error:  # some filesystems cannot fsync directories
        if error.errno not in {errno.EINVAL, errno.ENOTSUP}:
            raise
    finally:
        os.close(descriptor)
