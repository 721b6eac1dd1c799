"""Regenerate the head-op lists written from `layertap.exporter.heads.registry` into the docs and sources.

Two places list every head op for readers who never run the code: the table of docs/heads.md and the
`heads` argument of `export()`'s docstring (which the API reference renders). Both are written from the
registry, between the markers below; the `--head` help is built from the registry at run time.

Usage: python tools/gen_head_docs.py [--check]
  --check  exit 1 if a committed file differs from what would be generated (used by the tests).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from layertap.exporter.heads.registry import docs_table, docstring_lines  # noqa: E402

TABLE_PAGE = ROOT / "docs" / "heads.md"
TABLE_BEGIN = "<!-- head ops: generated from layertap.exporter.heads.registry by tools/gen_head_docs.py -->"
TABLE_END = "<!-- end of the generated head ops -->"
DOCSTRING_FILE = ROOT / "src" / "layertap" / "exporter" / "api.py"
# The docstring block follows this line and ends where the indentation falls back.
DOCSTRING_MARKER = "Ops (generated from the head-op registry by tools/gen_head_docs.py):"


def _table(text: str) -> str:
    lines = text.splitlines()
    begin, end = lines.index(TABLE_BEGIN), lines.index(TABLE_END)
    # Blank lines around the table: Markdown would read it as part of an HTML block that touched it.
    return "\n".join([*lines[: begin + 1], "", *docs_table(), "", *lines[end:]]) + "\n"


def _docstring(text: str) -> str:
    lines = text.splitlines()
    marker = next(i for i, line in enumerate(lines) if line.rstrip().endswith(DOCSTRING_MARKER))
    outer = len(lines[marker]) - len(lines[marker].lstrip())
    end = marker + 1
    while end < len(lines) and lines[end].strip() and len(lines[end]) - len(lines[end].lstrip()) > outer:
        end += 1
    block = docstring_lines(" " * (outer + 4))
    return "\n".join([*lines[: marker + 1], *block, *lines[end:]]) + "\n"


def generated() -> dict[Path, str]:
    """Each target file as it should read."""
    return {
        TABLE_PAGE: _table(TABLE_PAGE.read_text(encoding="utf-8")),
        DOCSTRING_FILE: _docstring(DOCSTRING_FILE.read_text(encoding="utf-8")),
    }


def stale() -> list[Path]:
    """The target files that differ from what would be generated."""
    return [path for path, text in generated().items() if path.read_text(encoding="utf-8") != text]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is not current")
    args = parser.parse_args()
    if args.check:
        outdated = stale()
        for path in outdated:
            print(
                f"{path.relative_to(ROOT)} is not current: run python tools/gen_head_docs.py", file=sys.stderr
            )
        return 1 if outdated else 0
    for path, text in generated().items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
