"""`layertap layers` and `layertap predict`: the client from the command line (no TensorFlow)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from layertap.cli.framework import require_extras
from layertap.client import TLS, LayerClient
from layertap.client._catalogue import Catalogue
from layertap.client._requests import shape_text_lines
from layertap.errors import LayertapError, UsageError

__all__ = ["add_arguments", "load_inputs", "run"]


def add_arguments(parser: argparse.ArgumentParser, command_name: str) -> None:
    """Flags of `layertap layers` or `layertap predict`."""
    parser.add_argument("--target", required=True, help="server address HOST:PORT (or dns:///NAME:PORT)")
    parser.add_argument("--model", required=True, help="served model name")
    pin = parser.add_mutually_exclusive_group()
    pin.add_argument("--model-version", type=int, dest="model_version", help="pin a version number")
    pin.add_argument("--label", help="pin a version label, e.g. stable")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default 30)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="use TLS with the system's root certificates")
    tls.add_argument("--ca-cert", type=Path, help="PEM file of the CA that signed the server (implies --tls)")
    tls.add_argument("--client-cert", type=Path, help="PEM client certificate, for mutual TLS")
    tls.add_argument("--client-key", type=Path, help="PEM client key, for mutual TLS")
    tls.add_argument("--server-name", help="name to check the server certificate against")
    if command_name == "predict":
        parser.add_argument(
            "--layer",
            action="append",
            required=True,
            metavar="SPEC",
            help="layer name or path; repeat (or separate with commas) for several layers",
        )
        parser.add_argument(
            "input",
            type=Path,
            help="INPUT.npy (one array), INPUT.npz (arrays by input alias) or INPUT.txt (strings, one "
            "example a line, for a model with one string input)",
        )
        parser.add_argument(
            "-o",
            "--output",
            type=Path,
            metavar="OUT",
            help="write the outputs to OUT.npz (arrays keyed by layer) or, for one layer, OUT.npy; "
            "exactly that file, checked before the request is sent",
        )
        parser.add_argument(
            "--plot",
            type=Path,
            metavar="OUT.png",
            help="draw what came back into OUT.png: one panel per layer (feature maps, heat strips) for "
            "the first example; needs matplotlib: pip install 'layertap[plot]'",
        )
        parser.add_argument(
            "--max-batch-size", type=int, help="split larger batches into chunks of this size"
        )


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    with _client(args) as client:
        if args.command == "layers":
            catalogue = client.layers()
            print(
                json.dumps(_catalogue_json(catalogue), indent=2) if args.json else _catalogue_table(catalogue)
            )
            return 0
        layers = [name.strip() for spec in args.layer for name in spec.split(",") if name.strip()]
        inputs = load_inputs(args.input)
        if args.input.suffix == ".txt" and isinstance(inputs, np.ndarray):
            inputs = shape_text_lines(inputs, client.layers(), layers)
        if args.output is not None:
            _check_output(args.output, layers)
        if args.plot is not None:
            from layertap.plot import check_plot_path

            check_plot_path(args.plot)
            require_extras(["plot"])
        outputs = client.predict(inputs, layers)
    if args.output is not None:
        _write_outputs(args.output, outputs)
    if args.plot is not None:
        from layertap.plot import plot_outputs

        plot_outputs(outputs, args.plot)
        print(f"drew {args.plot}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {name: _array_json(array, values=args.output is None) for name, array in outputs.items()}
            )
        )
    else:
        for name, array in outputs.items():
            print(f"{name}\t{array.dtype}\t{list(array.shape)}\t{_summary(array)}")
        if args.output is not None:
            print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _client(args: argparse.Namespace) -> LayerClient:
    tls: TLS | bool | None = None
    if args.ca_cert or args.client_cert or args.client_key or args.server_name:
        tls = TLS(
            ca_cert=args.ca_cert,
            client_cert=args.client_cert,
            client_key=args.client_key,
            server_name=args.server_name,
        )
    elif args.tls:
        tls = True
    return LayerClient(
        args.target,
        args.model,
        version=args.model_version,
        version_label=args.label,
        timeout=args.timeout,
        tls=tls,
        max_batch_size=getattr(args, "max_batch_size", None),
    )


_INPUT_SUFFIXES = (".npy", ".npz", ".txt")


def load_inputs(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    """The arrays of an input file (`.npy`, `.npz` by input alias, `.txt` one string a line)."""
    if path.suffix not in _INPUT_SUFFIXES:
        raise UsageError(
            f"input {path} must be a .npy (one array), .npz (arrays by input alias) or .txt (strings, "
            "one example a line) file"
        )
    if path.suffix == ".txt":
        return _load_lines(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read input {path}: {error}") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        return {alias: loaded[alias] for alias in loaded.files}


def _load_lines(path: Path) -> np.ndarray:
    """A text file as a batch of strings (UTF-8 bytes), one example per line."""
    try:
        text = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read input {path}: {error.strerror}") from None
    lines = text.splitlines()
    if not lines:
        raise UsageError(f"input {path} is empty; expected one example a line")
    batch = np.empty(len(lines), dtype=object)
    batch[:] = lines
    return batch


_OUTPUT_SUFFIXES = (".npz", ".npy")


def _check_output(path: Path, layers: list[str]) -> None:
    """Refuse an output path that cannot be written exactly as named, before asking the server."""
    if path.suffix not in _OUTPUT_SUFFIXES:
        raise UsageError(
            f"-o {path}: unknown suffix {path.suffix or '(none)'!r}; accepted: .npz (arrays keyed by "
            "layer) or .npy (one layer); the file is written exactly as named"
        )
    if path.suffix == ".npy" and len(layers) != 1:
        raise UsageError(
            f"-o {path}: a .npy file holds one array, but {len(layers)} layers were asked for; use .npz"
        )
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"-o {path}: the folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise UsageError(f"-o {path}: is a directory; expected a file name ending in .npz or .npy")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"-o {path}: the folder {str(folder)!r} is not writable")


def _write_outputs(path: Path, outputs: dict[str, np.ndarray]) -> None:
    """Write `path` exactly (numpy would append .npz to other names), atomically: all or nothing."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with staging.open("wb") as handle:
            if path.suffix == ".npy":
                np.save(handle, next(iter(outputs.values())), allow_pickle=False)
            else:
                np.savez(handle, **outputs)  # type: ignore[arg-type]
        staging.replace(path)
    except OSError as error:
        raise LayertapError(f"-o {path}: cannot write it: {error.strerror}") from error
    finally:
        staging.unlink(missing_ok=True)


