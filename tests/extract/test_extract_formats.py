"""Every input format gives the Keras model's own features, in-process and from `layertap serve`.

Each test writes the same digits in one format, extracts conv_2 and flatten from the exported CNN
both ways, and checks: ids name the source records in order, the in-process and served features are
bit-identical (the same session path), and both equal Keras' outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from layertap.extract import ImagePreprocessing, extract
from tests.extract.conftest import CNN_LAYERS, SENTENCES, column, keras_features
from tests.fixtures.local_serving import version_dir

SHAPES = {"conv_2": (11, 11, 64), "flatten": (1600,)}
# The session path and eager Keras compute the same convolutions with different kernels/orders.
TOLERANCE = 2e-5


def both(tmp_path: Path, inputs: Any, export: Any, target: str, layers: list[str], **reading: Any) -> Any:
    """Extract in-process and remotely; returns (in-process table, remote table)."""
    import pyarrow.parquet as pq

    local = extract(
        inputs, layers, tmp_path / "local", version_dir=version_dir(export), batch_size=16, **reading
    )
    remote = extract(
        inputs, layers, tmp_path / "remote", targets=[target], model=export.name, batch_size=16, **reading
    )
    assert (local.model, local.version) == (remote.model, remote.version) == (export.name, 1)
    tables = pq.read_table(tmp_path / "local"), pq.read_table(tmp_path / "remote")
    assert tables[0].column("id").to_pylist() == tables[1].column("id").to_pylist()
    for name in layers:
        assert tables[0].column(name).equals(tables[1].column(name)), name
    return tables


def check_cnn(table: Any, cnn: Any, images: np.ndarray, ids: list[str]) -> None:
    assert table.column("id").to_pylist() == ids
    expected = keras_features(cnn, images, CNN_LAYERS)
    for name in CNN_LAYERS:
        np.testing.assert_allclose(column(table, name, SHAPES[name]), expected[name], atol=TOLERANCE)


def test_npy(
    tmp_path: Path, untrained_tutorial_cnn: Any, cnn_export: Any, cnn_target: str, digits: np.ndarray
) -> None:
    np.save(tmp_path / "digits.npy", digits)
    local, remote = both(tmp_path, tmp_path / "digits.npy", cnn_export, cnn_target, CNN_LAYERS)
    check_cnn(local, untrained_tutorial_cnn, digits, [f"digits.npy:{i}" for i in range(40)])
    metadata = json.loads(local.schema.metadata[b"layertap"])
    assert metadata["model"] == "digits" and metadata["version"] == 1
    # The space ids the exporter stamped, read in-process and from the server alike.
    assert metadata["spaces"] == {name: cnn_export.signatures[name].space for name in CNN_LAYERS}
    assert metadata["spaces"]["conv_2"].startswith("sha256:")
    assert json.loads(remote.schema.metadata[b"layertap"])["spaces"] == metadata["spaces"]
    assert metadata["outputs"]["conv_2"] == {"signature": "conv_2", "shape": [11, 11, 64], "dtype": "float32"}
    assert str(local.schema.field("conv_2").type) == "fixed_size_list<element: float>[7744]"


def test_npz_of_two_files(
    tmp_path: Path, untrained_tutorial_cnn: Any, cnn_export: Any, cnn_target: str, digits: np.ndarray
) -> None:
    np.savez(tmp_path / "a.npz", images=digits[:25])
    np.savez(tmp_path / "b.npz", images=digits[25:])
    local, _ = both(
        tmp_path,
        [tmp_path / "b.npz", tmp_path / "a.npz"],
        cnn_export,
        cnn_target,
        CNN_LAYERS,
        npz_key="images",
    )
    # Files are read in sorted order, whatever order they were given in.
    ids = [f"a.npz:{i}" for i in range(25)] + [f"b.npz:{i}" for i in range(15)]
    check_cnn(local, untrained_tutorial_cnn, digits, ids)


def test_image_folder(
    tmp_path: Path, untrained_tutorial_cnn: Any, cnn_export: Any, cnn_target: str, digits: np.ndarray
) -> None:
    from PIL import Image

    folder = tmp_path / "images"
    (folder / "b").mkdir(parents=True)
    pixels = np.round(digits[:12, :, :, 0] * 255).astype(np.uint8)
    names = []
    for index, image in enumerate(pixels):
        picture = Image.fromarray(image, mode="L")
        if index % 4 == 0:
            picture = picture.resize((56, 40)).convert("RGB")  # another size, colour: converted, resized
        name = f"{'b/' if index % 2 else ''}{index:02d}.png"
        picture.save(folder / name)
        names.append(name)
    (folder / "notes.md").write_text("not an image: ignored, as a non-image file in a folder of images")
    local, _ = both(
        tmp_path, folder, cnn_export, cnn_target, CNN_LAYERS, preprocessing=ImagePreprocessing(scale=1 / 255)
    )
    # The reference decodes independently: Pillow, grayscale, bilinear resize to 28x28, / 255.
    expected_images = []
    for name in sorted(names):
        with Image.open(folder / name) as image:
            gray = image.convert("L")
            if gray.size != (28, 28):
                gray = gray.resize((28, 28), Image.Resampling.BILINEAR)
            expected_images.append(np.asarray(gray, dtype=np.float32)[:, :, None] * np.float32(1 / 255))
    check_cnn(local, untrained_tutorial_cnn, np.stack(expected_images), sorted(names))


def test_parquet_columns(
    tmp_path: Path, untrained_tutorial_cnn: Any, cnn_export: Any, cnn_target: str, digits: np.ndarray
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {"key": [f"digit-{i}" for i in range(40)], "pixels": [row.reshape(-1).tolist() for row in digits]}
    )
    pq.write_table(table, tmp_path / "rows.parquet", row_group_size=16)
    local, _ = both(
        tmp_path,
        tmp_path / "rows.parquet",
        cnn_export,
        cnn_target,
        CNN_LAYERS,
        columns=["pixels"],
        id_column="key",
    )
    check_cnn(local, untrained_tutorial_cnn, digits, [f"digit-{i}" for i in range(40)])


def test_csv_column(
    tmp_path: Path, untrained_tutorial_cnn: Any, cnn_export: Any, cnn_target: str, digits: np.ndarray
) -> None:
    lines = ["name,pixels"] + [
        f"d{i}," + " ".join(format(float(v), ".9g") for v in row.reshape(-1)) for i, row in enumerate(digits)
    ]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    local, _ = both(
        tmp_path,
        tmp_path / "rows.csv",
        cnn_export,
        cnn_target,
        CNN_LAYERS,
        columns=["pixels"],
        id_column="name",
    )
    check_cnn(local, untrained_tutorial_cnn, digits, [f"d{i}" for i in range(40)])


def test_tfrecord_feature(
    tmp_path: Path, untrained_tutorial_cnn: Any, cnn_export: Any, cnn_target: str, digits: np.ndarray
) -> None:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(tmp_path / "digits.tfrecord")) as writer:
        for row in digits:
            feature = tf.train.Feature(float_list=tf.train.FloatList(value=row.reshape(-1)))
            example = tf.train.Example(features=tf.train.Features(feature={"image": feature}))
            writer.write(example.SerializeToString())
    local, _ = both(
        tmp_path, tmp_path / "digits.tfrecord", cnn_export, cnn_target, CNN_LAYERS, feature="image"
    )
    check_cnn(local, untrained_tutorial_cnn, digits, [f"digits.tfrecord:{i}" for i in range(40)])


def test_text_lines(tmp_path: Path, text_model: Any, text_export: Any) -> None:
    from tests.fixtures.local_serving import serving

    (tmp_path / "sentences.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    with serving(text_export) as target:
        local, _ = both(tmp_path, tmp_path / "sentences.txt", text_export, target, ["text_pool"])
    assert local.column("id").to_pylist() == [f"sentences.txt:{i}" for i in range(1, 6)]
    expected = keras_features(text_model, np.array(SENTENCES, dtype=object), ["text_pool"])["text_pool"]
    np.testing.assert_allclose(column(local, "text_pool", (4,)), expected, atol=1e-6)


def check_npy_output(tmp_path: Path, cnn: Any, digits: np.ndarray, **runner: Any) -> None:
    np.save(tmp_path / "digits.npy", digits[:10])
    summary = extract(tmp_path / "digits.npy", ["conv_2"], tmp_path / "out", output_format="npy", **runner)
    assert (summary.rows, summary.rejected) == (10, 0)
    expected = keras_features(cnn, digits[:10], ["conv_2"])["conv_2"]
    np.testing.assert_allclose(np.load(tmp_path / "out" / "conv_2.npy"), expected, atol=TOLERANCE)
    assert (tmp_path / "out" / "ids.txt").read_text().split() == [f"digits.npy:{i}" for i in range(10)]


def test_npy_output_in_process(
    tmp_path: Path, untrained_tutorial_cnn: Any, cnn_export: Any, digits: np.ndarray
) -> None:
    check_npy_output(tmp_path, untrained_tutorial_cnn, digits, version_dir=version_dir(cnn_export))


def test_npy_output_remote(
    tmp_path: Path, untrained_tutorial_cnn: Any, cnn_target: str, digits: np.ndarray
) -> None:
    check_npy_output(tmp_path, untrained_tutorial_cnn, digits, targets=[cnn_target], model="digits")
