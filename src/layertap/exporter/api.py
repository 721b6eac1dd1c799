"""The exporter's public API: `export()` and `inspect_model()`.

`export()` keeps the keyword arguments users call it with; it only builds an `ExportRequest` (checked
once, `layertap.exporter.request`) and runs the stages of `layertap.exporter.stages` over it, or, for a
SavedModel without a Keras model, adds signatures to its graph (`layertap.exporter.graph_export`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Unpack

from layertap.exporter.inspecting import LayerInfo, inspect_model
from layertap.exporter.request import ExportRequest, parse_heads
from layertap.exporter.result import ExportResult, SignatureInfo, Sizes
from layertap.exporter.source import LoadingKeywords, ModelSource
from layertap.exporter.stages import ExportRun, ProgressCallback, run_stages
from layertap.exporter.validate import DEFAULT_BATCH
from layertap.storage.publish import TransferCallback

__all__ = ["ExportResult", "LayerInfo", "SignatureInfo", "Sizes", "export", "inspect_model"]

logger = logging.getLogger(__name__)


def _log_progress(message: str) -> None:
    logger.info("%s", message)


def export(
    model_or_path: Any,
    layers: Sequence[str | int] = (),
    *,
    base_path: Path | str,
    name: str,
    version: int | None = None,
    all_layers: bool = False,
    layers_matching: str | None = None,
    groups: Mapping[str, Sequence[str | int]] | None = None,
    heads: Mapping[str, tuple[str | int, Sequence[str] | str]] | None = None,
    verify: bool = True,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    server: str | None = None,
    validate: bool = False,
    validate_batch: int = DEFAULT_BATCH,
    parity_backend: str | None = None,
    compare_with: int | str | None = None,
    transfer: TransferCallback | None = None,
    **loading: Unpack[LoadingKeywords],
) -> ExportResult:
    """Export layers of a Keras model as one SavedModel version of `<base_path>/<name>`.

    Args:
        model_or_path: a keras.Model, a `.keras`/`.h5` file, or a KerasHub preset directory.
        layers: layer specs (see `layertap.exporter.specs`): names, indices into model.layers,
            `outer/inner` paths, `name@K` for a shared layer's K-th call. One signature each.
        all_layers: also export every layer: each call of each layer, nested models' layers too
            (the specs `inspect_model` lists), one signature each.
        layers_matching: also export the layers whose spec this regular expression matches
            (`re.search`, e.g. `"_out$"`).
        base_path: the TF Serving model base path; the version goes to `<base_path>/<name>/<version>`.
            A local directory (a path or `file:///abs`), or `gs://BUCKET/PREFIX` / `s3://BUCKET/PREFIX`:
            the version is built locally, then uploaded under a claimed number with saved_model.pb last
            (`layertap.storage.publish`). Any other scheme is refused before the model loads.
        name: the model's name in TF Serving.
        version: the version number; default one more than the highest present (1 for a new model).
        groups: extra signatures returning several layers in one pass: name -> specs. A member
            that is a head's name is that head's output.
        heads: signatures computing a reduction of a layer's output on the server:
            name -> (spec, ops), e.g. {"pooled": ("conv2_block1_out", ["gap", "float16"])}.
            The name is the signature key and the output alias. An op that does not accept what it
            receives is refused before anything is written.
            Ops (generated from the head-op registry by tools/gen_head_docs.py):
                gap: global average over every axis between batch and last (spatial, or time).
                gmp: global max over the same axes as gap.
                mean[=MASK_INPUT]: mean over time honouring the Keras mask the output carries (padded tokens
                    of an `Embedding(mask_zero=True)` do not count); `mean=INPUT` takes the mask from the
                    model input INPUT, (batch, time), non-zero = a real token (a BERT-style `padding_mask`).
                first: the first time step (a CLS token).
                last[=MASK_INPUT]: the last unmasked time step (the sentence vector of causal and recurrent
                    models); `last=INPUT` takes the mask from a model input, as `mean=INPUT` does.
                avgpool=K: average pooling of a (batch, H, W, C) map to a K x K grid (adaptive bins: bin i
                    spans rows floor(i H / K) to ceil((i + 1) H / K), so any H, W >= K works).
                dims=N: the first N features of the last axis (Matryoshka-style truncation; follow it with
                    `l2`).
                l2: L2-normalise the last axis (x / max(norm(x), 1e-6)).
                float16: cast to float16.
                bfloat16: cast to bfloat16.
        loading: how the model loads (`LoadingKeywords`, handed to `ModelSource` as they are):
            input_shape: sample shape (no batch) for a Sequential model that was never built.
            allow_unsafe: allow model files with Lambda layers.
            custom_objects: modules or `.py` files to import before loading a file, for the custom
                classes they register (`@keras.saving.register_keras_serializable`).
            with_preprocessor: for a KerasHub preset, signatures take raw text (or images of any
                size): the preset's preprocessor runs in front of the backbone
                (`layertap.exporter.sources.kerashub`).
            sequence_length: for a preset with its preprocessor, tokens per example (default: the
                preprocessor's, at most the backbone's maximum).
        verify: run every signature through TF Serving's loader path and compare with Keras
            before publishing. Turning it off is for experiments only.
        seed: seed of the random verification and warmup inputs.
        progress: called with a line of text at each stage (default: logged at INFO).
        server: a TF Serving release ("2.17.1"); the staged version is checked against its op registry
            (`layertap.config.compat.check_compat`) and refused unless that server can load it.
        validate: rehearse serving the staged version (`layertap.exporter.validate`, against `server` or
            the pinned release) before publishing; a version that fails is refused. The report is kept
            in the version as `assets.extra/layertap_validation.json`.
        validate_batch: the batch size the rehearsal runs besides 1.
        parity_backend: also run every signature under this Keras backend ("jax", "torch"), in a
            child process, and compare it with TensorFlow's outputs (`layertap.exporter.parity`);
            needs a model file.
        compare_with: a published version number, or "previous" (the highest one): before publishing,
            compare every signature with it (`layertap.compare`) and record the verdicts in the new
            version's manifest (`comparison`), where the label gate reads them. Local base paths only.
        transfer: called as (bytes sent, bytes total, seconds) while a version is uploaded to gs:// or s3://.

    Raises:
        UsageError: (subclasses) a bad spec, model, file or base path (LocationError); nothing is written.
        VerificationError: the SavedModel does not reproduce Keras; nothing is published.
        PublishError: the version exists or cannot be published.
        StorageError: the object store refused or failed (after retries); nothing loadable is left.
        RefusedVersionError: `server` could not load the version, or it failed validation; nothing is
            published.
        ConfigError: `server` is not a release layertap knows; nothing is written.
        ExportError: TensorFlow failed to trace or save the model.
    """
    source = ModelSource(model_or_path, **loading)
    request = ExportRequest(
        source=source,
        base_path=base_path,
        name=name,
        layers=tuple(layers),
        version=version,
        all_layers=all_layers,
        layers_matching=layers_matching,
        groups={group: tuple(members) for group, members in (groups or {}).items()},
        heads=parse_heads(heads or {}),
        verify=verify,
        seed=seed,
        server=server,
        validate=validate,
        validate_batch=validate_batch,
        parity_backend=parity_backend,
        compare_with=compare_with,
        transfer=transfer,
    )
    report = progress or _log_progress
    if source.is_graph_savedmodel:
        from layertap.exporter.graph_export import export_graph

        return export_graph(request, progress=report)
    run = ExportRun(request=request, report=report)
    run_stages(run)
    return run.result()
