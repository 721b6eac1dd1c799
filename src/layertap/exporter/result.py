"""What `export()` returns: the published version, its signatures, verification, sizes and timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ExportResult", "SignatureInfo", "Sizes"]


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
