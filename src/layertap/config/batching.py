"""`batching.config` (TF Serving's `--batching_parameters_file`): every field, validated, GPU-minded defaults.

TF Serving keeps ONE batch queue per signature, all sharing `num_batch_threads` threads: requests for
different layer signatures of a layertap export never share a batch, and each signature's queue holds up to
`max_enqueued_batches` batches of `max_batch_size` rows. Size the memory for that product, per signature.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Literal

from layertap.config.files import ConfigFile
from layertap.errors import ConfigError, ConfigParseError
from layertap.proto import serving_pb2 as pb

__all__ = [
    "BATCHING_CONFIG",
    "MAX_BATCH_TIMEOUT_MICROS",
    "BatchingSettings",
    "format_batching_config",
    "gpu_batching_defaults",
    "parse_batching_config",
    "read_batching_config",
    "write_batching_config",
]

#: Upper bound we accept for `batch_timeout_micros`: 10 s. TF Serving's guide suggests a few milliseconds
#: online and "a few seconds" for bulk jobs; more holds every underfull batch for longer than any deadline.
MAX_BATCH_TIMEOUT_MICROS = 10_000_000

_IntField = Literal[
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
    "max_execution_batch_size",
]


@dataclass(frozen=True)
class BatchingSettings:
    """TF Serving's `BatchingParameters` as a value object; `None` leaves the server's default.

    Fields, as TF Serving reads them:
        max_batch_size: most rows one batch holds (server default 1000).
        batch_timeout_micros: how long an underfull batch waits for more requests (default 0).
        max_enqueued_batches: queue length per signature, in batches; beyond it requests fail UNAVAILABLE.
        num_batch_threads: threads that run batches, shared by every queue (default: CPU cores).
        thread_pool_name: name of that thread pool.
        allowed_batch_sizes: sizes a batch is padded up to, ascending; the last equals `max_batch_size`
            (or `max_execution_batch_size` when large batches are split).
        pad_variable_length_inputs: pad inputs whose non-batch dimensions differ between requests.
        enable_large_batch_splitting: split a request larger than `max_execution_batch_size` across batches.
        max_execution_batch_size: the largest batch actually run when splitting is enabled.
    """

    max_batch_size: int | None = None
    batch_timeout_micros: int | None = None
    max_enqueued_batches: int | None = None
    num_batch_threads: int | None = None
    thread_pool_name: str | None = None
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool | None = None
    max_execution_batch_size: int | None = None

    def __post_init__(self) -> None:
        problems = _problems(dataclasses.asdict(self))
        if problems:
            raise ConfigError("invalid batching parameters: " + "; ".join(problem for _, problem in problems))

    def replace(self, **changes: object) -> BatchingSettings:
        """Return a copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_proto(self) -> pb.BatchingParameters:
        """The `BatchingParameters` message TF Serving reads; unset fields are left out."""
        message = pb.BatchingParameters()
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
            value = getattr(self, name)
            if value is not None:
                getattr(message, name).value = value
        if self.thread_pool_name is not None:
            message.thread_pool_name.value = self.thread_pool_name
        message.allowed_batch_sizes.extend(self.allowed_batch_sizes)
        message.pad_variable_length_inputs = self.pad_variable_length_inputs
        if self.enable_large_batch_splitting is not None:
            message.enable_large_batch_splitting.value = self.enable_large_batch_splitting
        if self.max_execution_batch_size is not None:
            message.max_execution_batch_size.value = self.max_execution_batch_size
        return message

    @classmethod
    def from_proto(cls, message: pb.BatchingParameters) -> BatchingSettings:
        """Read a `BatchingParameters` message (validated).

        Raises:
            ConfigError: a value breaks one of TF Serving's rules.
        """

        return cls(**_values(message))


def gpu_batching_defaults(num_batch_threads: int = 4) -> BatchingSettings:
    """Defaults for one GPU serving layer signatures online; a starting point to tune from.

    - `max_batch_size` 64 with `allowed_batch_sizes` 8, 16, 32, 64: a GPU runs 64 rows in about the time of
      one, and padding to four fixed sizes means the GPU kernels (and cuDNN's autotuning) see four shapes,
      not 64, so no request pays for a first-seen shape after warmup.
    - `batch_timeout_micros` 2000: an underfull batch waits at most 2 ms, which bounds the latency added at
      low load (TF Serving's guide: "typically a few milliseconds").
    - `num_batch_threads`: the host's CPU cores (TF Serving's GPU advice); they only feed the GPU.
    - `max_enqueued_batches` equal to `num_batch_threads`: for online serving TF Serving advises a short
      queue, so an overloaded server answers UNAVAILABLE quickly (clients retry elsewhere) instead of
      queueing requests past their deadlines. There is one such queue per signature.
    """
    return BatchingSettings(
        max_batch_size=64,
        batch_timeout_micros=2000,
        max_enqueued_batches=num_batch_threads,
        num_batch_threads=num_batch_threads,
        allowed_batch_sizes=(8, 16, 32, 64),
        pad_variable_length_inputs=False,
    )


