"""Pictures of layer outputs, for people choosing a layer: `layertap predict ... --plot out.png`.

One panel per layer, titled with the layer, its shape and dtype, showing one example of the batch:
an image-like output (height, width, channels) as a grid of its first feature maps, a vector as a
heat strip, a sequence (steps, features) as a heat map. matplotlib (the `plot` extra) is imported
only here, only when a picture is asked for; it draws off-screen (Agg).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from layertap.errors import LayertapError, UsageError

__all__ = ["MAX_FEATURE_MAPS", "check_plot_path", "plot_outputs"]

# Feature maps drawn per image-like layer (the first ones): more would be too small to see.
MAX_FEATURE_MAPS = 16


def check_plot_path(path: Path) -> None:
    """Refuse a picture path that cannot be written as named, before any work is done."""
    if path.suffix.lower() != ".png":
        raise UsageError(f"--plot {path}: expected a file name ending in .png, got {path.suffix or 'none'!r}")
    if not path.parent.is_dir():
        raise UsageError(f"--plot {path}: the folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise UsageError(f"--plot {path}: is a directory; expected a .png file name")


def plot_outputs(outputs: Mapping[str, np.ndarray], path: Path, *, example: int = 0) -> Path:
    """Draw one panel per layer output (example `example` of the batch) into the PNG file `path`.

    Raises:
        UsageError: the path is not a writable .png, or the batch has no example `example`.
        LayertapError: the file could not be written.
    """
    check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(8, 2.6 * len(outputs)), layout="constrained")
    panels = figure.subfigures(len(outputs), 1, squeeze=False)[:, 0]
    for panel, (name, array) in zip(panels, outputs.items(), strict=True):
        if array.ndim == 0 or array.shape[0] <= example:
            raise UsageError(f"--plot: layer {name!r} has shape {list(array.shape)}, no example {example}")
        panel.suptitle(f"{name}   {list(array.shape)} {array.dtype}", fontsize=10)
        _draw(panel, np.asarray(array[example]))
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        figure.savefig(staging, format="png", dpi=80)
        staging.replace(path)
    except OSError as error:
        raise LayertapError(f"--plot {path}: cannot write it: {error.strerror}") from error
    finally:
        plt.close(figure)
        staging.unlink(missing_ok=True)
    return path


def _draw(panel: Any, values: np.ndarray) -> None:
    if values.dtype.kind not in "biuf":
        axes = panel.subplots()
        axes.axis("off")
        axes.text(0.5, 0.5, f"{values.dtype} values are not drawn", ha="center", va="center")
        return
    values = values.astype(np.float32)
    if values.ndim == 3:  # (height, width, channels): feature maps
        _feature_maps(panel, values)
        return
    axes = panel.subplots()
    if values.ndim <= 1:  # a vector: one heat strip
        image = axes.imshow(values.reshape(1, -1), aspect="auto", cmap="viridis", interpolation="nearest")
        axes.set_yticks([])
        axes.set_xlabel("feature")
    else:  # (steps, features), or anything longer flattened to it
        image = axes.imshow(
            values.reshape(values.shape[0], -1).T, aspect="auto", cmap="viridis", interpolation="nearest"
        )
        axes.set_xlabel("step")
        axes.set_ylabel("feature")
    panel.colorbar(image, ax=axes, shrink=0.8)


def _feature_maps(panel: Any, values: np.ndarray) -> None:
    count = min(values.shape[-1], MAX_FEATURE_MAPS)
    columns = min(count, 8)
    rows = math.ceil(count / columns)
    grid = panel.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(grid.flat):
        axes.axis("off")
        if index < count:
            axes.imshow(values[:, :, index], cmap="magma", interpolation="nearest")
            axes.set_title(str(index), fontsize=7)
