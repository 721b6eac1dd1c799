"""One model repository with the versions the promotion gate must tell apart, exported once per session.

Model `emb`: x (8 values) -> Rescaling -> Dense `a` (16, tanh) -> Dense `b` (16, tanh) -> Dense `out` (3).
Every version exports the layers `a` and `b` and, except where said, the head `vec` = `b` then `l2`.

    1  the model
    2  the same model exported again (compared with 1 at export)
    3  every weight nudged by small noise, as one fine-tuning step would (compared with 1 at export)
    4  the same architecture, initialised again
    5  the same weights, `vec` computed from layer `a` instead of `b` (another layer, same signature name)
    6  the same weights, no head
    7  the same weights, `vec` = `b` then `l2,float16` (a head op added)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

MODEL = "emb"
ROWS = 128  # above rows_needed(10) = 101: the neighbour overlap means something


def build_model(seed: int, *, scale: float = 0.5, names: str = "") -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    x = keras.Input((8,), name="x")
    scaled = keras.layers.Rescaling(scale, name=f"scale{names}")(x)
    a = keras.layers.Dense(16, activation="tanh", name=f"a{names}")(scaled)
    b = keras.layers.Dense(16, activation="tanh", name=f"b{names}")(a)
    out = keras.layers.Dense(3, name=f"out{names}")(b)
    return keras.Model(x, out, name=f"emb{names}")


def nudged(model: Any, *, scale: float = 1e-3, seed: int = 5) -> Any:
    """A copy of `model` whose every weight moved by Gaussian noise of `scale` (a small fine-tune)."""
    import keras

    copy = keras.models.clone_model(model)
    rng = np.random.default_rng(seed)
    copy.set_weights([w + rng.normal(0.0, scale, w.shape).astype(w.dtype) for w in model.get_weights()])
    return copy


@dataclass(frozen=True)
class Repo:
    """The model's folder (`<base>/emb`) and each version's export result."""

    base: Path
    results: dict[int, Any]

    @property
    def path(self) -> Path:
        return self.base / MODEL

    def version(self, number: int) -> Path:
        return self.path / str(number)

    def manifest(self, number: int) -> dict[str, Any]:
        import json

        text = (self.version(number) / "assets.extra" / "layertap.json").read_text(encoding="utf-8")
        loaded: dict[str, Any] = json.loads(text)
        return loaded

    def spaces(self, number: int) -> dict[str, str]:
        return {key: entry["space"] for key, entry in self.manifest(number)["signatures"].items()}


@pytest.fixture(scope="session")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    from layertap.exporter import export

    base = tmp_path_factory.mktemp("gate_repo")
    model = build_model(1)
    head = {"vec": ("b", ["l2"])}

    def publish(number: int, exported: Any, **options: Any) -> Any:
        options.setdefault("heads", head)
        # Version 1 is verified through TF Serving's session loader (its SignatureDefs carry the space
        # ids); the others skip it, as these tests are about comparing them.
        options.setdefault("verify", number == 1)
        return export(exported, ["a", "b"], base_path=base, name=MODEL, version=number, **options)

    results = {
        1: publish(1, model),
        2: publish(2, model, compare_with=1),
        3: publish(3, nudged(model), compare_with=1),
        4: publish(4, build_model(2)),
        5: publish(5, model, heads={"vec": ("a", ["l2"])}),
        6: publish(6, model, heads={}),
        7: publish(7, model, heads={"vec": ("b", ["l2", "float16"])}),
    }
    return Repo(base, results)
