"""Timing, statistics, machine details and result files shared by every benchmark."""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Stats:
    """Seconds per call: median, spread (10th and 90th percentiles), min, max, count."""

    median: float
    p10: float
    p90: float
    minimum: float
    maximum: float
    count: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        ordered = sorted(samples)

        def pick(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        return cls(statistics.median(ordered), pick(0.1), pick(0.9), ordered[0], ordered[-1], len(ordered))


def measure(fn: Callable[[], object], *, warmup: int = 2, repeat: int = 7, min_time: float = 0.005) -> Stats:
    """Time `fn` after `warmup` calls: `repeat` samples, each looping until `min_time` seconds pass.

    Short calls are looped so a sample is not dominated by the clock's resolution; the sample is the
    time per call. The garbage collector is paused while a sample runs.
    """
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    # With TensorFlow and Keras loaded, a full collection walks ~400,000 objects (a quarter of a CPU second):
    # frozen once here, they are out of its sight, and the collection before each sample only looks at what
    # the samples left behind.
    gc.collect()
    gc.freeze()
    try:
        for _ in range(repeat):
            gc.collect()
            gc.disable()
            try:
                loops = 0
                start = time.perf_counter()
                while True:
                    fn()
                    loops += 1
                    elapsed = time.perf_counter() - start
                    if elapsed >= min_time:
                        break
            finally:
                gc.enable()
            samples.append(elapsed / loops)
    finally:
        gc.unfreeze()
    return Stats.of(samples)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    details: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        with Path("/proc/cpuinfo").open() as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    details["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for name in ("numpy", "grpc", "google.protobuf"):
        try:
            module = __import__(name, fromlist=["__version__"])
            details[f"{name}_version"] = getattr(module, "__version__", "?")
        except ImportError:
            pass
    return details


@dataclass
class Report:
    """One benchmark's results: rows of a table, ratios against targets, and free-form notes."""

    name: str
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, **values: Any) -> None:
        self.rows.append(values)

    def target(self, what: str, measured: float, goal: str, met: bool) -> None:
        self.targets.append({"what": what, "measured": round(measured, 3), "goal": goal, "met": met})

    def write(self, directory: Path = RESULTS_DIR) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}.json"
        payload = {"machine": machine(), **asdict(self)}
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(payload, indent=2, default=float) + "\n")
        temporary.replace(path)
        return path

    def table(self) -> str:
        lines = [f"## {self.title}"]
        if self.rows:
            columns = list(dict.fromkeys(key for row in self.rows for key in row))
            widths = {c: max(len(c), *(len(_cell(row.get(c))) for row in self.rows)) for c in columns}
            lines.append("  ".join(c.ljust(widths[c]) for c in columns))
            for row in self.rows:
                lines.append("  ".join(_cell(row.get(c)).ljust(widths[c]) for c in columns))
        for target in self.targets:
            mark = "met" if target["met"] else "MISSED"
            lines.append(f"target {mark}: {target['what']} = {target['measured']} (goal {target['goal']})")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 4)


def latencies(fn: Callable[[], object], count: int, *, warmup: int = 3) -> list[float]:
    """Seconds of each of `count` calls of `fn`, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def quantile(samples: list[float], q: float) -> float:
    """The q-quantile of samples (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def throughput(fn: Callable[[], object], callers: int, seconds: float) -> tuple[float, list[float]]:
    """Calls per second of `fn` from `callers` threads over `seconds`, and every call's latency."""
    import threading

    stop = time.perf_counter() + seconds
    samples: list[list[float]] = [[] for _ in range(callers)]
    errors: list[BaseException] = []

    def loop(mine: list[float]) -> None:
        try:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                fn()
                mine.append(time.perf_counter() - start)
        except BaseException as error:  # surfaced to the benchmark below
            errors.append(error)

    threads = [threading.Thread(target=loop, args=(mine,)) for mine in samples]
    begin = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begin
    if errors:
        raise errors[0]
    every = [s for mine in samples for s in mine]
    return len(every) / elapsed, every
