"""The exporter's public API: `export()` and `inspect_model()`."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from layertap._text import strip_escapes
from layertap.config.compat import SERVING_VERSION, check_compat
from layertap.config.servers import server_release
from layertap.errors import ExportError, LayertapError, RefusedVersionError, UsageError
from layertap.exporter import _graph, specs
from layertap.exporter import heads as head_ops
from layertap.exporter.comparing import compare_staged, resolve_compare_with
from layertap.exporter.flops import graph_flops
from layertap.exporter.loading import load_model
from layertap.exporter.manifest import build_manifest
from layertap.exporter.parity import check_parity_request, parity_errors
from layertap.exporter.publish import Repository, Reservation
from layertap.exporter.remote import VersionRepository, open_repository
from layertap.exporter.savedmodel import write_savedmodel
from layertap.exporter.space import space_identities, stamp_spaces
from layertap.exporter.truncate import HeadRef, plan_signatures
from layertap.exporter.validate import DEFAULT_BATCH, validate_version
from layertap.exporter.verify import reference_outputs, verify_savedmodel
from layertap.exporter.warmup import write_warmup
from layertap.storage.publish import TransferCallback
from layertap.version_folder import VALIDATION_REPORT_PATH, write_manifest

__all__ = ["ExportResult", "LayerInfo", "SignatureInfo", "Sizes", "export", "inspect_model"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str], None]


@dataclass(frozen=True)
class SignatureInfo:
    """A written signature: its inputs and outputs as alias -> (shape with batch None, dtype).

    `heads` maps each output computed by a head to its ops (e.g. {"pooled": ("gap", "float16")});
    `space` is its embedding-space id (`layertap.exporter.space`).
    """

    key: str
    inputs: dict[str, tuple[tuple[int | None, ...], str]]
    outputs: dict[str, tuple[tuple[int | None, ...], str]]
    layers: tuple[str, ...]
    heads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    space: str | None = None


@dataclass(frozen=True)
class Sizes:
    """Bytes of the variables files against the bytes of the model's parameters."""

    variables_bytes: int
    parameter_bytes: int

    @property
    def ratio(self) -> float:
        """variables_bytes / parameter_bytes (1.0 = every weight stored exactly once)."""
        return self.variables_bytes / self.parameter_bytes if self.parameter_bytes else 0.0


