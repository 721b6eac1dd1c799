"""Run the benchmarks: `python -m bench [--quick] [--only NAME ...] [--results DIR]`.

Writes one JSON file per benchmark to bench/results/ (or --results), prints each table, and redraws
the plots BENCHMARKS.md shows. `--quick` runs every benchmark at tiny sizes (the smoke test uses it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

from bench._harness import RESULTS_DIR

# Order matters only for reading: cheap and TensorFlow-free first.
BENCHMARKS = [
    "import_cost",
    "codec",
    "export_size",
    "truncation",
    "end_to_end",
    "multi_layer",
    "heads",
    "compare",
    "publishing",
    "all_layers",
    "extract",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repetitions (smoke test)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON files go")
    parser.add_argument("--no-plots", action="store_true", help="do not redraw bench/results/*.png")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    reports = []
    for name in args.only or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        report = module.run(quick=args.quick)
        report.notes.append(f"benchmark wall time {time.perf_counter() - started:.1f} s")
        path = report.write(args.results)
        print(report.table() + f"\n(written to {path})\n", flush=True)
        reports.append(report)
    if not args.no_plots:
        from bench import plots

        for path in plots.draw(args.results):
            print(f"plot: {path}")
    missed = [t for r in reports for t in r.targets if not t["met"]]
    if missed:
        print(f"{len(missed)} target(s) missed; see BENCHMARKS.md for why.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
