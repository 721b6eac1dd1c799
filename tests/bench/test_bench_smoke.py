"""The benchmark suite keeps working: every benchmark runs at tiny sizes and writes its results.

No timing is asserted here (speed figures belong to `make bench`); what is checked is that each
benchmark produced rows, evaluated its targets, and that the plots were drawn.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS

ROOT = Path(__file__).resolve().parents[2]


# The timeouts catch a hang, not slowness: on CI's two cores this runs beside the other xdist worker.
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_benchmark_runs_at_tiny_sizes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for name in BENCHMARKS:
        payload = json.loads((tmp_path / f"{name}.json").read_text())
        assert payload["rows"], name
        assert payload["machine"]["cpus"] >= 1
        for target in payload["targets"]:
            assert isinstance(target["met"], bool)
    assert (tmp_path / "codec_throughput.png").stat().st_size > 10_000
    assert (tmp_path / "latency_vs_concurrency.png").stat().st_size > 10_000
    end_to_end = json.loads((tmp_path / "end_to_end.json").read_text())
    paths = {row["path"] for row in end_to_end["rows"]}
    assert len(paths) == 3  # Keras in-process, layertap client, official stubs
