"""Space ids from values and structure: names never enter, preprocessing, layers and heads do."""

from __future__ import annotations

from typing import Any

from layertap.exporter import specs
from layertap.exporter.heads import parse_ops
from layertap.exporter.space import space_identities
from layertap.exporter.truncate import HeadRef, plan_signatures
from tests.fixtures.gate_repo import build_model


def _spaces(model: Any, suffix: str = "", head_ops: str = "l2") -> list[str]:
    """serving_default, a, b, then the head on b: ids in that order (keys follow the layer names)."""
    refs = [specs.resolve(model, f"a{suffix}"), specs.resolve(model, f"b{suffix}")]
    head = HeadRef(name="vec", ref=specs.resolve(model, f"b{suffix}"), ops=parse_ops(head_ops))
    return list(space_identities(plan_signatures(model, refs, {}, [head])).values())


def test_the_same_weights_under_other_names_share_every_id() -> None:
    assert _spaces(build_model(1)) == _spaces(build_model(1, names="_renamed"), "_renamed")


def test_preprocessing_a_head_op_and_the_weights_each_change_the_ids_they_reach() -> None:
    base = _spaces(build_model(1))
    rescaled = _spaces(build_model(1, scale=0.25))
    assert all(mine != theirs for mine, theirs in zip(base, rescaled, strict=True))  # upstream of all
    other_head = _spaces(build_model(1), head_ops="l2,float16")
    assert [m == t for m, t in zip(base, other_head, strict=True)] == [True, True, True, False]
    model = build_model(1)
    kernel = model.get_layer("out").kernel
    kernel.assign(kernel.numpy() + 1e-6)
    # Only serving_default reads `out`; a, b and the head are computed before it.
    assert [m == t for m, t in zip(base, _spaces(model), strict=True)] == [False, True, True, True]
