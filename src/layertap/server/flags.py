"""TF Serving's command-line flags, spelled as `tensorflow_model_server` spells them.

Every flag of TF Serving's `main.cc` is known here. The ones `layertap serve` implements parse into
`ServerOptions`; the others are refused by name with the reason, so a deployment command that relies on
one never runs with it silently ignored. Flags parse as TF Serving's do: `--flag=value` or
`--flag value`, and booleans as `--flag`, `--flag=true`, `--flag=false`, `--flag=1`, `--flag=0`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from typing import Any, get_type_hints

from layertap.errors import ConfigError, LocationError
from layertap.server.filesystem import config_location, location

__all__ = [
    "DEFAULT_BIND_ADDRESS",
    "UNSUPPORTED_FLAGS",
    "ServerOptions",
    "add_flags",
    "options_from_args",
    "parse_bool",
]

#: layertap listens on loopback unless told otherwise (`--bind_address=0.0.0.0`); TF Serving binds all
#: interfaces, which on a laptop would expose every loaded model to the network.
DEFAULT_BIND_ADDRESS = "127.0.0.1"


def _readable(check: Callable[[str], object]) -> Callable[[str], str]:
    """A flag type that refuses a path the server cannot read (s3://, other schemes) while parsing.

    A URI is never a relative path, and only what TF Serving can read is served; checked as the
    arguments are parsed, before TensorFlow is imported or any model loads.
    """

    def convert(text: str) -> str:
        if text:
            try:
                check(text)
            except LocationError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
        return text

    return convert


def _about(
    help_text: str, *, parse: Callable[[str], str] | None = None, layertap_only: bool = False
) -> dict[str, Any]:
    """A ServerOptions field's flag: its `--help` line, the check its text passes while the arguments
    are parsed (`parse`, else the field's type), and whether TF Serving has no such flag."""
    return {"help": help_text, "parse": parse, "layertap_only": layertap_only}


def _flag(default: Any, help_text: str, **about: Any) -> Any:
    """A ServerOptions field that is also a flag (`about`: as `_about`'s keywords)."""
    return field(default=default, metadata=_about(help_text, **about))


@dataclass
class ServerOptions:
    """What `layertap serve` was asked to do. Field names follow TF Serving's flag names.

    Each field is declared once, with its flag's help: `add_flags` registers a `--NAME` flag per
    field, typed by the field's annotation.
    """

    port: int = _flag(8500, "gRPC port (default 8500); 0 picks a free port and logs it")
    grpc_socket_path: str = _flag("", "also listen for gRPC on this UNIX socket path")
    model_name: str = _flag("default", "name of the model (ignored with --model_config_file)")
    model_base_path: str = _flag(
        "",
        "folder (or gs://BUCKET/PREFIX) holding numbered version folders of one model",
        parse=_readable(location),
    )
    model_config_file: str = _flag(
        "",
        "ModelServerConfig in protobuf text format (models.config; a path or gs://)",
        parse=_readable(config_location),
    )
    model_config_file_poll_wait_seconds: int = _flag(0, "re-read --model_config_file this often; 0 = once")
    file_system_poll_wait_seconds: int = _flag(1, "look for new versions this often (default 1)")
    enable_model_warmup: bool = _flag(True, "replay assets.extra/tf_serving_warmup_requests before serving")
    num_request_iterations_for_warmup: int = _flag(0, "replay each warmup record this many times if > 0")
    enable_serialization_as_tensor_content: bool = _flag(False, "write response tensors as tensor_content")
    allow_version_labels_for_unavailable_models: bool = _flag(
        False, "allow a version label to name a version that is not AVAILABLE yet"
    )
    max_num_load_retries: int = _flag(5, "retries after a failed load (default 5)")
    load_retry_interval_micros: int = _flag(60 * 1000 * 1000, "wait between load retries (default 1 minute)")
    saved_model_tags: str = _flag("serve", "comma-separated MetaGraph tags to load (default serve)")
    tensorflow_intra_op_parallelism: int = _flag(0, "threads within one op; 0 = TensorFlow's choice")
    tensorflow_inter_op_parallelism: int = _flag(0, "ops run at once; 0 = TensorFlow's choice")
    tensorflow_session_parallelism: int = _flag(0, "sets both parallelisms when they are 0")
    grpc_max_threads: int = field(
        default_factory=lambda: 4 * (os.cpu_count() or 1),
        metadata=_about("requests run at once (default 4 x CPUs)"),
    )
    grpc_channel_arguments: str = _flag("", "gRPC server arguments, e.g. grpc.max_connection_age_ms=2000")
    enable_grpc_healthcheck_service: bool = _flag(
        True, "serve grpc.health.v1.Health (layertap default: true)"
    )
    enable_profiler: bool = _flag(
        True, "serve tensorflow.ProfilerService on the gRPC port (TensorBoard traces)"
    )
    enable_batching: bool = _flag(False, "batch concurrent requests of each signature on the server")
    batching_parameters_file: str = _flag(
        "", "BatchingParameters in protobuf text format (with --enable_batching)"
    )
    ssl_config_file: str = _flag("", "SSLConfig in protobuf text format: serve gRPC over TLS")
    monitoring_config_file: str = _flag("", "MonitoringConfig text: Prometheus metrics on the REST port")
    rest_api_port: int = _flag(0, "HTTP/REST port; 0 = no REST API (default)")
    rest_api_timeout_in_ms: int = _flag(30000, "deadline of one REST request (default 30000)")
    enable_signature_method_name_check: bool = _flag(
        False,
        "refuse Classify/Regress on signatures whose method_name is not theirs, and Predict on unknown ones",
    )
    # layertap's own flags (TF Serving has no equivalent).
    bind_address: str = _flag(
        DEFAULT_BIND_ADDRESS,
        "address to listen on (layertap only; default 127.0.0.1, loopback)",
        layertap_only=True,
    )
    max_queued_requests: int = _flag(
        64, "requests waiting for a thread before UNAVAILABLE (layertap only)", layertap_only=True
    )
    drain_seconds: float = _flag(
        30.0, "on SIGTERM/SIGINT, wait this long for in-flight requests (layertap only)", layertap_only=True
    )

    @property
    def tags(self) -> list[str]:
        """The MetaGraph tags to load, from the comma-separated `--saved_model_tags`."""
        return [tag.strip() for tag in self.saved_model_tags.split(",") if tag.strip()]

    def channel_arguments(self) -> list[tuple[str, int | str]]:
        """`--grpc_channel_arguments` ("a=1,b=x") as gRPC server options; integers stay integers."""
        arguments: list[tuple[str, int | str]] = []
        for item in filter(None, (part.strip() for part in self.grpc_channel_arguments.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(
                    f"--grpc_channel_arguments: expected comma-separated key=value pairs, got {item!r}"
                )
            arguments.append((key, int(value) if value.lstrip("-").isdigit() else value))
        return arguments


# TF Serving flags layertap serve refuses, with why (each message names the flag).
UNSUPPORTED_FLAGS: dict[str, str] = {
    "rest_api_num_threads": "the REST API runs on a small thread pool of its own",
    "rest_api_enable_cors_support": "the REST API sends no CORS headers",
    "enable_per_model_batching_parameters": (
        "per-model batching_params.pbtxt is not read; all models use --batching_parameters_file"
    ),
    "num_load_threads": "versions load one at a time, as with TF Serving's default of 0",
    "num_unload_threads": "versions unload one at a time, as with TF Serving's default of 0",
    "flush_filesystem_caches": "there are no filesystem caches to flush in this server",
    "tensorflow_session_config_file": (
        "use --tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism instead"
    ),
    "use_alts_credentials": "ALTS needs Google Cloud; use --ssl_config_file",
    "platform_config_file": "only the TensorFlow SavedModel platform is served",
    "per_process_gpu_memory_fraction": "layertap serve runs on the CPU",
    "remove_unused_fields_from_bundle_metagraph": "the MetaGraph is kept whole",
    "prefer_tflite_model": "TensorFlow Lite models are not served",
    "num_tflite_pools": "TensorFlow Lite models are not served",
    "num_tflite_interpreters_per_pool": "TensorFlow Lite models are not served",
    "xla_cpu_compilation_enabled": "XLA JIT compilation is not offered",
    "xla_gpu_compilation_enabled": "XLA JIT compilation is not offered",
    "thread_pool_factory_config_file": "custom inference thread pools are not offered",
    "mixed_precision": "mixed precision is a TPU/GPU option; layertap serve runs on the CPU",
    "skip_initialize_tpu": "layertap serve runs on the CPU",
}


def parse_bool(text: str) -> bool:
    """TensorFlow's boolean flag spelling: true/false/1/0 (any case)."""
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true, false, 1 or 0, got {text!r}")


def _refuse(flag: str, reason: str) -> Callable[[str], Any]:
    def convert(_: str) -> Any:
        raise argparse.ArgumentTypeError(
            f"--{flag} is a TensorFlow Serving flag that layertap serve does not support: {reason}"
        )

    return convert


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Register every TF Serving flag (implemented or refused) and layertap's own flags on `parser`."""
    defaults, kinds = ServerOptions(), get_type_hints(ServerOptions)
    tf_serving = [option for option in fields(ServerOptions) if not option.metadata["layertap_only"]]
    own = [option for option in fields(ServerOptions) if option.metadata["layertap_only"]]
    for option in tf_serving:
        _add_flag(parser, option, getattr(defaults, option.name), kinds[option.name])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    for option in own:
        _add_flag(parser, option, getattr(defaults, option.name), kinds[option.name])
    for flag, reason in UNSUPPORTED_FLAGS.items():
        parser.add_argument(
            f"--{flag}",
            type=_refuse(flag, reason),
            nargs="?",
            const="",
            default=None,
            help=argparse.SUPPRESS,
        )


def _add_flag(parser: argparse.ArgumentParser, option: Field[Any], default: Any, kind: type) -> None:
    """`--NAME` for one ServerOptions field of type `kind`; a boolean is given bare or as true/false/1/0."""
    if kind is bool:
        parser.add_argument(
            f"--{option.name}",
            type=parse_bool,
            nargs="?",
            const=True,
            default=default,
            metavar="true|false",
            help=f"{option.metadata['help']} (default {str(default).lower()})",
        )
    else:
        parse = option.metadata["parse"] or kind
        parser.add_argument(f"--{option.name}", type=parse, default=default, help=option.metadata["help"])


def options_from_args(args: argparse.Namespace) -> ServerOptions:
    """Collect parsed flags into ServerOptions, checking what argparse cannot.

    Raises:
        ConfigError: a refused flag was given bare (`--enable_batching`), or values contradict each other.
    """
    for flag, reason in UNSUPPORTED_FLAGS.items():
        # A bare boolean flag never reaches the type converter; refuse it here.
        if getattr(args, flag, None) is not None:
            raise ConfigError(
                f"--{flag} is a TensorFlow Serving flag that layertap serve does not support: {reason}"
            )
    names = ServerOptions.__dataclass_fields__.keys()
    options = ServerOptions(**{name: getattr(args, name) for name in names if hasattr(args, name)})
    if not options.model_config_file and not options.model_base_path:
        raise ConfigError(
            "either --model_base_path (with --model_name) or --model_config_file is required; got neither"
        )
    if options.rest_api_port and options.rest_api_port == options.port:
        raise ConfigError(f"--rest_api_port must differ from --port; both are {options.port}")
    if options.max_queued_requests < 0 or options.grpc_max_threads < 1:
        raise ConfigError(
            "--grpc_max_threads must be >= 1 and --max_queued_requests >= 0; got "
            f"{options.grpc_max_threads} and {options.max_queued_requests}"
        )
    if options.monitoring_config_file and not options.rest_api_port:
        raise ConfigError(
            f"--monitoring_config_file={options.monitoring_config_file} serves metrics on the REST port; "
            "add --rest_api_port (TF Serving uses 8501)"
        )
    if options.batching_parameters_file and not options.enable_batching:
        raise ConfigError(
            f"--batching_parameters_file={options.batching_parameters_file} needs --enable_batching=true; "
            "without it nothing would be batched"
        )
    if not options.tags:
        raise ConfigError("--saved_model_tags names no tag; the usual value is 'serve'")
    return options