@dataclass(frozen=True)
class ExportResult:
    """What `export()` published."""

    name: str
    version: int
    path: Path | str  # the version directory, or its gs:// / s3:// URI
    signatures: dict[str, SignatureInfo]
    max_errors: dict[str, float]
    sizes: Sizes
    timings: dict[str, float] = field(default_factory=dict)
    parity_backend: str | None = None
    parity: dict[str, float] = field(default_factory=dict)  # max error per signature vs parity_backend
    comparison: Any = None  # layertap.compare.Comparison with the version `compare_with` named

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the `layertap export --json` output)."""
        return {
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "signatures": {
                key: {
                    "inputs": {a: {"shape": list(s), "dtype": d} for a, (s, d) in info.inputs.items()},
                    "outputs": {a: {"shape": list(s), "dtype": d} for a, (s, d) in info.outputs.items()},
                    "layers": list(info.layers),
                    "heads": {alias: list(ops) for alias, ops in info.heads.items()},
                    "space": info.space,
                }
                for key, info in self.signatures.items()
            },
            "verification": {"max_errors": self.max_errors, "verified": bool(self.max_errors)},
            **(
                {"parity": {"backend": self.parity_backend, "max_errors": self.parity}}
                if self.parity_backend
                else {}
            ),
            **({"comparison": self.comparison.to_json()} if self.comparison is not None else {}),
            "sizes": {
                "variables_bytes": self.sizes.variables_bytes,
                "parameter_bytes": self.sizes.parameter_bytes,
                "ratio": round(self.sizes.ratio, 6),
            },
            "timings": {stage: round(seconds, 3) for stage, seconds in self.timings.items()},
        }


def _check_server(server: str | None) -> None:
    """Refuse an unknown TF Serving release before any work (ConfigError)."""
    if server is not None:
        server_release(server)


def _gate(
    staging: Path, *, server: str | None, validate: bool, batch: int, seed: int, report: ProgressCallback
) -> None:
    """The checks a staged version must pass before it is published (`server=`, `validate=`)."""
    if server is not None:
        _refuse_unless_loadable(staging, server, report)
    if validate:
        _refuse_unless_valid(staging, server or SERVING_VERSION, batch=batch, seed=seed, report=report)


def _refuse_unless_loadable(staging: Path, server: str, report: ProgressCallback) -> None:
    """Raise RefusedVersionError when TF Serving `server` could not load the staged version."""
    report(f"checking that TF Serving {server} can load it (op registry of its TensorFlow)")
    verdict = check_compat(staging, server)
    for problem in verdict.problems:
        report(str(problem))
    if not verdict.compatible:
        errors = [problem.located for problem in verdict.problems if problem.level == "error"]
        raise RefusedVersionError(
            f"TF Serving {verdict.server} (TensorFlow {verdict.server_tensorflow}) cannot load this export, "
            f"so it was not published: {errors[0]}"
            + (f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else "")
            + "; export with that server's TensorFlow, or target a newer server"
        )


def _refuse_unless_valid(
    staging: Path, server: str, *, batch: int, seed: int, report: ProgressCallback
) -> None:
    """Rehearse the staged version; keep the report in it, or raise RefusedVersionError."""
    rehearsal = validate_version(staging, server=server, batch=batch, seed=seed, progress=report)
    text = json.dumps(rehearsal.to_json(), indent=2) + "\n"
    (staging / VALIDATION_REPORT_PATH).write_text(text, encoding="utf-8")
    for warning in rehearsal.warnings:
        report(f"validate: warning: {warning}")
    if not rehearsal.passed:
        more = len(rehearsal.failures) - 1
        raise RefusedVersionError(
            f"the version failed validation, so it was not published: {rehearsal.failures[0]}"
            + (f" (and {more} more failure(s))" if more else "")
        )


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
    input_shape: Sequence[int] | None = None,
    allow_unsafe: bool = False,
    custom_objects: Sequence[str | Path] = (),
    verify: bool = True,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    server: str | None = None,
    validate: bool = False,
    validate_batch: int = DEFAULT_BATCH,
    parity_backend: str | None = None,
    compare_with: int | str | None = None,
    transfer: TransferCallback | None = None,
    with_preprocessor: bool = False,
    sequence_length: int | None = None,
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
        input_shape: sample shape (no batch) for a Sequential model that was never built.
        allow_unsafe: allow model files with Lambda layers.
        custom_objects: modules or `.py` files to import before loading a file, for the custom
            classes they register (`@keras.saving.register_keras_serializable`).
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
        with_preprocessor: for a KerasHub preset, signatures take raw text: the preset's preprocessor
            runs in front of the backbone (`layertap.exporter.sources.kerashub`).
        sequence_length: for a preset with its preprocessor, tokens per example (default: the
            preprocessor's, at most the backbone's maximum).

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
    report = progress or _log_progress
    _check_server(server)
    if _is_graph_savedmodel(model_or_path):
        # A SavedModel with no Keras model behind it: signatures are added to its graph.
        _refuse_keras_options(
            model_or_path,
            groups=groups, heads=heads, parity_backend=parity_backend, server=server, validate=validate,
            compare_with=compare_with, with_preprocessor=with_preprocessor,
            all_layers=all_layers, layers_matching=layers_matching,
        )  # fmt: skip
        from layertap.exporter.graph_export import export_graph

        return export_graph(
            Path(model_or_path), layers, base_path=base_path, name=name, version=version, seed=seed,
            verify=verify, progress=report,
        )  # fmt: skip
    timings: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    # Mistakes that need no model are reported before loading one (which takes seconds).
    repository = open_repository(base_path, name, report=report, transfer=transfer)
    _preflight(repository, version, model_or_path, parity_backend, layers_matching)
    against = _compare_target(repository, compare_with)
    report("loading the model")
    model = load_model(
        model_or_path,
        allow_unsafe=allow_unsafe,
        input_shape=input_shape,
        custom_objects=custom_objects,
        with_preprocessor=with_preprocessor,
        sequence_length=sequence_length,
    )
    specs.ensure_graph_model(model)
    lap("load")
    refs = [
        specs.resolve(model, spec)
        for spec in [*layers, *specs.select(model, all_layers=all_layers, matching=layers_matching)]
    ]
    head_refs = _resolve_heads(model, heads or {})
    by_name = {head_ref.name: head_ref for head_ref in head_refs}
    group_refs = {
        group: [by_name.get(str(spec)) or specs.resolve(model, spec) for spec in members]
        for group, members in (groups or {}).items()
    }
    signatures = plan_signatures(model, refs, group_refs, head_refs)
    lap("plan")

    reservation = repository.reserve(version)
    report(f"building version {reservation.version} in {reservation.staging}")
    try:
        try:
            write_savedmodel(model, signatures, reservation.staging, report)
        except LayertapError:
            raise
        except Exception as error:
            raise ExportError(
                f"TensorFlow could not trace or save the model: {strip_escapes(str(error))}"
            ) from error
        spaces = _stamp(signatures, reservation.staging)
        lap("trace_and_save")
        max_errors, parity = _verify(
            reservation.staging,
            signatures,
            verify=verify,
            seed=seed,
            progress=report,
            parity_backend=parity_backend,
            model_path=model_or_path,
            options={
                "custom_objects": custom_objects,
                "allow_unsafe": allow_unsafe,
                "input_shape": input_shape,
            },
        )
        lap("verify")
        comparison = _write_extras(
            model,
            signatures,
            repository=repository,
            reservation=reservation,
            max_errors=max_errors,
            spaces=spaces,
            against=against,
            seed=seed,
            report=report,
        )
        _gate(
            reservation.staging,
            server=server,
            validate=validate,
            batch=validate_batch,
            seed=seed,
            report=report,
        )
        sizes = Sizes(
            variables_bytes=sum(f.stat().st_size for f in (reservation.staging / "variables").iterdir()),
            parameter_bytes=sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.variables),
        )
        report(f"publishing version {reservation.version}")
        final = repository.publish(reservation)
        lap("publish")
    except BaseException:
        repository.abandon(reservation)
        raise
    timings["total"] = time.perf_counter() - started
    return ExportResult(
        name=name,
        version=reservation.version,
        path=final,
        signatures={
            s.key: SignatureInfo(
                key=s.key,
                inputs={alias: (shape, dtype) for alias, shape, dtype in s.input_specs},
                outputs={alias: (shape, dtype) for alias, shape, dtype in s.output_specs},
                layers=s.layers,
                heads={
                    alias: tuple(str(op) for op in head.ops)
                    for position, alias in enumerate(s.output_aliases)
                    if (head := s.head(position)) is not None
                },
                space=spaces[s.key],
            )
            for s in signatures
        },
        max_errors=max_errors,
        parity_backend=parity_backend,
        parity=parity,
        comparison=comparison,
        sizes=sizes,
        timings=timings,
    )


def _write_extras(
    model: Any,
    signatures: Sequence[Any],
    *,
    repository: VersionRepository,
    reservation: Reservation,
    max_errors: Mapping[str, float],
    spaces: Mapping[str, str],
    against: int | None,
    seed: int,
    report: ProgressCallback,
) -> Any:
    """Warmup records and the manifest (with the comparison against version `against`, when asked) into
    the staged version's assets.extra; returns the comparison, or None."""
    report("writing warmup requests and the manifest to assets.extra")
    write_warmup(reservation.staging, reservation.final.parent.name, signatures, seed=seed)
    manifest = build_manifest(
        model,
        signatures,
        name=reservation.final.parent.name,
        version=reservation.version,
        max_errors=max_errors,
        spaces=spaces,
    )
    comparison = None
    if against is not None:
        assert isinstance(repository, Repository)  # _compare_target refuses remote ones
        comparison = compare_staged(
            repository,
            against=against,
            staging=reservation.staging,
            final=reservation.final,
            manifest=manifest,
            report=report,
        )
    write_manifest(reservation.staging, manifest)
    return comparison


