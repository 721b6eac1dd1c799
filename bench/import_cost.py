"""1. Client import: `import layertap.client` vs the official stubs, in fresh processes."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from bench._harness import Report

# Run in a fresh interpreter: time the import itself and read the process's peak RSS afterwards.
_PROBE = """
import json, resource, sys, time
start = time.perf_counter()
exec(sys.argv[1])
seconds = time.perf_counter() - start
peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
loaded = "tensorflow" in sys.modules
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb, "tensorflow_loaded": loaded}))
"""

LAYERTAP = "import layertap.client"
OFFICIAL = "from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc"


def _probe(statement: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, statement], capture_output=True, text=True, check=True, timeout=300
    )
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def run(quick: bool = False) -> Report:
    report = Report("import_cost", "Client import: wall time and peak RSS in a fresh process")
    runs = 1 if quick else 5  # --quick: one fresh process each (the TensorFlow import is seconds of CPU)
    medians: dict[str, dict[str, float]] = {}
    for label, statement in (("layertap.client", LAYERTAP), ("tensorflow_serving.apis", OFFICIAL)):
        samples = [_probe(statement) for _ in range(runs)]
        seconds = statistics.median(s["seconds"] for s in samples)
        rss = statistics.median(s["peak_rss_mb"] for s in samples)
        medians[label] = {"seconds": seconds, "rss": rss}
        report.row(
            module=label,
            import_ms=round(seconds * 1000, 1),
            min_ms=round(min(s["seconds"] for s in samples) * 1000, 1),
            max_ms=round(max(s["seconds"] for s in samples) * 1000, 1),
            peak_rss_mb=round(rss, 1),
            tensorflow_loaded=any(s["tensorflow_loaded"] for s in samples),
            runs=runs,
        )
    ours, theirs = medians["layertap.client"], medians["tensorflow_serving.apis"]
    speedup = theirs["seconds"] / ours["seconds"]
    rss_ratio = ours["rss"] / theirs["rss"]
    report.target("import speed-up vs official stubs", speedup, ">= 10x", speedup >= 10)
    report.target("peak RSS ratio vs official stubs", rss_ratio, "<= 0.125", rss_ratio <= 0.125)
    report.target("layertap.client import seconds", ours["seconds"], "< 0.5", ours["seconds"] < 0.5)
    report.target("layertap.client peak RSS MB", ours["rss"], "< 80", ours["rss"] < 80)
    return report
