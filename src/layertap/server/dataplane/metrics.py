"""TF Serving's Prometheus metrics (`--monitoring_config_file`), served on the REST port.

The counters and histograms are `prometheus_client` instruments (thread-safe storage, bucket
arithmetic); a custom collector exposes them under TF Serving's exact names, labels and buckets:
`/tensorflow/serving/request_count` is `:tensorflow:serving:request_count` (TF Serving replaces every
character outside `[a-zA-Z0-9_]` with `:`), counters carry no `_total` and no `_created` samples, and
metrics are labelled by model, never by signature. So dashboards built for the real server read these.

The page is always Prometheus text format 0.0.4, whatever the scraper's Accept header: a Prometheus
that negotiates OpenMetrics with prometheus_client's own exposition would get `:` turned into `_`.
`render` writes the collected families with TF Serving's number formatting (integers for counts,
six significant digits for sums and bucket bounds, as absl::StrCat prints them); prometheus_client's
`generate_latest` would print `2.0` for a count of 2 and add `# HELP` lines TF Serving does not send.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, Metric
from prometheus_client.registry import Collector

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


def _number(value: float) -> str:
    # absl::StrCat(double) prints six significant digits, like %g.
    return format(value, ".6g")


class _TFServingNames(Collector):
    """The instruments of `source`, as TF Serving names and labels them."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        for family in self._source.collect():
            renamed = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                name = family.name if sample.name == f"{family.name}_total" else sample.name
                labels = dict(sample.labels)
                if "le" in labels and labels["le"] != "+Inf":
                    labels["le"] = _number(float(labels["le"]))
                renamed.add_sample(name, labels, sample.value)
            yield renamed


def _escape(value: str) -> str:
    # The text format's label value escapes: backslash, newline, double quote.
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items())


def _value(name: str, value: float) -> str:
    if name.endswith("_sum"):
        return _number(value)
    return str(int(value)) if math.isfinite(value) and value == int(value) else _number(value)


class Metrics:
    """The process's metrics: prometheus_client instruments, exposed with TF Serving's names."""

    def __init__(self) -> None:
        instruments = CollectorRegistry(auto_describe=True)

        def latency(name: str, documentation: str, last_label: str) -> Histogram:
            # TF Serving's latency histograms share their unit (microseconds), buckets and first labels.
            return Histogram(
                name,
                documentation,
                ["model_name", "API", last_label],
                buckets=LATENCY_BUCKETS,
                registry=instruments,
            )

        self.request_count = Counter(
            ":tensorflow:serving:request_count",
            "The total number of requests.",
            ["model_name", "status"],
            registry=instruments,
        )
        self.request_latency = latency(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            "entrypoint",
        )
        self.runtime_latency = latency(
            ":tensorflow:serving:runtime_latency",
            "Distribution of wall time (in microseconds) for Tensorflow runtime.",
            "runtime",
        )
        self.load_attempts = Counter(
            ":tensorflow:cc:saved_model:load_attempt_count",
            "The number of times a SavedModel was successfully loaded.",
            ["model_path", "status"],
            registry=instruments,
        )
        #: What a scrape sees; a prometheus_client registry (e.g. for `get_sample_value`).
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_TFServingNames(instruments))

    def render(self) -> str:
        """Every metric in Prometheus text format 0.0.4, sorted by name, TF Serving's formatting."""
        lines: list[str] = []
        for family in sorted(self.registry.collect(), key=lambda family: family.name):
            if not family.samples:
                continue
            lines.append(f"# TYPE {family.name} {family.type}")
            for sample in family.samples:
                labels = _labels(sample.labels)
                lines.append(f"{sample.name}{{{labels}}} {_value(sample.name, sample.value)}")
        return "\n".join(lines) + "\n"


#: The process-wide metrics, as TensorFlow's monitoring registry is.
METRICS = Metrics()


def record_request(model: str, code: str, api: str, entrypoint: str, microseconds: float) -> None:
    """One finished request: its status count, and (when OK) its latency."""
    METRICS.request_count.labels(model, code).inc()
    if code == "OK":
        METRICS.request_latency.labels(model, api, entrypoint).observe(microseconds)


def record_runtime(model: str, api: str, microseconds: float) -> None:
    """The session run time of one request (TF Serving's runtime_latency, runtime "TF1")."""
    METRICS.runtime_latency.labels(model, api, "TF1").observe(microseconds)


def record_load(path: str, ok: bool) -> None:
    """One SavedModel load attempt."""
    METRICS.load_attempts.labels(path, "success" if ok else "fail").inc()
