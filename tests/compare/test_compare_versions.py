"""`layertap compare` on real exports: identical, compatible and changed, with the space ids to match."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from layertap.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from layertap.compare import Thresholds, compare_versions, open_version
from tests.fixtures.gate_repo import ROWS, Repo

SIGNATURES = ["a", "b", "serving_default", "vec"]


def _compare(repo: Repo, old: int, new: int) -> object:
    return compare_versions(open_version(repo.version(old)), open_version(repo.version(new)), rows=ROWS)


def test_the_same_model_exported_twice_is_identical_with_the_same_space_ids(gate_repo: Repo) -> None:
    comparison = _compare(gate_repo, 1, 2)
    assert {key: sig.verdict for key, sig in comparison.signatures.items()} == dict.fromkeys(
        SIGNATURES, "identical"
    )
    assert all(
        output.max_abs_difference == 0.0 for sig in comparison.signatures.values() for output in sig.outputs
    )
    assert gate_repo.spaces(1) == gate_repo.spaces(2)
    assert all(space.startswith("sha256:") and len(space) == 71 for space in gate_repo.spaces(1).values())
    assert {result.space for result in gate_repo.results[1].signatures.values()} == set(
        gate_repo.spaces(1).values()
    )
    assert comparison.changed == []
    assert comparison.warnings == ()
    # ...and the export recorded the same verdict against version 1.
    recorded = gate_repo.manifest(2)["comparison"]
    assert recorded["old"] == {"location": str(gate_repo.version(1)), "version": 1}
    assert {key: sig["verdict"] for key, sig in recorded["signatures"].items()} == dict.fromkeys(
        SIGNATURES, "identical"
    )


def test_weights_nudged_by_a_fine_tune_are_compatible_in_a_new_space(gate_repo: Repo) -> None:
    comparison = _compare(gate_repo, 1, 3)
    assert {key: sig.verdict for key, sig in comparison.signatures.items()} == dict.fromkeys(
        SIGNATURES, "compatible"
    )
    for signature in comparison.signatures.values():
        (output,) = signature.outputs
        assert output.mean_cosine is not None and output.mean_cosine >= 0.99
        assert output.neighbour_overlap is not None and output.neighbour_overlap >= 0.9
        assert output.max_abs_difference is not None and output.max_abs_difference > 0
        assert output.rows == ROWS and output.neighbours == 10
    old, new = gate_repo.spaces(1), gate_repo.spaces(3)
    assert all(old[key] != new[key] for key in SIGNATURES)
    # A threshold the nudge cannot meet turns the same numbers into `changed`.
    strict = compare_versions(
        open_version(gate_repo.version(1)),
        open_version(gate_repo.version(3)),
        rows=ROWS,
        thresholds=Thresholds(cosine=1.0),
    )
    assert strict.changed == SIGNATURES


def test_a_reinitialised_model_is_changed_and_its_spaces_differ(gate_repo: Repo) -> None:
    comparison = _compare(gate_repo, 1, 4)
    assert comparison.changed == SIGNATURES
    b = comparison.signatures["b"].outputs[0]
    assert b.mean_cosine is not None and b.mean_cosine < 0.9
    assert b.cka is not None and 0.0 < b.cka < 0.99
    assert "mean cosine" in comparison.signatures["b"].reason
    assert set(gate_repo.spaces(1).values()).isdisjoint(gate_repo.spaces(4).values())


def test_another_layer_under_the_same_signature_name_changes_that_signature_only(gate_repo: Repo) -> None:
    comparison = _compare(gate_repo, 1, 5)
    assert comparison.changed == ["vec"]
    assert {
        key: comparison.signatures[key].verdict for key in ("a", "b", "serving_default")
    } == dict.fromkeys(("a", "b", "serving_default"), "identical")
    old, new = gate_repo.spaces(1), gate_repo.spaces(5)
    assert old["vec"] != new["vec"]
    assert {key: old[key] for key in ("a", "b", "serving_default")} == {
        key: new[key] for key in ("a", "b", "serving_default")
    }


def test_a_removed_head_is_changed_but_not_shared(gate_repo: Repo) -> None:
    comparison = _compare(gate_repo, 1, 6)
    vec = comparison.signatures["vec"]
    assert (vec.verdict, vec.only_in, vec.reason) == (
        "changed",
        "old",
        "only the old version has this signature",
    )
    assert comparison.changed == []  # compare's exit code counts shared signatures only
    added = _compare(gate_repo, 6, 1).signatures["vec"]
    assert (added.verdict, added.only_in) == ("changed", "new")


def test_a_head_op_added_changes_the_dtype_and_the_space(gate_repo: Repo) -> None:
    comparison = _compare(gate_repo, 1, 7)
    vec = comparison.signatures["vec"]
    assert vec.verdict == "changed"
    assert vec.reason == "dtype changed: float32[?, 16] -> float16[?, 16]"
    assert vec.outputs[0].cka is not None and vec.outputs[0].cka > 0.999  # the same space, rounded
    assert comparison.changed == ["vec"]
    assert gate_repo.spaces(1)["vec"] != gate_repo.spaces(7)["vec"]


def test_cli_exit_codes_json_and_inputs(
    gate_repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new, other = (str(gate_repo.version(n)) for n in (1, 3, 4))
    assert main(["compare", old, new, "--rows", str(ROWS)]) == EXIT_OK
    table = capsys.readouterr().out
    assert "no shared signature changed" in table
    assert any(line.split()[:2] == ["vec", "compatible"] for line in table.splitlines())

    assert main(["compare", old, other, "--json", "--rows", str(ROWS)]) == EXIT_FAILURE
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] == SIGNATURES
    assert report["rows"] == ROWS
    assert report["signatures"]["b"]["outputs"]["b"]["new"] == {"shape": [ROWS, 16], "dtype": "float32"}

    rows = np.random.default_rng(3).standard_normal((12, 8)).astype(np.float32)
    np.save(tmp_path / "rows.npy", rows)
    assert main(["compare", old, new, "--inputs", str(tmp_path / "rows.npy"), "--json"]) == EXIT_OK
    captured = capsys.readouterr()
    assert json.loads(captured.out)["rows"] == 12
    assert "give at least 101 rows" in captured.err
    assert "share 91% of them by chance" in captured.err  # 10 / (12 - 1)


def test_cli_usage_errors_exit_2(gate_repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = str(gate_repo.version(1))
    assert main(["compare", old, str(tmp_path)]) == EXIT_USAGE
    assert "is not a version directory" in capsys.readouterr().err
    assert main(["compare", old, "s3://bucket/emb/2"]) == EXIT_USAGE
    assert "s3:// is not readable here" in capsys.readouterr().err
    assert main(["compare", "--target", "127.0.0.1:1", "1", "two", "--model", "emb"]) == EXIT_USAGE
    assert "version numbers" in capsys.readouterr().err
    assert main(["compare", "--target", "127.0.0.1:1", "1", "2"]) == EXIT_USAGE
    assert "--target needs --model" in capsys.readouterr().err
    np.save(tmp_path / "wide.npy", np.zeros((4, 9), np.float32))
    assert main(["compare", old, old, "--inputs", str(tmp_path / "wide.npy")]) == EXIT_USAGE
    assert "could not run the probe rows" in capsys.readouterr().err
