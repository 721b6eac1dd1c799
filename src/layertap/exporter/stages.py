"""The export pipeline: named stages, each a function over one `ExportRun`, run in order by `run_stages`.

    preflight       open the repository; refuse a taken version or a comparison that cannot run
    load            the model, through `ModelSource.load`
    plan            layer specs, heads and groups resolved against the model; the signatures planned
    reserve         a version number claimed, with its staging folder
    trace_and_save  the SavedModel traced and written to staging; embedding-space ids stamped into it
    verify          every signature through TF Serving's session loader against Keras (and, when asked,
                    against another Keras backend)
    extras          warmup records and the manifest (with the comparison, when asked) into assets.extra
    gate            the server-release and validation checks a version must pass to be published
    publish         sizes measured, the staged version published under its number

Each stage reads what the earlier ones put in the run and adds its own part; `timings` gets its seconds
under the stage's name. A failure in any stage after `reserve` abandons the reservation, so nothing is
left that TF Serving would load (its file-system source takes every numeric folder as a version:
tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from layertap._text import strip_escapes
from layertap.config.compat import SERVING_VERSION, check_compat
from layertap.errors import ExportError, LayertapError, RefusedVersionError, UsageError
from layertap.exporter import specs
from layertap.exporter.comparing import compare_staged, resolve_compare_with
from layertap.exporter.manifest import build_manifest
from layertap.exporter.parity import parity_errors
from layertap.exporter.publish import Repository, Reservation
from layertap.exporter.remote import VersionRepository, open_repository
from layertap.exporter.request import ExportRequest
from layertap.exporter.result import ExportResult, SignatureInfo, Sizes
from layertap.exporter.savedmodel import write_savedmodel
from layertap.exporter.space import space_identities, stamp_spaces
from layertap.exporter.truncate import HeadRef, Signature, plan_signatures
from layertap.exporter.validate import validate_version
from layertap.exporter.verify import reference_outputs, verify_savedmodel
from layertap.exporter.warmup import write_warmup
from layertap.version_folder import VALIDATION_REPORT_PATH, write_manifest

__all__ = ["STAGES", "ExportRun", "ProgressCallback", "Stage", "run_stages"]

ProgressCallback = Callable[[str], None]


@dataclass
class ExportRun:
    """The one context of an export: the request, and what each stage has produced so far."""

    request: ExportRequest
    report: ProgressCallback
    repository: VersionRepository | None = None
    against: int | None = None  # the published version to compare with
    model: Any = None
    signatures: list[Signature] = field(default_factory=list)
    reservation: Reservation | None = None
    spaces: dict[str, str] = field(default_factory=dict)
    max_errors: dict[str, float] = field(default_factory=dict)
    parity: dict[str, float] = field(default_factory=dict)
    comparison: Any = None
    sizes: Sizes | None = None
    published: Path | str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def store(self) -> VersionRepository:
        """The repository `preflight` opened."""
        assert self.repository is not None, "preflight runs first"
        return self.repository

    @property
    def reserved(self) -> Reservation:
        """The reservation `reserve` made."""
        assert self.reservation is not None, "reserve runs before the stages that write"
        return self.reservation

    def result(self) -> ExportResult:
        """What `export()` returns, once every stage ran."""
        assert self.sizes is not None and self.published is not None, "publish runs last"
        return ExportResult(
            name=self.request.name,
            version=self.reserved.version,
            path=self.published,
            signatures={signature.key: _info(signature, self.spaces) for signature in self.signatures},
            max_errors=self.max_errors,
            parity_backend=self.request.parity_backend,
            parity=self.parity,
            comparison=self.comparison,
            sizes=self.sizes,
            timings=self.timings,
        )


@dataclass(frozen=True)
class Stage:
    """A named step of the pipeline."""

    name: str
    run: Callable[[ExportRun], None]


def preflight(run: ExportRun) -> None:
    """Mistakes that need the repository but no model, reported before loading one (which takes seconds)."""
    request = run.request
    run.repository = open_repository(
        request.base_path, request.name, report=run.report, transfer=request.transfer
    )
    run.repository.check(request.version)
    if request.compare_with is not None:
        if not isinstance(run.repository, Repository):
            raise UsageError(
                "compare_with needs a local base path: versions on gs:// or s3:// are not compared before "
                "publishing yet (compare them with `layertap compare` once published)"
            )
        run.against = resolve_compare_with(run.repository, request.compare_with)


def load(run: ExportRun) -> None:
    """The model, loaded the one way (`ModelSource`), and checked to be a graph layertap can cut."""
    run.report("loading the model")
    run.model = run.request.source.load()
    specs.ensure_graph_model(run.model)


def plan(run: ExportRun) -> None:
    """Every spec resolved against the model; one planned signature per layer, group and head."""
    request, model = run.request, run.model
    selected = specs.select(model, all_layers=request.all_layers, matching=request.layers_matching)
    refs = [specs.resolve(model, spec) for spec in [*request.layers, *selected]]
    head_refs = [
        HeadRef(name=name, ref=specs.resolve(model, head.spec), ops=head.ops)
        for name, head in request.heads.items()
    ]
    by_name = {head_ref.name: head_ref for head_ref in head_refs}
    group_refs = {
        group: [by_name.get(str(spec)) or specs.resolve(model, spec) for spec in members]
        for group, members in request.groups.items()
    }
    run.signatures = plan_signatures(model, refs, group_refs, head_refs)


def reserve(run: ExportRun) -> None:
    """A version number claimed, with the staging folder the next stages write."""
    run.reservation = run.store.reserve(run.request.version)
    run.report(f"building version {run.reservation.version} in {run.reservation.staging}")


def trace_and_save(run: ExportRun) -> None:
    """The SavedModel written to staging, then each signature's embedding-space id stamped into it."""
    staging = run.reserved.staging
    try:
        write_savedmodel(run.model, run.signatures, staging, run.report)
    except LayertapError:
        raise
    except Exception as error:
        raise ExportError(
            f"TensorFlow could not trace or save the model: {strip_escapes(str(error))}"
        ) from error
    run.spaces = space_identities(run.signatures)
    stamp_spaces(staging, run.spaces)