def _stamp(signatures: Sequence[Any], staging: Path) -> dict[str, str]:
    """Each signature's embedding-space id, also stamped into the staged SavedModel."""
    spaces = space_identities(signatures)
    stamp_spaces(staging, spaces)
    return spaces


def _is_graph_savedmodel(model_or_path: Any) -> bool:
    from layertap.exporter.graph_export import is_graph_savedmodel

    return is_graph_savedmodel(model_or_path)


def _refuse_keras_options(path: Any, **options: Any) -> None:
    """Options that need a Keras model, refused for a SavedModel without one."""
    given = sorted(option for option, value in options.items() if value)
    if given:
        raise UsageError(
            f"{path} is a SavedModel without a Keras model: only --layer TENSOR signatures can be added to "
            f"it; not supported for it: {', '.join(given)}"
        )


def _resolve_heads(
    model: Any, requested: Mapping[str, tuple[str | int, Sequence[str] | str]]
) -> list[HeadRef]:
    resolved = []
    for name, entry in requested.items():
        head_ops.check_head_name(name)
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise UsageError(f"head {name!r}: expected (SPEC, [OP, ...]), got {entry!r}")
        spec, ops = entry
        resolved.append(HeadRef(name=name, ref=specs.resolve(model, spec), ops=head_ops.parse_ops(ops)))
    return resolved


