"""The Ray Data actor of docs/extract.md, taken from the page, called on batches shaped as Ray Data's
`read_images(mode="L", include_paths=True)` gives them, against `layertap serve`: its features equal
`layertap extract`'s for the same images.

Ray's own runtime is not started here: Ray 2.60's node does not come up on the shared 2-core test
machine (the raylet times out waiting for its metrics agent under load), so this tests the code the
page asks Ray to run, not Ray's scheduling of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.extract.conftest import CNN_LAYERS
from tests.test_readme import readme_blocks

DOCS = Path(__file__).resolve().parents[2] / "docs" / "extract.md"


def ray_actor_class() -> Any:
    (block,) = [b for b in readme_blocks(DOCS.read_text("utf-8")) if "ray.init()" in b.code]
    definitions = block.code.split("ray.init()")[0]  # the imports and the actor class
    namespace: dict[str, Any] = {}
    exec(compile(definitions, str(DOCS), "exec"), namespace)
    return namespace["Features"]


def test_the_documented_actor_gives_extracts_features(
    tmp_path: Path, cnn_target: str, digits: np.ndarray
) -> None:
    from PIL import Image

    from layertap.extract import ImagePreprocessing, extract

    pixels = np.round(digits[:10, :, :, 0] * 255).astype(np.uint8)
    (tmp_path / "digits").mkdir()
    for index, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / "digits" / f"{index}.png")
    actor = ray_actor_class()(cnn_target, "digits")
    paths = np.array([str(tmp_path / "digits" / f"{index}.png") for index in range(10)], dtype=object)
    rows = {}
    for start in (0, 6):  # two batches, as map_batches would hand them
        out = actor({"image": pixels[start : start + 6], "path": paths[start : start + 6]})
        rows.update({path: {name: out[name][i] for name in CNN_LAYERS} for i, path in enumerate(out["id"])})
    summary = extract(
        tmp_path / "digits", CNN_LAYERS, tmp_path / "out", targets=[cnn_target], model="digits",
        preprocessing=ImagePreprocessing(scale=1 / 255),
    )  # fmt: skip
    assert summary.rows == len(rows) == 10
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out")
    for name in CNN_LAYERS:
        expected = table.column(name).combine_chunks().flatten().to_numpy().reshape(10, -1)
        # Ray's x / 255 and extract's x * (1/255) round differently in the last bit at most.
        for index, row in enumerate(expected):
            np.testing.assert_allclose(rows[str(tmp_path / "digits" / f"{index}.png")][name], row, atol=1e-5)
