"""Comparing real exports: identical, compatible and changed, with the space ids to match (the command's
output and exit codes: tests/cli/test_cli_compare.py)."""

from __future__ import annotations

from layertap.compare import Thresholds, compare_versions, open_version
from tests.fixtures.gate_repo import ROWS, SIGNATURES, Repo


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
