"""`layertap export`: parse arguments, call `layertap.exporter.export`, report the result."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from layertap.cli.display import shape_text
from layertap.cli.framework import non_negative_int, positive_int
from layertap.cli.validate import add_batch_argument, batch_from_args
from layertap.errors import UsageError

if TYPE_CHECKING:
    from layertap.exporter.source import LoadingKeywords

__all__ = [
    "EXTRAS",
    "add_arguments",
    "add_model_arguments",
    "base_path_argument",
    "loading_keywords",
    "parse_group",
    "parse_head_argument",
    "parse_shape",
    "readers_note_for",
    "run",
    "transfer_printer",
]

EXTRAS = ("tf",)


def parse_shape(text: str) -> tuple[int, ...]:
    """`28,28,1` -> (28, 28, 1): the shape of one sample, without the batch dimension."""
    try:
        shape = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(dim <= 0 for dim in shape):
        raise argparse.ArgumentTypeError(
            f"invalid shape {text!r}: expected positive integers separated by commas, e.g. 28,28,1"
        )
    return shape


def parse_group(text: str) -> tuple[str, list[str]]:
    """`NAME=SPEC,SPEC` -> (NAME, [SPEC, SPEC])."""
    name, separator, members = text.partition("=")
    specs = [spec.strip() for spec in members.split(",") if spec.strip()]
    if not separator or not name.strip() or not specs:
        raise argparse.ArgumentTypeError(
            f"invalid group {text!r}: expected NAME=SPEC,SPEC (e.g. early=conv_1,conv_2)"
        )
    return name.strip(), specs


def parse_head_argument(text: str) -> tuple[str, str, list[str]]:
    """`NAME=SPEC:OP[,OP...]` -> (NAME, SPEC, [OP, ...]); the ops are checked by the exporter."""
    from layertap.exporter.heads import parse_head

    try:
        name, spec, ops = parse_head(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name, spec, [str(op) for op in ops]


def _version_or_previous(text: str) -> int | str:
    """`--compare-with`: a version number (>= 0) or `previous`."""
    return text if text == "previous" else non_negative_int(text)


def base_path_argument(text: str) -> str:
    """--base-path: refuse an unsupported scheme, or a store whose extra is missing, while parsing."""
    from layertap.storage.uri import ObjectLocation, parse_location, require_backend

    try:
        location = parse_location(text)
        if isinstance(location, ObjectLocation):
            require_backend(location)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments that say which model file to load and how (shared with `layertap inspect`)."""
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="a .keras file (legacy .h5 and Keras 2 SavedModel folders also accepted), or a KerasHub "
        "preset directory (save_to_preset)",
    )
    parser.add_argument(
        "--input-shape",
        type=parse_shape,
        default=None,
        metavar="D1,D2,...",
        help="sample shape without batch, for a Sequential model that was never built (e.g. 28,28,1)",
    )
    parser.add_argument(
        "--allow-unsafe", action="store_true", help="load model files with Lambda layers (runs their code)"
    )
    parser.add_argument(
        "--custom-objects",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE.py",
        help="import this module or .py file before loading, so the custom classes it registers with "
        "@keras.saving.register_keras_serializable resolve (safe mode stays on). Repeatable.",
    )
    parser.add_argument(
        "--with-preprocessor",
        action="store_true",
        help="KerasHub preset: put its preprocessor in front of the backbone, so signatures take raw "
        "text (input 'text', string[batch]), or for an image preset images of any size (input 'images')",
    )
    parser.add_argument(
        "--sequence-length",
        type=positive_int,
        default=None,
        metavar="N",
        help="KerasHub preset with --with-preprocessor: tokens per example (default: the preprocessor's, "
        "at most the backbone's maximum)",
    )


