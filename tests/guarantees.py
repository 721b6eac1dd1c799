"""Skips that would switch a guarantee off: allowed on a developer's machine, failures in CI.

A test that cannot run here (no tmpfs mount, no package registry, an extra not installed) may skip on a
laptop, but in CI the same skip would silently drop the guarantee it stands for while the run stays
green. With `LAYERTAP_REQUIRE_ALL=1` (set by `.ci/run`, and implied by `CI=true`) these helpers fail
the test instead, with the same reason.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

__all__ = ["import_or_skip", "required_everywhere", "skip_or_fail"]


def required_everywhere() -> bool:
    """True where every test must run: CI, or a developer who asked for it."""
    return os.environ.get("LAYERTAP_REQUIRE_ALL") == "1" or os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip with `reason`, or fail with it where every test must run."""
    if required_everywhere():
        pytest.fail(f"required test could not run (LAYERTAP_REQUIRE_ALL): {reason}", pytrace=False)
    pytest.skip(reason)


def import_or_skip(name: str) -> ModuleType:
    """`pytest.importorskip`, except that a missing module fails where every test must run."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        skip_or_fail(f"{name} is not installed: {error}")
        raise  # unreachable: skip_or_fail always raises
