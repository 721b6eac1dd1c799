"""The plots BENCHMARKS.md shows, drawn from the JSON results of the latest run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def draw(results: Path) -> list[Path]:
    """Redraw every plot whose results exist; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    written = []
    codec = _load(results, "codec")
    if codec:
        written.append(_codec_throughput(codec, results / "codec_throughput.png"))
    end_to_end = _load(results, "end_to_end")
    if end_to_end:
        written.append(_latency_vs_concurrency(end_to_end, results / "latency_vs_concurrency.png"))
    return written


def _codec_throughput(codec: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    rows = [row for row in codec["rows"] if row["case"].startswith("float32")]
    sizes_mb = [_megabytes(row["case"].split()[1]) for row in rows]
    series = {
        "memcpy (floor)": "memcpy_ms",
        "layertap encode": "encode_ms",
        "tf.make_tensor_proto + serialize": "tf_encode_ms",
        "layertap decode (typed fields)": "decode_typed_ms",
        "layertap decode (tensor_content)": "decode_content_ms",
        "protobuf parse + np.frombuffer": "pb_frombuffer_ms",
        "parse + tf.make_ndarray (typed fields)": "tf_make_ndarray_typed_ms",
    }
    figure, axis = plt.subplots(figsize=(8, 5))
    for label, key in series.items():
        throughput = [size / 1024 / (row[key] / 1000) for size, row in zip(sizes_mb, rows, strict=True)]
        axis.plot(sizes_mb, throughput, marker="o", label=label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("tensor size (MB, float32)")
    axis.set_ylabel("throughput (GB/s, log)")
    axis.set_title("Tensor codec throughput (higher is better)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _latency_vs_concurrency(end_to_end: dict[str, Any], path: Path) -> Path:
    """One panel per model: p50 latency at batch 1 against concurrent callers, per client path;
    in-process Keras predict (one caller) as a dashed reference line."""
    import matplotlib.pyplot as plt

    rows = [row for row in end_to_end["rows"] if row.get("batch") == 1 and row.get("p50_ms") is not None]
    models = list(dict.fromkeys(row["model"] for row in rows))
    figure, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        series: dict[str, list[tuple[int, float]]] = {}
        for row in rows:
            if row["model"] == model:
                series.setdefault(row["path"], []).append((int(row["callers"]), float(row["p50_ms"])))
        for label, points in series.items():
            points.sort()
            if len(points) == 1:  # measured with one caller only: a reference line
                axis.axhline(points[0][1], linestyle="--", color="grey", label=f"{label}, 1 caller")
            else:
                axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("concurrent callers")
        axis.set_ylabel("p50 latency at batch 1 (ms, log)")
        axis.set_title(model)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle("End-to-end latency vs concurrency on loopback (lower is better)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _megabytes(label: str) -> float:
    units = {"KB": 1 / 1024, "MB": 1.0}
    for suffix, factor in units.items():
        if label.endswith(suffix):
            return float(label[: -len(suffix)]) * factor
    raise ValueError(f"size label {label!r}")
