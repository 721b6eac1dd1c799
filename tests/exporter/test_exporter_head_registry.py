"""The head-op registry: every entry's declared output matches both implementations, and what is
generated from the registry (docs table, `export()` docstring, `--head` help) is current."""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from layertap.cli import EXIT_OK, main
from layertap.exporter.heads import HEAD_OPS, HeadOp, apply_numpy, apply_tf, fitting_ops, plan_head

ROOT = Path(__file__).resolve().parents[2]

# An input each op accepts, with a mask where the op reads one: (shape, dtype, argument, with mask).
_CASES: dict[str, tuple[tuple[int, ...], str, int | None, bool]] = {
    "gap": ((2, 5, 4, 3), "float32", None, False),
    "gmp": ((2, 5, 4, 3), "float32", None, False),
    "mean": ((2, 6, 3), "float32", None, True),
    "first": ((2, 6, 3), "float32", None, False),
    "last": ((2, 6, 3), "float32", None, True),
    "avgpool": ((2, 5, 7, 3), "float32", 2, False),
    "dims": ((2, 6, 5), "float32", 3, False),
    "l2": ((2, 5), "float32", None, False),
    "float16": ((2, 4), "float32", None, False),
    "bfloat16": ((2, 4), "float32", None, False),
}


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_head_docs", ROOT / "tools" / "gen_head_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_registered_op_has_a_case_here() -> None:
    assert list(HEAD_OPS) == list(_CASES)


@pytest.mark.parametrize("name", list(_CASES))
def test_both_implementations_output_what_the_entry_declares(name: str) -> None:
    import tensorflow as tf

    shape, dtype, argument, masked = _CASES[name]
    values = np.random.default_rng(3).normal(size=shape).astype(dtype)
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=bool) if masked else None
    ops = (HeadOp(name, argument),)
    planned = plan_head("h", "layer", (None, *shape[1:]), dtype, ops)
    reference = apply_numpy(values, mask, ops)
    computed = apply_tf(tf.constant(values), None if mask is None else tf.constant(mask), ops)
    result: Any = computed.numpy()
    assert (reference.shape, reference.dtype.name) == ((2, *planned.shape[1:]), planned.dtype)
    assert (result.shape, result.dtype.name) == ((2, *planned.shape[1:]), planned.dtype)
    np.testing.assert_allclose(result.astype(np.float64), reference.astype(np.float64), rtol=1e-2, atol=1e-6)
    assert HEAD_OPS[name].spelling in fitting_ops((None, *shape[1:]), dtype)


def test_masked_ops_ignore_padded_steps() -> None:
    values = np.arange(12, dtype=np.float32).reshape(1, 4, 3)
    mask = np.array([[1, 1, 0, 0]], dtype=bool)
    assert apply_numpy(values, mask, (HeadOp("mean"),)).tolist() == [[1.5, 2.5, 3.5]]
    assert apply_numpy(values, mask, (HeadOp("last"),)).tolist() == [[3.0, 4.0, 5.0]]


def test_generated_docs_and_docstring_are_current() -> None:
    assert _tool().stale() == []


def test_the_docs_table_has_a_row_per_op() -> None:
    page = (ROOT / "docs" / "heads.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [definition.spelling for definition in HEAD_OPS.values()]


def test_head_help_lists_every_op() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main(["export", "--help"])
    assert done.value.code == EXIT_OK
    text = " ".join(out.getvalue().split())
    assert (
        "on the server: gap, gmp, mean[=MASK_INPUT], first, last[=MASK_INPUT], avgpool=K, dims=N, l2, "
        "float16, bfloat16 (e.g." in text
    )