def _compare_target(repository: VersionRepository, compare_with: int | str | None) -> int | None:
    if compare_with is None:
        return None
    if not isinstance(repository, Repository):
        raise UsageError(
            "compare_with needs a local base path: versions on gs:// or s3:// are not compared before "
            "publishing yet (compare them with `layertap compare` once published)"
        )
    return resolve_compare_with(repository, compare_with)


def _preflight(
    repository: VersionRepository,
    version: int | None,
    model_or_path: Any,
    parity_backend: str | None,
    layers_matching: str | None,
) -> None:
    """Mistakes that need no model, reported before loading one (which takes seconds)."""
    repository.check(version)
    check_parity_request(model_or_path, parity_backend)
    if layers_matching is not None:
        specs.check_pattern(layers_matching)


def _verify(
    staging: Path,
    signatures: Sequence[Any],
    *,
    verify: bool,
    seed: int,
    progress: ProgressCallback,
    parity_backend: str | None,
    model_path: Any,
    options: Mapping[str, Any],
) -> tuple[dict[str, float], dict[str, float]]:
    """Verification's max errors, then (when asked) the max errors against another Keras backend."""
    max_errors = verify_savedmodel(staging, signatures, seed=seed, progress=progress) if verify else {}
    if parity_backend is None:
        return max_errors, {}
    progress(f"running every signature under the {parity_backend} backend to compare")
    parity = parity_errors(
        Path(model_path),
        signatures,
        reference_outputs(signatures, seed=seed),
        backend=parity_backend,
        custom_objects=options["custom_objects"],
        allow_unsafe=options["allow_unsafe"],
        input_shape=options["input_shape"],
    )
    return max_errors, parity


