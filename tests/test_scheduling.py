"""The modules `tests/scheduling.py` starts first exist: a rename would otherwise silently send one last."""

from pathlib import Path

from tests.scheduling import LONGEST_FIRST

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_scheduled_first_exists_once() -> None:
    assert [module for module in LONGEST_FIRST if not (ROOT / module).is_file()] == []
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
