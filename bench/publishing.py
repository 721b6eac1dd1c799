"""8. Publishing to gs://: upload throughput against a plain parallel copy, and the visibility window.

Both run against fake-gcs-server on loopback (tests/storage/emulators.py), with the same library
(google-cloud-storage) and the same 8 threads, on the same ~100 MB version directory (4 x 25 MB random
variable shards plus the small files an export writes):

- plain copy: every file uploaded straight to `<name>/<N>/` in parallel, no order, no checks, no claim;
- layertap: claim, upload to `_layertap/staging/<N>/` (each object checked: size and CRC32C), server-side
  copies into `<N>/` in commit order with saved_model.pb last (each checked), claim marked published, staging
  deleted;
- in place (the alternative not chosen): the same ordered, checked uploads, straight into `<N>/`.

The visibility window is the time from the first object of `<N>/` existing to saved_model.pb existing: the
time during which TF Serving sees a version it cannot load yet.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._harness import Report
from layertap.storage.publish import RemoteRepository, upload_order
from layertap.storage.store import open_store
from layertap.storage.uri import ObjectLocation
from tests.storage.emulators import start_fake_gcs, unique_bucket

WORKERS = 8


def _version(directory: Path, megabytes: int) -> Path:
    rng = random.Random(5)
    version = directory / "1"
    (version / "variables").mkdir(parents=True)
    (version / "assets.extra").mkdir()
    shard = (megabytes << 20) // 4
    for index in range(4):
        (version / "variables" / f"variables.data-{index:05d}-of-00004").write_bytes(rng.randbytes(shard))
    (version / "variables" / "variables.index").write_bytes(rng.randbytes(20_000))
    (version / "assets.extra" / "tf_serving_warmup_requests").write_bytes(rng.randbytes(50_000))
    (version / "assets.extra" / "layertap_manifest.json").write_bytes(rng.randbytes(5_000))
    (version / "fingerprint.pb").write_bytes(rng.randbytes(60))
    (version / "saved_model.pb").write_bytes(rng.randbytes(300_000))
    return version


def _plain_copy(bucket: object, version: Path, prefix: str) -> float:
    files = [p for p in version.rglob("*") if p.is_file()]
    started = time.perf_counter()

    def send(path: Path) -> None:
        bucket.blob(prefix + path.relative_to(version).as_posix()).upload_from_filename(str(path))  # type: ignore[attr-defined]

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(send, files))
    return time.perf_counter() - started


def _in_place(repository: RemoteRepository, version: Path) -> tuple[float, float]:
    """The ordered, checked upload straight into <N>/: (seconds, window ms)."""
    store = repository.store
    lease = repository.claim()
    started = time.perf_counter()
    target = f"{repository.prefix}{lease.version}/"
    first_visible: float | None = None
    for group in upload_order(version):

        def send(entry: object) -> None:
            store.upload(entry.path, target + entry.relative, entry.crc32c)  # type: ignore[attr-defined]

        with ThreadPoolExecutor(WORKERS) as pool:
            futures = [pool.submit(send, entry) for entry in group]
            if first_visible is None:
                first_visible = time.perf_counter()  # the first uploads are under way: <N>/ appears
            for future in futures:
                future.result()
    done = time.perf_counter()
    lease.finish("published")
    return done - started, (done - (first_visible or done)) * 1000


def run(quick: bool = False) -> Report:
    megabytes = 8 if quick else 100
    repeats = 1 if quick else 3
    report = Report("publishing", f"Publishing a {megabytes} MB version to gs:// (fake-gcs-server, loopback)")
    with tempfile.TemporaryDirectory() as scratch:
        version = _version(Path(scratch), megabytes)
        total = sum(p.stat().st_size for p in version.rglob("*") if p.is_file())
        with start_fake_gcs(Path(scratch) / "gcs") as server:
            os.environ.update(server.env())
            bucket_name = unique_bucket("bench")
            server.create_bucket(bucket_name)
            base = ObjectLocation("gs", bucket_name, "models")
            store = open_store(base)
            bucket = store._bucket  # type: ignore[attr-defined]
            plain, ours, in_place, windows, in_place_windows = [], [], [], [], []
            for attempt in range(repeats):
                plain.append(_plain_copy(bucket, version, f"plain/m/{attempt + 1}/"))
                result = RemoteRepository(base, "m", store=store, workers=WORKERS).publish(version)
                ours.append(result.upload_seconds)
                windows.append(result.window_ms)
                seconds, window = _in_place(RemoteRepository(base, "inplace", store=store), version)
                in_place.append(seconds)
                in_place_windows.append(window)
    for label, samples, window_samples in (
        ("plain parallel copy", plain, None),
        ("layertap (staging + server-side copies)", ours, windows),
        ("ordered upload in place (not chosen)", in_place, in_place_windows),
    ):
        median = statistics.median(samples)
        report.row(
            method=label,
            seconds=round(median, 2),
            mb_per_s=round(total / median / 1e6, 1),
            window_ms=round(statistics.median(window_samples), 1) if window_samples else "-",
            runs=len(samples),
        )
    ratio = statistics.median(plain) / statistics.median(ours)
    report.target("layertap throughput / plain parallel copy", ratio, ">= 0.9", ratio >= 0.9)
    report.notes.append(
        f"{total / 1e6:.1f} MB; window = first object of N/ to saved_model.pb; medians of {repeats} runs"
    )
    return report
