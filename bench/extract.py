"""8. Bulk extraction: images per second at batch 64, `layertap extract` against its floor.

The floor is the same signature called in a loop on pre-decoded batches of 64 through the same
session path (`InProcessRunner.run`): what extraction would cost with nothing but inference. `extract`
in-process reads a folder of PNG files (decode, resize, scale in a reader thread), batches, runs and
writes Parquet shards; remote, it asks `layertap serve` (a separate process on the same machine, so
both compete for its 2 cores); the Beam row runs the same job as a DirectRunner pipeline
(`SavedModelHandler`, files in, Parquet out). More rows separate the costs: the job reading one .npy
file instead of PNG files (no decoding), decoding alone, writing alone, and (tutorial CNN) a small
layer from .npy, the configuration where writing costs nothing next to inference.

What each timing includes. Floor: the loop only (the runner loaded and warmed beforehand). Jobs:
`run_job` on a runner created beforehand, which is `extract()` minus its set-up (loading the version
and the warm-up run in-process; the metadata call and a warm-up call remotely), i.e. what
`ExtractSummary.seconds` times. Beam: the whole pipeline, set-up included (its workers load the
model), compared with extract's set-up plus job. CPU is process time summed over all threads
(`time.process_time`), plus the server process's for the remote row: unlike wall-clock rates it
hardly moves when other jobs share the machine, so it is the figure to compare under load.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import _models, _serving
from bench._harness import Report

BATCH = 64


@dataclass(frozen=True)
class Timed:
    """`images` processed in `wall` seconds, spending `cpu` seconds of CPU (all threads)."""

    images: int
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.images / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.images * 1e6

    def __add__(self, other: Timed) -> Timed:
        return Timed(self.images + other.images, self.wall + other.wall, self.cpu + other.cpu)


def _timed(images: int, work: Callable[[], object], other_cpu: Callable[[], float] = lambda: 0.0) -> Timed:
    wall, cpu, other = time.perf_counter(), time.process_time(), other_cpu()
    work()
    return Timed(images, time.perf_counter() - wall, time.process_time() - cpu + other_cpu() - other)


def _write_images(folder: Path, count: int, size: int, channels: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
        Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels).save(folder / f"{index:05d}.png")


def _decode_all(folder: Path, runner: Any) -> np.ndarray:
    """The images of `folder` as `extract` feeds them (decoded, scaled by 1/255), in its order."""
    from layertap.extract import ImagePreprocessing, open_source

    source = open_source([folder], preprocessing=ImagePreprocessing(scale=1 / 255))
    return np.stack([record.load(runner.input) for record in source.records()])


def _floor(runner: Any, count: int) -> Timed:
    """`count` images (a multiple of 64) through runner.run at batch 64, decoded beforehand."""
    batch = np.random.default_rng(1).random((BATCH, *runner.input.shape), dtype=np.float32)

    def loop() -> None:
        for _ in range(count // BATCH):
            runner.run(batch)

    return _timed(count, loop)


def _job(
    runner: Any, inputs: Path, output: Path, count: int, other_cpu: Callable[[], float] | None = None
) -> Timed:
    """`extract()`'s job on a runner made beforehand (what `ExtractSummary.seconds` times)."""
    from layertap.extract import ImagePreprocessing, open_source, run_job

    scale = None if inputs.suffix == ".npy" else ImagePreprocessing(scale=1 / 255)
    source = open_source([inputs], preprocessing=scale)
    return _timed(
        count, lambda: run_job(source, runner, output, batch_size=BATCH), other_cpu or (lambda: 0.0)
    )


