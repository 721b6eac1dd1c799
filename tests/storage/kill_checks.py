"""What the publisher SIGKILL tests start and check: a TF-free `layertap repo push` child, and the state of a
model's prefix on the store (byte-exact loadable versions, new claims)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from layertap.storage.store import ObjectStore, crc32c_of_file

__all__ = ["Objects", "expected_objects", "loadable_versions_are_complete", "push", "wait_for_claims"]

#: A version's objects: relative path -> (size, CRC32C).
Objects = dict[str, tuple[int, str]]
CHILD = Path(__file__).with_name("publish_child.py")
ROOT = Path(__file__).resolve().parents[2]


def push(version: Path, model: str, env: dict[str, str], lease_seconds: float) -> subprocess.Popen[str]:
    """`layertap repo push --json VERSION MODEL` in a child with TensorFlow blocked (publish_child.py)."""
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(version), model, "--lease-seconds", str(lease_seconds)],
        env={**env, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expected_objects(version: Path) -> Objects:
    """Each file of a version directory, relative path -> (size, CRC32C)."""
    return {
        p.relative_to(version).as_posix(): (p.stat().st_size, crc32c_of_file(p))
        for p in version.rglob("*")
        if p.is_file()
    }


def loadable_versions_are_complete(
    store: ObjectStore, prefix: str, expected: Objects | Callable[[int], Objects]
) -> int:
    """Every numbered version that holds saved_model.pb holds every object, byte-exact; returns how many.

    `expected`: the objects of every version, or of each version (a function of its number), when
    publishers pushed different directories.
    """
    by_version: dict[str, dict[str, tuple[int, str | None]]] = {}
    for info in store.list_objects(prefix):
        version, _, relative = info.key[len(prefix) :].partition("/")
        if version.isdigit():
            by_version.setdefault(version, {})[relative] = (info.size, info.crc32c)
    complete = 0
    for version, objects in by_version.items():
        if "saved_model.pb" in objects:
            wanted = expected(int(version)) if callable(expected) else expected
            assert objects == wanted, f"version {version} holds saved_model.pb but is incomplete"
            complete += 1
    return complete


def wait_for_claims(
    store: ObjectStore, prefix: str, known: set[int], count: int, timeout: float = 120
) -> set[int]:
    """The numbers claimed beyond `known`, once `count` of them exist."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = {
            int(info.key.rsplit("/", 1)[1]) for info in store.list_objects(prefix + "_layertap/claims/")
        } - known
        if len(new) >= count:
            return new
        time.sleep(0.05)
    raise AssertionError(f"no {count} new claims within {timeout} s (known {sorted(known)})")
