"""`ExportRequest`: everything `export()` was asked to do, typed, and checked once before any work.

The checks here need neither the model nor the repository: an unknown server release, a bad regular
expression, a parity check that cannot run, a malformed head or an unknown head op, options a SavedModel
without Keras cannot take. They run when the request is built, so a mistake costs no model load (seconds)
and writes nothing. What needs the repository (the base path, the version) is checked by the first stage
(`layertap.exporter.stages.preflight`); what needs the model (layer specs) by the planning stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from layertap.config.servers import server_release
from layertap.errors import UsageError
from layertap.exporter import specs
from layertap.exporter.heads import HeadOp, check_head_name, parse_ops
from layertap.exporter.parity import check_parity_request
from layertap.exporter.source import ModelSource
from layertap.exporter.validate import DEFAULT_BATCH
from layertap.storage.publish import TransferCallback

__all__ = ["ExportRequest", "HeadRequest", "parse_heads"]


@dataclass(frozen=True)
class HeadRequest:
    """A head asked for: the layer spec it reads and its parsed ops."""

    spec: str | int
    ops: tuple[HeadOp, ...]


@dataclass(frozen=True)
class ExportRequest:
    """An export, as `export()`'s arguments describe it (see there for each field)."""

    source: ModelSource
    base_path: Path | str
    name: str
    layers: tuple[str | int, ...] = ()
    version: int | None = None
    all_layers: bool = False
    layers_matching: str | None = None
    groups: Mapping[str, tuple[str | int, ...]] = field(default_factory=dict)
    heads: Mapping[str, HeadRequest] = field(default_factory=dict)
    verify: bool = True
    seed: int = 0
    server: str | None = None
    validate: bool = False
    validate_batch: int = DEFAULT_BATCH
    parity_backend: str | None = None
    compare_with: int | str | None = None
    transfer: TransferCallback | None = None

    def __post_init__(self) -> None:
        """Refuse, before any work, what needs neither the model nor the repository to refuse.

        Raises:
            ConfigError: `server` is not a release layertap knows.
            UsageError: a bad pattern, parity request or head name, or Keras-only options for a
                SavedModel without Keras.
        """
        if self.server is not None:
            server_release(self.server)
        if self.source.is_graph_savedmodel:
            self._refuse_keras_options()
        for head in self.heads:
            check_head_name(head)
        check_parity_request(self.source.model, self.parity_backend)
        if self.layers_matching is not None:
            specs.check_pattern(self.layers_matching)

    def _refuse_keras_options(self) -> None:
        """Options that need a Keras model, refused for a SavedModel without one."""
        options = {
            "groups": self.groups,
            "heads": self.heads,
            "parity_backend": self.parity_backend,
            "server": self.server,
            "validate": self.validate,
            "compare_with": self.compare_with,
            "with_preprocessor": self.source.with_preprocessor,
            "all_layers": self.all_layers,
            "layers_matching": self.layers_matching,
        }
        given = sorted(option for option, value in options.items() if value)
        if given:
            raise UsageError(
                f"{self.source.model} is a SavedModel without a Keras model: only --layer TENSOR signatures "
                f"can be added to it; not supported for it: {', '.join(given)}"
            )


def parse_heads(requested: Mapping[str, tuple[str | int, Sequence[str] | str]]) -> dict[str, HeadRequest]:
    """`export()`'s `heads` argument, name -> (spec, ops), with each entry's ops parsed.

    Raises:
        UsageError: an entry that is not (SPEC, OPS), or a bad op.
    """
    parsed: dict[str, HeadRequest] = {}
    for name, entry in requested.items():
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise UsageError(f"head {name!r}: expected (SPEC, [OP, ...]), got {entry!r}")
        spec, ops = entry
        parsed[name] = HeadRequest(spec=spec, ops=parse_ops(ops))
    return parsed
