"""`layertap._json.json_fields`: a report dataclass as JSON-ready data, fields in order."""

from __future__ import annotations

from dataclasses import dataclass

from layertap._json import json_fields


@dataclass(frozen=True)
class _Report:
    path: str
    shape: tuple[int, ...]
    internal: int
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.note is None


def test_fields_in_order_with_replacements_in_place_and_additions_last() -> None:
    report = _Report("m/1", (2, 3), 7)
    data = json_fields(report, skip=("internal",), shape=list(report.shape), ok=report.ok)
    assert list(data.items()) == [("path", "m/1"), ("shape", [2, 3]), ("note", None), ("ok", True)]
    assert json_fields(report) == {"path": "m/1", "shape": (2, 3), "internal": 7, "note": None}
