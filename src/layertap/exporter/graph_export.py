"""`export()` and `inspect` for a SavedModel with no Keras model behind it (`sources.savedmodel_graph`).

The new version is verified through the session loader, the path TF Serving's C++ loader takes: every
original signature must return what the original SavedModel returns (loaded by the same loader) on the
same random inputs, and every added signature what the original graph computes for that tensor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from layertap.errors import UsageError, VerificationError
from layertap.exporter.remote import open_repository
from layertap.exporter.request import ExportRequest
from layertap.exporter.result import ExportResult, SignatureInfo, Sizes
from layertap.exporter.samples import sample_inputs
from layertap.exporter.sources import savedmodel_graph
from layertap.exporter.sources.savedmodel_graph import GraphTensor, GraphVersion
from layertap.exporter.verify import loaded_session

__all__ = ["export_graph", "inspect_savedmodel", "is_graph_savedmodel"]

_BATCH = 3


def is_graph_savedmodel(model_or_path: Any) -> bool:
    """A path to a SavedModel directory that is not a Keras 2 model (those convert to Keras instead)."""
    from layertap.exporter.source import ModelSource

    return isinstance(model_or_path, str | Path) and ModelSource(model_or_path).is_graph_savedmodel


def inspect_savedmodel(path: Path | str) -> list[GraphTensor]:
    """The inner tensors of a SavedModel's signatures that `export(path, [NAME, ...])` can add."""
    return savedmodel_graph.list_tensors(Path(path))


def export_graph(request: ExportRequest, *, progress: Callable[[str], None]) -> ExportResult:
    """Publish the request's SavedModel with a signature per tensor (`request.layers`) added, as a new
    version of `<base_path>/<name>`."""
    path, tensors, name, version = Path(request.source.model), request.layers, request.name, request.version
    if not tensors:
        raise UsageError(f"nothing to export: give --layer TENSOR (`layertap inspect {path}` lists them)")
    started = time.perf_counter()
    repository = open_repository(request.base_path, name, report=progress)
    repository.check(version)
    reservation = repository.reserve(version)
    try:
        progress(f"adding {len(tensors)} signature(s) to {path} in {reservation.staging}")
        written = savedmodel_graph.write_version(
            path, [str(t) for t in tensors], reservation.staging, progress
        )
        try:
            max_errors = (
                _verify(path, reservation.staging, written, seed=request.seed, progress=progress)
                if request.verify
                else {}
            )
        finally:
            written.close()
        progress(f"publishing version {reservation.version}")
        final = repository.publish(reservation)
    except BaseException:
        repository.abandon(reservation)
        raise
    return ExportResult(
        name=name,
        version=reservation.version,
        path=final,
        signatures={
            key: SignatureInfo(
                key=key, inputs=inputs, outputs=outputs, layers=(key,) if key in written.added else ()
            )
            for key, (inputs, outputs) in written.signatures.items()
        },
        max_errors=max_errors,
        sizes=Sizes(variables_bytes=written.variables_bytes, parameter_bytes=written.parameter_bytes),
        timings={"total": time.perf_counter() - started},
    )


def _verify(
    original: Path, written_path: Path, written: GraphVersion, *, seed: int, progress: Callable[[str], None]
) -> dict[str, float]:
    """Max abs error per signature of the written version against the original, both session-loaded.

    A signature whose ORIGINAL graph refuses random inputs (an Estimator's serialized `tf.Example`, a
    vocabulary lookup that must hit) cannot be compared on them: it is reported and left out of the
    result, not failed; every other signature must match exactly.
    """
    import tensorflow as tf

    errors: dict[str, float] = {}
    with loaded_session(written_path) as (new_session, new_meta), loaded_session(original) as old:
        old_session, old_meta = old
        for key, (inputs, _) in written.signatures.items():
            progress(f"verifying signature {key} through the session loader")
            specs = [(alias, shape, dtype) for alias, (shape, dtype) in inputs.items()]
            feeds = sample_inputs(specs, batch=_BATCH, seed=seed)
            try:
                if key in written.added:
                    # The tensor as the original computes it: a TF1 graph has it by name; a TF2 graph's
                    # reference is the inlined graph before saving (`GraphVersion.reference`).
                    want = {key: written.reference(key, feeds)}
                else:
                    want = _run(old_session, old_meta.signature_def[key], feeds)
            except (tf.errors.OpError, ValueError) as error:
                first = str(error).splitlines()[0] if str(error) else type(error).__name__
                progress(f"not verified: the original {key!r} refuses random inputs ({first[:200]})")
                continue
            got = _run(new_session, new_meta.signature_def[key], feeds)
            errors[key] = max(_error(key, alias, got[alias], want[alias]) for alias in want)
    return errors


def _run(session: Any, definition: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    fetches = {alias: info.name for alias, info in definition.outputs.items()}
    return dict(session.run(fetches, {definition.inputs[a].name: v for a, v in feeds.items()}))


def _error(key: str, alias: str, got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape or got.dtype != want.dtype:
        raise VerificationError(
            f"signature {key!r} output {alias!r} is {got.dtype}{list(got.shape)}, the original "
            f"{want.dtype}{list(want.shape)}; nothing was published"
        )
    if got.dtype.kind not in "fiub":
        if not np.array_equal(got, want):
            raise VerificationError(f"signature {key!r} output {alias!r} differs from the original")
        return 0.0
    error = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if got.size else 0.0
    if error > 0.0:
        raise VerificationError(
            f"signature {key!r} output {alias!r} differs from the original SavedModel by up to {error:.3g}; "
            "nothing was published"
        )
    return error
