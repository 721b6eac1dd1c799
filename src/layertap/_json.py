"""A report dataclass as JSON-ready data: its fields in order, with the few that need converting replaced.

The `to_json` of compare, compat, the promotion gate and validate each listed every field by hand; a new
field was easy to forget there. No TensorFlow here: `layertap.config` uses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any

__all__ = ["json_fields"]


def json_fields(report: Any, *, skip: Collection[str] = (), **values: Any) -> dict[str, Any]:
    """The dataclass instance `report`'s fields by name, in declaration order, less `skip`.

    `values` replace the field of the same name where it stands (a converted value) and the rest are added
    at the end (computed properties).
    """
    result = {
        field.name: getattr(report, field.name)
        for field in dataclasses.fields(report)
        if field.name not in skip
    }
    result.update(values)
    return result
