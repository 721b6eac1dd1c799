"""Images to model inputs: decode, convert to the input's channels, resize to its size, then preprocess.

How a user states the preprocessing (`ImagePreprocessing`, `--scale/--offset` or `--preprocess`):

1. decode with Pillow (PNG, JPEG, BMP, GIF's first frame, WebP, TIFF);
2. convert to grayscale ("L") when the input has 1 channel, to RGB when it has 3 (alpha is dropped);
3. resize to the input's height and width with bilinear filtering when the size differs (no crop, the
   aspect ratio is not kept), giving an HxWxC array of 0-255 values;
4. either `x * scale + offset` (default: scale 1, offset 0, i.e. raw 0-255 pixel values; `--scale
   0.00392156862745098` gives 0-1), or a function `MODULE:NAME` called on the float32 HxWxC array
   (e.g. `keras.applications.resnet50:preprocess_input`, which reorders to BGR and subtracts the
   ImageNet means), whose result is used as is;
5. cast to the input's dtype (uint8 inputs get the pixels unchanged when nothing else is asked).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layertap.errors import InvalidInputError, UsageError
from layertap.extract.records import InputSpec

__all__ = ["IMAGE_SUFFIXES", "ImagePreprocessing", "decode_image"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImagePreprocessing:
    """How decoded pixels become the model's input (see the module's docstring for the order).

    Args:
        scale, offset: `x * scale + offset` on the 0-255 pixels.
        function: "module:name" of a function taking and returning one HxWxC float32 array, or the
            function itself; replaces scale and offset.
    """

    scale: float = 1.0
    offset: float = 0.0
    function: str | Callable[[np.ndarray], Any] | None = None

    def __post_init__(self) -> None:
        if self.function is not None and (self.scale != 1.0 or self.offset != 0.0):
            raise UsageError(
                f"give either a preprocessing function or scale/offset, not both "
                f"(got function {self.function!r}, scale {self.scale}, offset {self.offset})"
            )
        if isinstance(self.function, str):
            module, _, name = self.function.partition(":")
            if not module or not name:
                raise UsageError(
                    f"a preprocessing function is named MODULE:NAME (e.g. "
                    f"keras.applications.resnet50:preprocess_input), got {self.function!r}"
                )

    def resolve(self) -> Callable[[np.ndarray], Any] | None:
        """The function itself, imported when named (raises UsageError when it cannot be)."""
        if self.function is None or callable(self.function):
            return self.function
        module_name, _, name = self.function.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as error:
            raise UsageError(f"cannot import preprocessing function {self.function!r}: {error}") from error
        if not callable(found):
            raise UsageError(f"preprocessing {self.function!r} is a {type(found).__name__}, not a function")
        return found  # type: ignore[no-any-return]

    @property
    def is_identity(self) -> bool:
        return self.function is None and self.scale == 1.0 and self.offset == 0.0


def decode_image(
    data: bytes | Path,
    spec: InputSpec,
    preprocessing: ImagePreprocessing,
    function: Callable[[np.ndarray], Any] | None = None,
) -> np.ndarray:
    """One image (encoded bytes or a file) as one example of `spec`.

    Raises:
        InvalidInputError: not an image Pillow can decode, or an input that is no HxWxC image.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    if len(spec.shape) != 3 or spec.shape[2] not in (1, 3) or spec.is_string:
        raise InvalidInputError(
            f"images feed an input of shape (height, width, 1 or 3 channels); input {spec.alias!r} "
            f"takes {spec.describe()}"
        )
    height, width, channels = spec.shape
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            # convert() copies even when the mode is already right: skipped then (most files).
            converted = image if image.mode == mode else image.convert(mode)
            if height is not None and width is not None and converted.size != (width, height):
                converted = converted.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(converted, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise InvalidInputError(f"not a decodable image: {error}") from error
    if channels == 1:
        pixels = pixels[:, :, np.newaxis]
    if preprocessing.is_identity and spec.dtype == np.uint8:
        return pixels
    if function is not None:
        values = np.asarray(function(pixels.astype(np.float32)))
    else:
        # One float32 array, scaled and shifted in place: the same values as x * scale + offset.
        values = np.multiply(pixels, np.float32(preprocessing.scale), dtype=np.float32)
        values += np.float32(preprocessing.offset)
    return values.astype(spec.dtype, copy=False)
