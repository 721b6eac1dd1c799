"""Publishing onto a full disk and a read-only destination: a clear error, nothing partial left, nothing
earlier touched.

We run as root, so permission bits would not stop the writes; the tests mount a real small tmpfs (and
remount it read-only), which fails writes with ENOSPC / EROFS exactly as a full or read-only volume does.
Where mount is not permitted (an unprivileged container) they are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layertap.errors import LayertapError
from layertap.exporter import export
from layertap.exporter.publish import TEMP_PREFIX
from tests.guarantees import skip_or_fail


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted at <tmp>/volume, unmounted afterwards."""
    mount_point = tmp_path / "volume"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        skip_or_fail(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def _fill(volume: Path, leave: int) -> None:
    """Write a filler file until only about `leave` bytes stay free."""
    stats = shutil.disk_usage(volume)
    with (volume / "filler").open("wb") as filler:
        filler.write(b"\0" * max(0, stats.free - leave))


def test_disk_full_is_a_clear_error_and_leaves_nothing(
    small_volume: Path, untrained_cnn_version: Path, untrained_tutorial_cnn: Any
) -> None:
    model = small_volume / "cnn"
    model.mkdir()
    shutil.copytree(untrained_cnn_version, model / "1")
    before = _digest(model / "1")
    _fill(small_volume, leave=64 * 1024)  # far less than one version needs
    with pytest.raises(LayertapError) as caught:
        export(
            untrained_tutorial_cnn,
            ["conv_1", "pool_1", "flatten"],
            base_path=small_volume,
            name="cnn",
            verify=False,
        )
    message = str(caught.value)
    assert "No space left on device" in message or "ENOSPC" in message or "space" in message.lower(), message
    # No new version, no staging leftovers; only the (empty) lock file that serialises publishers.
    assert sorted(p.name for p in model.iterdir()) == [".layertap.lock", "1"]
    assert (model / ".layertap.lock").stat().st_size == 0
    assert _digest(model / "1") == before
    # Once there is room again, the next export succeeds as version 2.
    (small_volume / "filler").unlink()
    result = export(untrained_tutorial_cnn, ["conv_1"], base_path=small_volume, name="cnn", verify=False)
    assert result.version == 2
    assert not [p for p in model.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_read_only_destination_is_a_clear_error_and_touches_nothing(
    small_volume: Path, untrained_cnn_version: Path, untrained_tutorial_cnn: Any
) -> None:
    model = small_volume / "cnn"
    model.mkdir()
    shutil.copytree(untrained_cnn_version, model / "1")
    before = _digest(model / "1")
    subprocess.run(["mount", "-o", "remount,ro", str(small_volume)], check=True)
    with pytest.raises(LayertapError) as caught:
        export(untrained_tutorial_cnn, ["conv_1"], base_path=small_volume, name="cnn", verify=False)
    assert "Read-only file system" in str(caught.value), str(caught.value)
    assert sorted(p.name for p in model.iterdir()) == ["1"]
    assert _digest(model / "1") == before
