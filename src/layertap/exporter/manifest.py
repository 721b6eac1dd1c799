"""`assets.extra/layertap.json`: what a version serves, for people and for `layertap` tools.

Built here from the Keras model; read and written by `layertap.version_folder`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from layertap import __version__
from layertap.exporter.flops import graph_flops
from layertap.exporter.heads import bytes_per_example
from layertap.exporter.truncate import Signature
from layertap.names import original_name
from layertap.version_folder import MANIFEST_FORMAT

__all__ = ["build_manifest"]


def _tensor_entries(specs: Sequence[tuple[str, tuple[int | None, ...], str]]) -> dict[str, Any]:
    return {alias: {"shape": list(shape), "dtype": dtype} for alias, shape, dtype in specs}


def build_manifest(
    model: Any,
    signatures: Sequence[Signature],
    *,
    name: str,
    version: int,
    max_errors: Mapping[str, float],
    spaces: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest as a JSON-ready dict.

    `layers` maps each exported layer key to the signatures that return it; `signatures` gives
    each signature's input/output aliases with shapes (batch as null) and dtypes, the parameters
    it uses, its estimated FLOPs per sample, the head ops of each output computed by a head,
    the output bytes per example (per alias, and their sum; null where a dimension is open), and its
    embedding-space id (`layertap.exporter.space`; null when not computed).
    """
    import keras
    import tensorflow as tf

    layers: dict[str, list[str]] = {}
    for signature in signatures:
        for key in signature.layers:
            layers.setdefault(key, []).append(signature.key)
    return {
        "format": MANIFEST_FORMAT,
        "model": {
            "name": name,
            "version": version,
            "keras_name": model.name,
            "parameters": int(model.count_params()),
            "flops": graph_flops(list(model.outputs)),
        },
        "layers": layers,
        # Keys and aliases that stand for a name TensorFlow refuses (`block 2`): key -> name.
        "names": _original_names(signatures),
        "signatures": {
            signature.key: {
                "inputs": _tensor_entries(signature.input_specs),
                "outputs": _tensor_entries(signature.output_specs),
                "layers": list(signature.layers),
                "parameters": int(signature.model.count_params()),
                "flops": graph_flops(list(signature.model.outputs)),
                "heads": _heads(signature),
                "output_bytes_per_example": _output_bytes(signature),
                "verification_max_error": max_errors.get(signature.key),
                "space": (spaces or {}).get(signature.key),
            }
            for signature in signatures
        },
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "layertap": __version__},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _heads(signature: Signature) -> dict[str, list[str]]:
    return {
        alias: [str(op) for op in head.ops]
        for position, alias in enumerate(signature.output_aliases)
        if (head := signature.head(position)) is not None
    }


def _output_bytes(signature: Signature) -> dict[str, Any]:
    per_alias = {alias: bytes_per_example(shape, dtype) for alias, shape, dtype in signature.output_specs}
    sizes = list(per_alias.values())
    total = None if any(size is None for size in sizes) else sum(size for size in sizes if size is not None)
    return {"outputs": per_alias, "total": total}


def _original_names(signatures: Sequence[Signature]) -> dict[str, str]:
    names: dict[str, str] = {}
    for signature in signatures:
        for key in (signature.key, *signature.input_aliases, *signature.output_aliases):
            if original_name(key) != key:
                names[key] = original_name(key)
    return dict(sorted(names.items()))
