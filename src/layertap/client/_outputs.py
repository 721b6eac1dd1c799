"""What `LayerClient.predict` returns: arrays by layer, stamped with the version and space that made them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["LayerOutputs"]


class LayerOutputs(dict[str, np.ndarray]):
    """Arrays by layer name (a dict), with where they come from.

    Attributes:
        version: the model version that answered (TF Serving names it in every Predict answer), or None
            when the server named none.
        spaces: layer name -> the embedding-space id of the signature that computed it, from the
            catalogue the client caches (no extra request); None for a layer whose signature carries
            no id, or when the answering version is not the one the catalogue describes.

    Store `version` and `spaces[layer]` with every vector: vectors of two spaces must never be
    compared, and a space id says so even when shapes and dtypes agree.
    """

    def __init__(
        self, arrays: Mapping[str, np.ndarray], *, version: int | None, spaces: Mapping[str, str | None]
    ) -> None:
        super().__init__(arrays)
        self.version = version
        self.spaces = dict(spaces)

    def __repr__(self) -> str:
        return f"LayerOutputs({dict.__repr__(self)}, version={self.version!r}, spaces={self.spaces!r})"
