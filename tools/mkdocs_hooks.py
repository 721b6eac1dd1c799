"""mkdocs hooks: put the benchmark plots in the site where BENCHMARKS.md's links expect them.

BENCHMARKS.md lives at the repository root, where `make bench` writes its plots under bench/results/, and
docs/benchmarks.md includes it. Its image links (`bench/results/NAME.png`) are relative to the root; the page
sits at the root of the site, so the same links resolve once the plots are copied to the same relative path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
PLOTS = ROOT / "bench" / "results"


def on_files(files: Files, config: Any) -> Files:
    for plot in sorted(PLOTS.glob("*.png")):
        files.append(
            File(
                str(plot.relative_to(ROOT)),
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