@dataclass(frozen=True)
class LayerInfo:
    """One row of `inspect_model()`.

    Attributes:
        index: position in the root model's `model.layers` (None inside nested models).
        spec: the spec that selects this layer's output (path, with `@K` for shared calls).
        kind: the layer's class name.
        output_shape: shape(s) of the output, batch as None.
        parameters: the layer's parameter count.
        flops: estimated FLOPs per sample of a signature ending here.
        share: `flops` as a fraction of the full model's FLOPs.
        output_dtypes: dtype of each output.
        output_bytes: bytes per example of all outputs (None when a dimension is open).
        head_shape, head_dtype, head_bytes: with `inspect_model(head=...)`, what the head would
            output here and its bytes per example (None where the head does not fit the layer).
    """

    index: int | None
    spec: str
    kind: str
    output_shape: tuple[tuple[int | None, ...], ...]
    parameters: int
    flops: int
    share: float
    output_dtypes: tuple[str, ...] = ()
    output_bytes: int | None = None
    head_shape: tuple[int | None, ...] | None = None
    head_dtype: str | None = None
    head_bytes: int | None = None


def inspect_model(
    model_or_path: Any,
    *,
    input_shape: Sequence[int] | None = None,
    allow_unsafe: bool = False,
    custom_objects: Sequence[str | Path] = (),
    head: Sequence[str] | str | None = None,
    with_preprocessor: bool = False,
    sequence_length: int | None = None,
) -> list[LayerInfo]:
    """Every layer (nested ones too) with its spec, output shape, bytes, parameters and compute share.

    Args:
        head: head ops (e.g. "gap,float16"): each row also says what that head would output at
            the layer and weigh per example, where it fits.
        custom_objects: modules or `.py` files to import before loading a file (see `export`).
        with_preprocessor: for a KerasHub preset directory (see `export`).
        sequence_length: for a KerasHub preset directory (see `export`).

    Raises:
        UsageError: an unknown head op.
    """
    ops = head_ops.parse_ops(head) if head is not None else None
    model = load_model(
        model_or_path,
        allow_unsafe=allow_unsafe,
        input_shape=input_shape,
        custom_objects=custom_objects,
        with_preprocessor=with_preprocessor,
        sequence_length=sequence_length,
    )
    specs.ensure_graph_model(model)
    total = graph_flops(list(model.outputs)) or 1
    rows: list[LayerInfo] = []
    _inspect(model, prefix="", before=0, total=total, rows=rows, root=True, ops=ops)
    return rows


def _sizes(tensors: Sequence[Any], ops: Sequence[head_ops.HeadOp] | None) -> dict[str, Any]:
    shapes = [(tuple(t.shape), str(t.dtype)) for t in tensors]
    sizes = [head_ops.bytes_per_example(shape, dtype) for shape, dtype in shapes]
    result: dict[str, Any] = {
        "output_dtypes": tuple(dtype for _, dtype in shapes),
        "output_bytes": None if None in sizes else sum(size for size in sizes if size is not None),
    }
    if ops is not None and len(shapes) == 1:
        try:
            planned = head_ops.plan_head("preview", "layer", shapes[0][0], shapes[0][1], ops)
        except UsageError:
            return result
        result.update(
            head_shape=planned.shape,
            head_dtype=planned.dtype,
            head_bytes=head_ops.bytes_per_example(planned.shape, planned.dtype),
        )
    return result


def _inspect(
    container: Any,
    *,
    prefix: str,
    before: int,
    total: int,
    rows: list[LayerInfo],
    root: bool,
    ops: Sequence[head_ops.HeadOp] | None,
) -> None:
    for index, layer in enumerate(container.layers):
        nodes = _graph.call_nodes(layer, container)
        for call, node in enumerate(nodes):
            spec = f"{prefix}{layer.name}" + (f"@{call}" if len(nodes) > 1 else "")
            cost = before + graph_flops(list(node.output_tensors))
            rows.append(
                LayerInfo(
                    index=index if root else None,
                    spec=spec,
                    kind=type(layer).__name__,
                    output_shape=tuple(tuple(t.shape) for t in node.output_tensors),
                    parameters=int(layer.count_params()),
                    flops=cost,
                    share=cost / total,
                    **_sizes(node.output_tensors, ops),
                )
            )
            if _graph.is_graph_model(layer):
                feeding = before + graph_flops(list(node.input_tensors))
                _inspect(
                    layer, prefix=f"{spec}/", before=feeding, total=total, rows=rows, root=False, ops=ops
                )