def _catalogue_json(catalogue: Catalogue) -> dict[str, Any]:
    layers: dict[str, Any] = {}
    for name, layer in catalogue.layers.items():
        entry: dict[str, Any] = {
            "signature": layer.signature,
            "inputs": {alias: spec.describe() for alias, spec in layer.inputs.items()},
            "output": {"alias": layer.output.alias, "type": layer.output.describe()},
            "space": catalogue.signatures[layer.signature].space,
        }
        if layer.original_name != name:
            entry["key"] = name  # the TensorFlow-valid key of a layer named otherwise in Keras
        layers[layer.original_name] = entry
    return {
        "model": catalogue.model,
        "version": catalogue.version,
        "layers": layers,
        "groups": {sig.key: sorted(sig.outputs) for sig in catalogue.groups},
    }


def _catalogue_table(catalogue: Catalogue) -> str:
    rows = [("LAYER", "SIGNATURE", "OUTPUT", "SPACE", "INPUTS")]
    for layer in catalogue.layers.values():
        inputs = ", ".join(f"{alias}: {spec.describe()}" for alias, spec in layer.inputs.items())
        space = _short_space(catalogue.signatures[layer.signature].space)
        rows.append((layer.original_name, layer.signature, layer.output.describe(), space, inputs))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"model {catalogue.model!r} version {catalogue.version}"]
    lines += [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]
    for sig in catalogue.groups:
        lines.append(f"group {sig.key}: {', '.join(sorted(sig.outputs))}")
    return "\n".join(lines)


def _short_space(space: str | None) -> str:
    """The first 12 hex digits of a space id (enough to tell spaces apart by eye; --json has it whole)."""
    return "-" if space is None else space.removeprefix("sha256:")[:12]


def _array_json(array: np.ndarray, *, values: bool) -> dict[str, Any]:
    described: dict[str, Any] = {"dtype": str(array.dtype), "shape": list(array.shape)}
    if values:
        if array.dtype == object:
            described["values"] = np.vectorize(_text, otypes=[object])(array).tolist() if array.size else []
        elif array.dtype.kind == "c":
            described["values"] = np.stack([array.real, array.imag], axis=-1).tolist()
        else:
            described["values"] = array.tolist()
    return described


def _text(item: object) -> str:
    return item.decode("utf-8", "backslashreplace") if isinstance(item, bytes) else str(item)


def _summary(array: np.ndarray) -> str:
    if array.size == 0 or array.dtype.kind not in "biuf":
        return ""
    values = array.astype(np.float64)
    return f"min={values.min():.6g} max={values.max():.6g} mean={values.mean():.6g}"
