"""Comparing the exported signatures with the model run under the Keras backend it was trained on.

The exporter always runs Keras on TensorFlow. A model trained under JAX (or PyTorch) computes the
same functions there up to floating-point order; `parity_errors` measures by how much: a child
process with KERAS_BACKEND set to the original backend loads the same file, cuts the same layers,
runs every signature on the inputs verification used, and the outputs are compared with
TensorFlow's. Signatures with heads are compared before their head ops (the heads are TensorFlow's).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layertap.errors import UsageError, VerificationError
from layertap.exporter.source import ModelSource
from layertap.exporter.truncate import Signature

__all__ = ["BACKENDS", "PARITY_TOLERANCE", "check_parity_request", "parity_errors"]

logger = logging.getLogger(__name__)

BACKENDS = ("jax", "torch", "tensorflow")
# Max abs error over the output's scale accepted between two backends (float32 summation order).
PARITY_TOLERANCE = 1e-4
_BACKEND_MODULES = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}


def check_parity_request(model_or_path: Any, backend: str | None) -> None:
    """Refuse, before any work, a parity check that cannot run (nothing to check when None).

    Raises:
        UsageError: an unknown backend, or a model given in memory (the child process loads a file).
    """
    if backend is None:
        return
    if backend not in BACKENDS:
        raise UsageError(f"unknown Keras backend {backend!r} for parity; accepted: {', '.join(BACKENDS)}")
    if not isinstance(model_or_path, str | os.PathLike):
        raise UsageError(
            f"parity with the {backend} backend runs the model file in another process; pass the "
            ".keras file, not a model in memory"
        )


def parity_errors(
    source: ModelSource,
    signatures: Sequence[Signature],
    references: Mapping[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]],
    *,
    backend: str,
) -> dict[str, float]:
    """Max relative error per signature between TensorFlow's outputs and `backend`'s.

    Args:
        source: the model file and how it loads (the child process loads it again).
        signatures: the exported signatures (those without heads are compared).
        references: verification's {key: (inputs, TensorFlow outputs)}.
        backend: the Keras backend to compare with ("jax", "torch").

    Raises:
        UsageError: an unknown backend, or one that is not installed.
        VerificationError: the backend's process fails, or an output differs by more than
            PARITY_TOLERANCE.
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown Keras backend {backend!r}; accepted: {', '.join(BACKENDS)}")
    compared = [s for s in signatures if not s.heads]
    with tempfile.TemporaryDirectory(prefix="layertap-parity-") as scratch:
        folder = Path(scratch)
        inputs = {
            alias: array for key in (s.key for s in compared) for alias, array in references[key][0].items()
        }
        np.savez(folder / "inputs.npz", **inputs)  # type: ignore[arg-type]
        job = {
            "source": source.to_json(),
            "signatures": {
                s.key: {"specs": list(s.layers), "aliases": list(s.output_aliases)} for s in compared
            },
            "inputs": {s.key: list(s.input_aliases) for s in compared},
            "out": str(folder / "outputs.npz"),
        }
        (folder / "job.json").write_text(json.dumps(job), encoding="utf-8")
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(
            [sys.executable, "-m", "layertap.exporter.parity", str(folder / "job.json")],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            if "No module named" in last and _BACKEND_MODULES[backend] in last:
                raise UsageError(f"--parity-backend {backend}: {backend} is not installed ({last})")
            raise VerificationError(f"running the model under the {backend} backend failed: {last}")
        with np.load(folder / "outputs.npz", allow_pickle=False) as saved:
            theirs = {name: saved[name] for name in saved.files}
    from layertap.exporter.verify import relative_error

    errors: dict[str, float] = {}
    for signature in compared:
        worst = 0.0
        for alias, ours in references[signature.key][1].items():
            deviation = relative_error(theirs[f"{signature.key}\x1f{alias}"], ours)
            if not deviation <= PARITY_TOLERANCE:
                raise VerificationError(
                    f"signature {signature.key!r} output {alias!r} under the {backend} backend differs from "
                    f"TensorFlow by {deviation:.3g} of the output's scale (accepted: {PARITY_TOLERANCE:g})"
                )
            worst = max(worst, deviation)
        errors[signature.key] = worst
    return errors


def _child(job_file: Path) -> None:
    """In the child process (KERAS_BACKEND already set): run every signature, save the outputs."""
    job: dict[str, Any] = json.loads(job_file.read_text(encoding="utf-8"))
    import keras

    from layertap.exporter import specs as layer_specs
    from layertap.exporter.truncate import tensors_for

    # The backend is the one KERAS_BACKEND names, not TensorFlow: that is the point of the check.
    model = ModelSource.from_json(job["source"]).load(tensorflow_backend=False)
    with np.load(Path(job["out"]).with_name("inputs.npz"), allow_pickle=False) as saved:
        inputs = {name: saved[name] for name in saved.files}
    outputs: dict[str, np.ndarray] = {}
    by_alias = {_alias(tensor): tensor for tensor in model.inputs}
    for key, planned in job["signatures"].items():
        # serving_default (no layer specs) is the whole model.
        tensors = [t for spec in planned["specs"] for t in tensors_for(layer_specs.resolve(model, spec))]
        tensors = tensors or list(model.outputs)
        aliases = job["inputs"][key]
        sub = keras.Model([by_alias[alias] for alias in aliases], tensors)
        values = sub([inputs[alias] for alias in aliases], training=False)
        values = values if isinstance(values, list | tuple) else [values]
        for alias, value in zip(planned["aliases"], values, strict=True):
            outputs[f"{key}\x1f{alias}"] = np.asarray(keras.ops.convert_to_numpy(value))
    np.savez(job["out"], **outputs)  # type: ignore[arg-type]


def _alias(tensor: Any) -> str:
    from layertap.exporter import _graph
    from layertap.names import tensorflow_name

    return tensorflow_name(_graph.input_alias(tensor))


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