def _settings(message: pb.BatchingParameters, text: str, path: str | None) -> BatchingSettings:
    try:
        return BatchingSettings.from_proto(message)
    except ConfigError as error:
        # Point at the line of the first field at fault.
        problems = _problems(_values(message))
        line = _field_line(text, problems[0][0]) if problems else None
        raise ConfigParseError(str(error), path=path, line=line) from error


#: `batching.config`, handed out as `BatchingSettings`: every rule checked on reading, with the line of the
#: first field at fault.
BATCHING_CONFIG = ConfigFile(pb.BatchingParameters, _settings, BatchingSettings.to_proto)
parse_batching_config, read_batching_config = BATCHING_CONFIG.parse, BATCHING_CONFIG.read
format_batching_config, write_batching_config = BATCHING_CONFIG.format, BATCHING_CONFIG.write


def _problems(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, problem) pairs for what TF Serving (or our ranges) would refuse; empty when valid."""
    problems: list[tuple[str, str]] = []
    for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads", "max_execution_batch_size"):
        value = values[name]
        if value is not None and value < 1:
            problems.append((name, f"{name} must be a positive integer; got {value}"))
    timeout = values["batch_timeout_micros"]
    if timeout is not None and not 0 <= timeout <= MAX_BATCH_TIMEOUT_MICROS:
        problems.append(
            (
                "batch_timeout_micros",
                f"batch_timeout_micros must be between 0 and {MAX_BATCH_TIMEOUT_MICROS} (10 s); "
                f"got {timeout}",
            )
        )
    if values["thread_pool_name"] is not None and not values["thread_pool_name"]:
        problems.append(("thread_pool_name", "thread_pool_name must not be empty when set"))
    splitting = bool(values["enable_large_batch_splitting"])
    execution, maximum = values["max_execution_batch_size"], values["max_batch_size"]
    if execution is not None and not splitting:
        problems.append(
            (
                "max_execution_batch_size",
                "max_execution_batch_size only applies with enable_large_batch_splitting: true",
            )
        )
    if splitting and execution is not None and maximum is not None and execution > maximum:
        problems.append(
            (
                "max_execution_batch_size",
                f"max_execution_batch_size ({execution}) must not exceed max_batch_size ({maximum})",
            )
        )
    sizes = tuple(values["allowed_batch_sizes"])
    if sizes:
        problem = _allowed_sizes_problem(sizes, maximum, execution, splitting)
        if problem:
            problems.append(("allowed_batch_sizes", problem))
    return problems


def _allowed_sizes_problem(
    sizes: tuple[int, ...], maximum: int | None, execution: int | None, splitting: bool
) -> str | None:
    if min(sizes) < 1 or any(b <= a for a, b in itertools.pairwise(sizes)):
        return f"allowed_batch_sizes must be positive and strictly ascending; got {list(sizes)}"
    limit_name, limit = ("max_execution_batch_size", execution) if splitting else ("max_batch_size", maximum)
    if limit is None:
        return f"allowed_batch_sizes needs {limit_name} set, equal to its last entry ({sizes[-1]})"
    if sizes[-1] != limit:
        return f"the last allowed_batch_sizes entry must equal {limit_name} ({limit}); got {list(sizes)}"
    return None


def _values(message: pb.BatchingParameters) -> dict[str, Any]:
    """The message's fields as `BatchingSettings` keyword arguments (None where unset)."""

    def wrapped(name: _IntField) -> int | None:
        return int(getattr(message, name).value) if message.HasField(name) else None

    return {
        "max_batch_size": wrapped("max_batch_size"),
        "batch_timeout_micros": wrapped("batch_timeout_micros"),
        "max_enqueued_batches": wrapped("max_enqueued_batches"),
        "num_batch_threads": wrapped("num_batch_threads"),
        "thread_pool_name": message.thread_pool_name.value if message.HasField("thread_pool_name") else None,
        "allowed_batch_sizes": tuple(message.allowed_batch_sizes),
        "pad_variable_length_inputs": message.pad_variable_length_inputs,
        "enable_large_batch_splitting": (
            message.enable_large_batch_splitting.value
            if message.HasField("enable_large_batch_splitting")
            else None
        ),
        "max_execution_batch_size": wrapped("max_execution_batch_size"),
    }


def _field_line(text: str, field: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith(field) and line.strip()[len(field) :].lstrip()[:1] in (":", "{", "<"):
            return number
    return None