def verify(run: ExportRun) -> None:
    """Verification's max errors, then (when asked) the max errors against another Keras backend."""
    request = run.request
    if request.verify:
        run.max_errors = verify_savedmodel(
            run.reserved.staging, run.signatures, seed=request.seed, progress=run.report
        )
    if request.parity_backend is not None:
        run.report(f"running every signature under the {request.parity_backend} backend to compare")
        references = reference_outputs(run.signatures, seed=request.seed)
        run.parity = parity_errors(request.source, run.signatures, references, backend=request.parity_backend)


def extras(run: ExportRun) -> None:
    """Warmup records and the manifest (with the comparison against `against`, when asked) into the
    staged version's assets.extra."""
    run.report("writing warmup requests and the manifest to assets.extra")
    reservation = run.reserved
    name = reservation.final.parent.name  # the model's folder: <base_path>/<name>/<version>
    write_warmup(reservation.staging, name, run.signatures, seed=run.request.seed)
    manifest = build_manifest(
        run.model,
        run.signatures,
        name=name,
        version=reservation.version,
        max_errors=run.max_errors,
        spaces=run.spaces,
    )
    if run.against is not None:
        assert isinstance(run.repository, Repository)  # preflight refuses remote ones
        run.comparison = compare_staged(
            run.repository,
            against=run.against,
            staging=reservation.staging,
            final=reservation.final,
            manifest=manifest,
            report=run.report,
        )
    write_manifest(reservation.staging, manifest)


def gate(run: ExportRun) -> None:
    """The checks a staged version must pass before it is published (`server=`, `validate=`)."""
    request, staging = run.request, run.reserved.staging
    if request.server is not None:
        _refuse_unless_loadable(staging, request.server, run.report)
    if request.validate:
        _refuse_unless_valid(
            staging,
            request.server or SERVING_VERSION,
            batch=request.validate_batch,
            seed=request.seed,
            report=run.report,
        )


def publish(run: ExportRun) -> None:
    """The sizes measured on the staged files, then the version published under its number."""
    reservation = run.reserved
    run.sizes = Sizes(
        variables_bytes=sum(f.stat().st_size for f in (reservation.staging / "variables").iterdir()),
        parameter_bytes=sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in run.model.variables),
    )
    run.report(f"publishing version {reservation.version}")
    run.published = run.store.publish(reservation)


STAGES: tuple[Stage, ...] = (
    Stage("preflight", preflight),
    Stage("load", load),
    Stage("plan", plan),
    Stage("reserve", reserve),
    Stage("trace_and_save", trace_and_save),
    Stage("verify", verify),
    Stage("extras", extras),
    Stage("gate", gate),
    Stage("publish", publish),
)


def run_stages(run: ExportRun, stages: tuple[Stage, ...] = STAGES) -> None:
    """Run `stages` in order, timing each; abandon the reservation if one fails after it was made."""
    started = time.perf_counter()
    try:
        for stage in stages:
            begun = time.perf_counter()
            stage.run(run)
            run.timings[stage.name] = time.perf_counter() - begun
    except BaseException:
        if run.reservation is not None:
            run.store.abandon(run.reservation)
        raise
    run.timings["total"] = time.perf_counter() - started


def _info(signature: Signature, spaces: dict[str, str]) -> SignatureInfo:
    return SignatureInfo(
        key=signature.key,
        inputs={alias: (shape, dtype) for alias, shape, dtype in signature.input_specs},
        outputs={alias: (shape, dtype) for alias, shape, dtype in signature.output_specs},
        layers=signature.layers,
        heads={
            alias: tuple(str(op) for op in head.ops)
            for position, alias in enumerate(signature.output_aliases)
            if (head := signature.head(position)) is not None
        },
        space=spaces[signature.key],
    )


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