def loading_keywords(args: argparse.Namespace) -> LoadingKeywords:
    """What `add_model_arguments` parsed, as the keywords `export()` and `inspect_model()` load with."""
    return {
        "input_shape": args.input_shape,
        "allow_unsafe": args.allow_unsafe,
        "custom_objects": args.custom_objects,
        "with_preprocessor": args.with_preprocessor,
        "sequence_length": args.sequence_length,
    }


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """Arguments of `layertap export`."""
    # The registry module imports neither TensorFlow nor Keras, so the help costs nothing to build.
    from layertap.exporter.heads.registry import help_text as head_ops_help

    add_model_arguments(parser)
    parser.add_argument(
        "--layer",
        dest="layers",
        action="append",
        default=[],
        metavar="SPEC",
        help="layer to export, one signature each: a name (conv_2), an index into model.layers "
        "(a Sequential's list excludes the InputLayer), a nested path (backbone/block_1_relu), or "
        "name@K for the K-th call of a shared layer. Repeatable.",
    )
    parser.add_argument(
        "--all-layers",
        action="store_true",
        help="export every layer, one signature each: each call of each layer, nested models' layers "
        "too (what `layertap inspect` lists)",
    )
    parser.add_argument(
        "--layers-matching",
        default=None,
        metavar="REGEX",
        help="export every layer whose spec (as `layertap inspect` lists it) this regular expression "
        "matches (re.search), one signature each, e.g. '_out$'",
    )
    parser.add_argument(
        "--group",
        dest="groups",
        action="append",
        default=[],
        type=parse_group,
        metavar="NAME=SPEC,SPEC",
        help="an extra signature NAME returning several layers (or heads, by NAME) in one pass. Repeatable.",
    )
    parser.add_argument(
        "--head",
        dest="heads",
        action="append",
        default=[],
        type=parse_head_argument,
        metavar="NAME=SPEC:OP[,OP...]",
        help="a signature NAME computing the layer SPEC followed by ops, on the server: "
        f"{head_ops_help()} (e.g. pooled=conv2_block1_out:gap,float16; docs/heads.md). Repeatable.",
    )
    parser.add_argument(
        "--base-path",
        required=True,
        type=base_path_argument,
        metavar="DIR|gs://B/P|s3://B/P",
        help="TF Serving model base path: a local directory (or file:///abs), gs://BUCKET/PREFIX "
        "(layertap[gcs]) or s3://BUCKET/PREFIX (layertap[s3]); see docs/publishing.md",
    )
    parser.add_argument("--name", required=True, help="model name (the folder under --base-path)")
    parser.add_argument(
        "--version",
        type=non_negative_int,
        default=None,
        help="version number, an integer >= 0 (default: highest + 1)",
    )
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the session-loader and numeric check before publishing (experiments only)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the verification and warmup inputs")
    parser.add_argument(
        "--parity-backend",
        choices=("jax", "torch", "tensorflow"),
        default=None,
        help="also run every signature under this Keras backend (the one the model was trained with), "
        "in a child process, and report the max error per signature against TensorFlow's",
    )
    parser.add_argument(
        "--server",
        default=None,
        metavar="X.Y.Z",
        help="refuse to publish unless this TF Serving release can load the version (its op registry; "
        "see `layertap compat`)",
    )
    parser.add_argument(
        "--validate",
        action="store_true",
        help="rehearse serving the staged version (`layertap validate`, against --server or the pinned "
        "release) and publish only if it passes",
    )
    parser.add_argument(
        "--compare-with",
        type=_version_or_previous,
        default=None,
        metavar="VERSION|previous",
        help="before publishing, compare every signature with this published version (or the highest "
        "one) and record the verdicts in the new version's manifest, for the label gate",
    )
    add_batch_argument(parser)
    parser.add_argument("--json", action="store_true", help="print only the result as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    """Export, then print a summary (or JSON); progress goes to stderr."""
    from layertap.exporter import export
    from layertap.exporter.specs import check_pattern

    selecting = args.all_layers or args.layers_matching is not None
    if not args.layers and not args.groups and not args.heads and not selecting:
        raise UsageError(
            "nothing to export: give at least one --layer SPEC, --all-layers, --layers-matching REGEX "
            "or --head NAME=SPEC:OPS (see `layertap inspect MODEL`)"
        )
    if args.layers_matching is not None:
        check_pattern(args.layers_matching)
    heads: dict[str, tuple[str, list[str]]] = {}
    for name, spec, ops in args.heads:
        if name in heads:
            raise UsageError(f"--head {name!r} is given twice")
        heads[name] = (spec, ops)
    groups: dict[str, list[str]] = {}
    for name, specs in args.groups:
        if name in groups:
            raise UsageError(f"--group {name!r} is given twice")
        groups[name] = specs

    def progress(message: str) -> None:
        print(f"layertap export: {message}", file=sys.stderr, flush=True)

    transfer = transfer_printer() if sys.stderr.isatty() and not args.json else None
    result = export(
        args.model,
        args.layers,
        base_path=args.base_path,
        name=args.name,
        version=args.version,
        all_layers=args.all_layers,
        layers_matching=args.layers_matching,
        groups=groups,
        heads=heads,
        parity_backend=args.parity_backend,
        verify=args.verify,
        seed=args.seed,
        progress=progress,
        server=args.server,
        validate=args.validate,
        validate_batch=batch_from_args(args),
        compare_with=args.compare_with,
        transfer=transfer,
        **loading_keywords(args),
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    print(f"exported {result.name} version {result.version} to {result.path}")
    note = readers_note_for(args.base_path)
    if note:
        print(f"  {note}")
    for key, info in result.signatures.items():
        outputs = ", ".join(
            f"{alias} {shape_text(shape)} {dtype}" for alias, (shape, dtype) in info.outputs.items()
        )
        error = result.max_errors.get(key)
        checked = f"  (max error {error:.1e})" if error is not None else ""
        computed = "".join(f"  [{alias} = {','.join(ops)}]" for alias, ops in info.heads.items())
        print(f"  {key}: {outputs}{computed}{checked}")
        if key in result.parity:
            print(f"    vs {result.parity_backend}: max error {result.parity[key]:.1e}")
        if result.comparison is not None and key in result.comparison.signatures:
            judged = result.comparison.signatures[key]
            print(f"    vs version {result.comparison.old_version}: {judged.verdict} ({judged.reason})")
    sizes = result.sizes
    print(
        f"variables {sizes.variables_bytes} bytes for {sizes.parameter_bytes} parameter bytes "
        f"(ratio {sizes.ratio:.4f}); {result.timings.get('total', 0.0):.1f} s"
    )
    return 0


def readers_note_for(base_path: str) -> str | None:
    """What polls (or copies) a version published under an object-store base path; None for local paths."""
    from layertap.exporter.remote import readers_note
    from layertap.storage.uri import ObjectLocation, parse_location

    location = parse_location(base_path)
    return readers_note(location) if isinstance(location, ObjectLocation) else None


def transfer_printer() -> Callable[[int, int, float], None]:
    """Upload progress on one terminal line (bytes, rate), rewritten in place; ends with a newline."""

    def show(done: int, total: int, seconds: float) -> None:
        rate = done / seconds / 1e6 if seconds > 0 else 0.0
        end = "\n" if done >= total else ""
        print(
            f"\rlayertap export: uploaded {done / 1e6:.1f} of {total / 1e6:.1f} MB ({rate:.1f} MB/s)",
            end=end,
            file=sys.stderr,
            flush=True,
        )

    return show
