"""`layertap inspect`: list a model's layers so a user can choose what to export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from layertap.cli.display import shape_text
from layertap.cli.export import add_model_arguments, loading_keywords

__all__ = ["EXTRAS", "add_arguments", "run"]

EXTRAS = ("tf",)


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """Arguments of `layertap inspect`."""
    add_model_arguments(parser)
    parser.add_argument(
        "--head",
        metavar="OP[,OP...]",
        default=None,
        help="preview a head (e.g. gap,float16): its output shape and bytes per example at each "
        "layer it fits",
    )
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args: argparse.Namespace) -> int:
    """Print one row per layer: index, spec, kind, output shape, parameters, FLOPs share."""
    from layertap.exporter import inspect_model
    from layertap.exporter.graph_export import inspect_savedmodel, is_graph_savedmodel

    if is_graph_savedmodel(args.model):
        return _print_tensors(inspect_savedmodel(args.model), as_json=args.json)
    _announce_loading(args.model)
    rows = inspect_model(args.model, head=args.head, **loading_keywords(args))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "index": row.index,
                        "spec": row.spec,
                        "kind": row.kind,
                        "output_shape": [list(shape) for shape in row.output_shape],
                        "parameters": row.parameters,
                        "flops": row.flops,
                        "flops_share": round(row.share, 6),
                        **(
                            {
                                "output_bytes_per_example": row.output_bytes,
                                "head": {
                                    "shape": None if row.head_shape is None else list(row.head_shape),
                                    "dtype": row.head_dtype,
                                    "bytes_per_example": row.head_bytes,
                                },
                            }
                            if args.head is not None
                            else {}
                        ),
                    }
                    for row in rows
                ],
                indent=2,
            )
        )
        return 0
    header: tuple[str, ...] = ("index", "layer spec", "kind", "output shape", "params", "FLOPs", "share")
    if args.head is not None:
        header += ("bytes/example", f"head {args.head}", "head bytes/example")
    table = [header]
    for row in rows:
        line: tuple[str, ...] = (
            "" if row.index is None else str(row.index),
            row.spec,
            row.kind,
            " ".join(shape_text(s) for s in row.output_shape),
            f"{row.parameters:,}",
            f"{row.flops:,}",
            f"{100 * row.share:.1f}%",
        )
        if args.head is not None:
            line += (
                _bytes(row.output_bytes),
                "-" if row.head_shape is None else f"{shape_text(row.head_shape)} {row.head_dtype}",
                "-" if row.head_shape is None else _bytes(row.head_bytes),
            )
        table.append(line)
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    print(
        "FLOPs: per sample, cumulative from the model inputs to this layer (what a signature ending here "
        "computes); share: of the full model's FLOPs"
    )
    return 0


def _print_tensors(rows: list[Any], *, as_json: bool) -> int:
    """The inner tensors of a SavedModel without Keras: what `export DIR --layer NAME` accepts."""
    if as_json:
        print(json.dumps([{**vars(row), "shape": list(row.shape)} for row in rows], indent=2))
        return 0
    table = [("tensor (--layer)", "op", "shape", "dtype", "in signature")]
    table += [(row.name, row.op, shape_text(row.shape), row.dtype, row.signature) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    print(f"{len(rows)} tensors; `layertap export DIR --layer TENSOR` adds a signature returning one")
    return 0


def _bytes(size: int | None) -> str:
    return "?" if size is None else f"{size:,}"


def _announce_loading(model: str) -> None:
    """A large model takes a while to load: say so on stderr before starting."""
    path = Path(model)
    if path.is_file():
        print(
            f"layertap inspect: loading {model} ({path.stat().st_size / 1e6:.1f} MB)",
            file=sys.stderr,
            flush=True,
        )
