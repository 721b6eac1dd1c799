"""Publishing a version into a TF Serving model folder so that no reader ever sees it half-written.

TF Serving loads any numeric child of `<base>/<name>/` as soon as it appears and never checks it is
complete (REFERENCE §3). So a version is built in a non-numeric directory beside the versions
(`.layertap-tmp-<version>-<pid>-<random>`), every file and directory in it is fsynced, and it is
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

    def reserve(self, version: int | None = None) -> Reservation:
        """Choose a version (next free one if None), remove dead leftovers, create its staging directory.

        Raises:
            PublishError: the version exists, is being built by a live process, or is invalid.
        """
        if version is not None and not 0 <= version <= MAX_VERSION:
            raise PublishError(f"version {version} is out of range; TF Serving accepts 0..{MAX_VERSION}")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PublishError(f"cannot create the model folder {self.path}: {error}") from error
        with self._locked():
            live = self._sweep_staging()
            published = self.versions()
            if version is None:
                version = max([*published, *live, 0]) + 1
            elif version in published:
                raise PublishError(
                    f"version {version} of {self.path.name!r} already exists in {self.path}; versions are "
                    f"never overwritten. Existing versions: {published}; the next free one is "
                    f"{max([*published, *live, 0]) + 1}"
                )
            elif version in live:
                raise PublishError(
                    f"version {version} of {self.path.name!r} is being exported right now by another "
                    f"process ({live[version]}); choose another version"
                )
            staging = self.path / f"{TEMP_PREFIX}{version}-{os.getpid()}-{secrets.token_hex(4)}"
            staging.mkdir()
        _fsync_dir(self.path)
        return Reservation(version=version, staging=staging, final=self.path / str(version))

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
        """Remove the staging directory of a failed export."""
        shutil.rmtree(reservation.staging, ignore_errors=True)

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
