"""The numbers behind a verdict, on arrays whose answers are known (numpy only, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from layertap.compare import Thresholds, rows_needed
from layertap.compare.metrics import compare_outputs, worst
from layertap.errors import UsageError

RNG = np.random.default_rng(0)
ROWS = RNG.standard_normal((200, 16)).astype(np.float32)


def test_the_same_values_are_identical_with_every_metric_at_its_maximum() -> None:
    result = compare_outputs("v", ROWS, ROWS.copy(), Thresholds())
    assert (result.verdict, result.max_abs_difference, result.relative_difference) == ("identical", 0.0, 0.0)
    assert result.mean_cosine == pytest.approx(1.0, abs=1e-6)
    assert (result.neighbour_overlap, result.neighbours) == (1.0, 10)
    assert result.cka == pytest.approx(1.0, abs=1e-9)
    assert result.to_json()["old"] == {"shape": [200, 16], "dtype": "float32"}


def test_a_rotation_keeps_neighbours_and_cka_but_not_paired_dimensions() -> None:
    rotation, _ = np.linalg.qr(RNG.standard_normal((16, 16)))
    rotated = (ROWS @ rotation).astype(np.float32)
    result = compare_outputs("v", ROWS, rotated, Thresholds())
    assert result.verdict == "changed"
    assert result.neighbour_overlap == 1.0  # cosine similarities between rows are unchanged
    assert result.cka == pytest.approx(1.0, abs=1e-5)
    assert result.mean_cosine is not None and result.mean_cosine < 0.5
    assert result.reason == f"mean cosine {result.mean_cosine:.4f} < 0.99"


def test_small_noise_is_compatible_and_unrelated_rows_are_changed() -> None:
    noisy = ROWS + RNG.normal(0.0, 1e-3, ROWS.shape).astype(np.float32)
    assert compare_outputs("v", ROWS, noisy, Thresholds()).verdict == "compatible"
    unrelated = compare_outputs("v", ROWS, RNG.standard_normal(ROWS.shape).astype(np.float32), Thresholds())
    assert unrelated.verdict == "changed"
    assert unrelated.neighbour_overlap is not None and unrelated.neighbour_overlap < 0.2
    assert "10-neighbour overlap" in unrelated.reason


def test_shape_and_dtype_changes_are_changed_with_cka_still_measured() -> None:
    narrower = compare_outputs("v", ROWS, ROWS[:, :8].copy(), Thresholds())
    assert (narrower.verdict, narrower.reason) == (
        "changed",
        "shape changed: float32[?, 16] -> float32[?, 8]",
    )
    assert narrower.cka is not None and 0.3 < narrower.cka < 1.0
    assert narrower.mean_cosine is None
    half = compare_outputs("v", ROWS, ROWS.astype(np.float16), Thresholds())
    assert half.reason == "dtype changed: float32[?, 16] -> float16[?, 16]"
    assert half.cka == pytest.approx(1.0, abs=1e-5)


def test_integer_outputs_must_match_exactly_and_zero_rows_are_the_same_point() -> None:
    ids = np.arange(12).reshape(4, 3)
    assert compare_outputs("ids", ids, ids.copy(), Thresholds()).verdict == "identical"
    assert compare_outputs("ids", ids, ids + 1, Thresholds()).verdict == "changed"
    zeros = np.zeros((3, 4), np.float32)
    moved = zeros.copy()
    moved[0, 0] = 1.0
    result = compare_outputs("z", zeros, moved, Thresholds(k=1))
    assert result.mean_cosine == pytest.approx(2 / 3)  # two rows stay zero (same point), one is new


def test_thresholds_rows_needed_and_worst() -> None:
    assert rows_needed(10) == 101
    assert worst(["identical", "changed", "compatible"]) == "changed"
    assert worst([]) == "identical"
    strict = compare_outputs("v", ROWS, ROWS * 1.001, Thresholds(cosine=1.0, neighbours=1.0, k=3))
    assert strict.neighbours == 3
    for bad in ({"cosine": 1.5}, {"neighbours": -0.1}, {"k": 0}):
        with pytest.raises(UsageError):
            Thresholds(**bad)  # type: ignore[arg-type]
