"""TF Serving's Prometheus metrics (`--monitoring_config_file`), served on the REST port.

The same metric names, labels and histogram buckets as TF Serving (`/tensorflow/serving/request_count`
becomes `:tensorflow:serving:request_count`), so dashboards built for the real server read these too.
Metrics are labelled by model, never by signature, as in TF Serving.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field

__all__ = [
    "LATENCY_BUCKETS",
    "METRICS",
    "Metrics",
    "record_load",
    "record_request",
    "record_runtime",
]

#: TF Serving's latency buckets in microseconds: Exponential(10, 1.8, 33), then +Inf.
LATENCY_BUCKETS = tuple(10 * 1.8**i for i in range(33))

_REQUEST_COUNT = ":tensorflow:serving:request_count"
_REQUEST_LATENCY = ":tensorflow:serving:request_latency"
_RUNTIME_LATENCY = ":tensorflow:serving:runtime_latency"
_LOAD_ATTEMPTS = ":tensorflow:cc:saved_model:load_attempt_count"

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0


def _number(value: float) -> str:
    # absl::StrCat(double) prints six significant digits, like %g.
    return format(value, ".6g")


def _labels(labels: Labels) -> str:
    return ",".join(
        f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for name, value in labels
    )


class Metrics:
    """Counters and latency histograms, thread-safe, rendered in Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, int]] = {}
        self._histograms: dict[str, dict[Labels, _Histogram]] = {}

    def increment(self, name: str, labels: Labels) -> None:
        """Add one to a counter."""
        with self._lock:
            cells = self._counters.setdefault(name, {})
            cells[labels] = cells.get(labels, 0) + 1

    def observe(self, name: str, labels: Labels, microseconds: float) -> None:
        """Add one sample to a latency histogram."""
        with self._lock:
            cell = self._histograms.setdefault(name, {}).setdefault(labels, _Histogram())
            cell.counts[bisect.bisect_left(LATENCY_BUCKETS, microseconds)] += 1
            cell.total += microseconds

    def render(self) -> str:
        """Every metric in Prometheus' text exposition format, sorted by name."""
        lines: list[str] = []
        with self._lock:
            names = sorted({*self._counters, *self._histograms})
            for name in names:
                if name in self._counters:
                    lines.append(f"# TYPE {name} counter")
                    for labels, value in sorted(self._counters[name].items()):
                        lines.append(f"{name}{{{_labels(labels)}}} {value}")
                    continue
                lines.append(f"# TYPE {name} histogram")
                for labels, cell in sorted(self._histograms[name].items()):
                    prefix = f"{name}_bucket{{{_labels(labels)}{',' if labels else ''}"
                    cumulative = 0
                    for limit, count in zip((*LATENCY_BUCKETS, math.inf), cell.counts, strict=True):
                        cumulative += count
                        bound = "+Inf" if math.isinf(limit) else _number(limit)
                        lines.append(f'{prefix}le="{bound}"}} {cumulative}')
                    lines.append(f"{name}_sum{{{_labels(labels)}}} {_number(cell.total)}")
                    lines.append(f"{name}_count{{{_labels(labels)}}} {cumulative}")
        return "\n".join(lines) + "\n"


#: The process-wide registry, as TensorFlow's monitoring registry is.
METRICS = Metrics()


def record_request(model: str, code: str, api: str, entrypoint: str, microseconds: float) -> None:
    """One finished request: its status count, and (when OK) its latency."""
    METRICS.increment(_REQUEST_COUNT, (("model_name", model), ("status", code)))
    if code == "OK":
        METRICS.observe(
            _REQUEST_LATENCY, (("model_name", model), ("API", api), ("entrypoint", entrypoint)), microseconds
        )


def record_runtime(model: str, api: str, microseconds: float) -> None:
    """The session run time of one request (TF Serving's runtime_latency, runtime "TF1")."""
    METRICS.observe(_RUNTIME_LATENCY, (("model_name", model), ("API", api), ("runtime", "TF1")), microseconds)


def record_load(path: str, ok: bool) -> None:
    """One SavedModel load attempt."""
    METRICS.increment(_LOAD_ATTEMPTS, (("model_path", path), ("status", "success" if ok else "fail")))