def _write_alone(runner: Any, output: Path, count: int) -> Timed:
    """Parquet shards of `count` rows of the layer's features (one batch's, repeated): the writer alone."""
    from layertap.extract.shards import ParquetShards

    features = runner.run(np.zeros((BATCH, *runner.input.shape), np.float32))
    ids = [f"{index:05d}.png" for index in range(BATCH)]
    output.mkdir()
    shards = ParquetShards(output, runner.outputs, {"model": "bench"})

    def write() -> None:
        for _ in range(count // BATCH):
            shards.add(ids, features, [])
        shards.finish()

    return _timed(count, write)


def _beam(folder: Path, version_dir: str, layer: str, output: Path, count: int) -> Timed:
    import apache_beam as beam
    import pyarrow as pa
    from apache_beam.io.fileio import MatchFiles, ReadMatches
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    from layertap.beam import SavedModelHandler, as_row, decode_image_file
    from layertap.extract import ImagePreprocessing

    handler = KeyedModelHandler(
        SavedModelHandler(version_dir, [layer], max_batch_size=BATCH, min_batch_size=BATCH)
    )
    import PIL.Image

    with PIL.Image.open(next(folder.iterdir())) as image:  # the model's input size (no resizing)
        shape = (image.height, image.width, len(image.getbands()))
    schema = pa.schema([("id", pa.string()), (layer, pa.list_(pa.float32()))])

    def pipeline() -> None:
        with beam.Pipeline(runner="DirectRunner") as run:
            _ = (
                run
                | MatchFiles(str(folder / "*.png"))
                | ReadMatches()
                | beam.Map(lambda file: (file.metadata.path, file.read()))
                | beam.Map(decode_image_file, shape=shape, preprocessing=ImagePreprocessing(scale=1 / 255))
                | RunInference(handler)
                | beam.Map(as_row)
                | beam.io.WriteToParquet(str(output / "part"), schema, file_name_suffix=".parquet")
            )

    return _timed(count, pipeline)


def _server_cpu() -> Callable[[], float]:
    """CPU seconds so far of the `layertap serve` process this benchmark started."""
    import psutil

    server = next(child for child in psutil.Process().children() if "serve" in child.cmdline())
    return lambda: sum(server.cpu_times()[:2])


@dataclass
class _Case:
    """One model's measurements, by path."""

    label: str
    layer: str
    count: int
    small: str | None
    timed: dict[str, Timed]
    setup: Timed | None = None


FLOOR = "floor (signature loop, pre-decoded)"
PNG = "extract in-process (PNG folder -> Parquet)"
NPY = "extract in-process (.npy -> Parquet, no decoding)"
REMOTE = "extract remote (layertap serve; CPU: both processes)"
BEAM = "Beam DirectRunner (PNG files -> Parquet, set-up included)"


def _in_process(case: _Case, version_dir: str, work: Path, quick: bool) -> None:
    from layertap.extract import InProcessRunner

    images, count, timed = work / "images", case.count, case.timed
    wall, cpu = time.perf_counter(), time.process_time()
    runner = InProcessRunner(version_dir, [case.layer])
    case.setup = Timed(count, time.perf_counter() - wall, time.process_time() - cpu)
    # The floor before and after the jobs, summed: on a shared machine the load drifts.
    floor = _floor(runner, count)
    timed[PNG] = _job(runner, images, work / "png", count)
    if not quick:  # the CI smoke test: the floor and the PNG job only
        np.save(work / "images.npy", _decode_all(images, runner))
        timed[NPY] = _job(runner, work / "images.npy", work / "npy", count)
    timed[FLOOR] = floor + _floor(runner, count)
    if not quick:
        timed["decoding alone (PNG -> array, one thread)"] = _timed(
            count, lambda: _decode_all(images, runner)
        )
        timed["writing alone (features -> Parquet)"] = _write_alone(runner, work / "written", count)
    runner.close()
    if case.small and not quick:
        small = InProcessRunner(version_dir, [case.small])
        floor = _floor(small, count)
        job = _job(small, work / "images.npy", work / "small", count)
        timed[f"floor, {case.small}"] = floor + _floor(small, count)
        timed[f"extract in-process (.npy -> Parquet), {case.small}"] = job
        small.close()


def _elsewhere(case: _Case, base_path: Path, version_dir: str, work: Path) -> None:
    """The remote job (`layertap serve` in its own process) and the Beam pipeline."""
    from layertap.extract import RemoteRunner

    with _serving.serving({"bench": base_path}) as target:
        server_cpu = _server_cpu()
        remote = RemoteRunner([target], "bench", [case.layer], client_options={"timeout": 600})
        case.timed[REMOTE] = _job(remote, work / "images", work / "remote", case.count, server_cpu)
        remote.close()
    case.timed[BEAM] = _beam(work / "images", version_dir, case.layer, work / "beam", case.count)


def _measure(case: _Case, model: Any, quick: bool) -> _Case:
    from layertap.exporter import export

    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        layers = [case.layer, *([case.small] if case.small else [])]
        result = export(model, layers, base_path=work / "models", name="bench", verify=False)
        _write_images(work / "images", case.count, shape[0], shape[2])
        _in_process(case, str(result.path), work, quick)
        if not quick:
            _elsewhere(case, result.path.parent, str(result.path), work)
    return case


def _report(report: Report, case: _Case) -> None:
    timed = case.timed
    for path in [FLOOR, *(key for key in timed if key != FLOOR)]:
        figures = timed[path]
        report.row(
            model=case.label,
            layer=case.small if case.small and path.endswith(f", {case.small}") else case.layer,
            path=path,
            images=figures.images,
            images_per_s=round(figures.rate, 1),
            cpu_us_per_image=round(figures.cpu_us),
            cores=round(figures.cpu / figures.wall, 2),
        )
    floor, local = timed[FLOOR], timed[PNG]
    ratio = local.rate / floor.rate
    report.target(f"{case.label}: extract in-process / floor", ratio, ">= 0.9", ratio >= 0.9)
    assert case.setup is not None
    notes = [f"set-up (load + warm-up) {case.setup.wall:.1f} s, {case.setup.cpu:.1f} s CPU"]
    if NPY in timed:
        npy, remote, beam = timed[NPY], timed[REMOTE], timed[BEAM]
        extract_with_setup = case.count / (case.setup.wall + local.wall)
        notes += [
            f"in-process from .npy / floor = {npy.rate / floor.rate:.2f}x",
            f"remote / floor = {remote.rate / floor.rate:.2f}x",
            f"Beam / extract in-process, both with set-up = {beam.rate / extract_with_setup:.2f}x",
            f"CPU per image / the floor's: PNG job {local.cpu_us / floor.cpu_us:.2f}x, "
            f".npy job {npy.cpu_us / floor.cpu_us:.2f}x, remote {remote.cpu_us / floor.cpu_us:.2f}x",
        ]
    if case.small and f"floor, {case.small}" in timed:
        small_job = timed[f"extract in-process (.npy -> Parquet), {case.small}"]
        notes.append(
            f"{case.small} from .npy / its floor = {small_job.rate / timed[f'floor, {case.small}'].rate:.2f}x"
        )
    report.notes.append(f"{case.label}: " + "; ".join(notes))


def run(quick: bool = False) -> Report:
    report = Report("extract", "Bulk extraction: images/s at batch 64")
    load = os.getloadavg()[0]
    cnn = _Case("tutorial CNN", "conv_2", 128 if quick else 8192, "output_layer", {})
    _report(report, _measure(cnn, _models.tutorial_cnn(), quick))
    if not quick:
        resnet = _Case("ResNet50 64x64", "conv4_block6_out", 1536, None, {})
        _report(report, _measure(resnet, _models.resnet50(64), quick))
    else:
        report.notes.append("--quick: tutorial CNN only, 128 images")
    report.notes.append(f"load average (1 min) at start {load:.1f}, at end {os.getloadavg()[0]:.1f}")
    return report
