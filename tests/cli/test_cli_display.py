"""What the commands print: shapes with one batch axis, the inspect legend."""

from __future__ import annotations

from layertap.cli.display import shape_text


def test_only_the_first_open_axis_is_the_batch() -> None:
    assert shape_text((None, None, 16)) == "(batch, ?, 16)"
    assert shape_text((None, 11, 11, 64)) == "(batch, 11, 11, 64)"
    assert shape_text((None,)) == "(batch,)"
    assert shape_text((3, None)) == "(3, ?)"
