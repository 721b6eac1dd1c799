"""`monitoring.config` (TF Serving's `--monitoring_config_file`): Prometheus metrics on the REST port."""

from __future__ import annotations

from layertap.config.files import ConfigFile, unchanged
from layertap.errors import ConfigError, ConfigParseError
from layertap.proto import serving_pb2 as pb

__all__ = [
    "MONITORING_CONFIG",
    "PROMETHEUS_PATH",
    "format_monitoring_config",
    "monitoring_config",
    "parse_monitoring_config",
    "read_monitoring_config",
    "write_monitoring_config",
]

#: TF Serving's conventional metrics path, served on the REST port (8501). Metrics are labelled by model
#: (and version), not by signature: per-layer latency is not visible there.
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def monitoring_config(path: str = PROMETHEUS_PATH, *, enable: bool = True) -> pb.MonitoringConfig:
    """A `MonitoringConfig` exposing Prometheus metrics at `path` on the REST port.

    Raises:
        ConfigError: `path` is not an absolute URL path, or would shadow the `/v1/` REST API.
    """
    _check_path(path)
    message = pb.MonitoringConfig()
    message.prometheus_config.enable = enable
    message.prometheus_config.path = path
    return message


def _checked(message: pb.MonitoringConfig, text: str, path: str | None) -> pb.MonitoringConfig:
    metrics_path = message.prometheus_config.path
    if metrics_path:
        try:
            _check_path(metrics_path)
        except ConfigError as error:
            line = next(
                (n for n, line in enumerate(text.splitlines(), start=1) if line.strip().startswith("path")),
                None,
            )
            raise ConfigParseError(str(error), path=path, line=line) from error
    return message


#: `monitoring.config`: the Prometheus path checked on reading (an absolute path, not under `/v1/`).
MONITORING_CONFIG = ConfigFile(pb.MonitoringConfig, _checked, unchanged)
parse_monitoring_config, read_monitoring_config = MONITORING_CONFIG.parse, MONITORING_CONFIG.read
format_monitoring_config, write_monitoring_config = MONITORING_CONFIG.format, MONITORING_CONFIG.write


def _check_path(path: str) -> None:
    if not path.startswith("/") or any(char.isspace() for char in path) or "?" in path:
        raise ConfigError(
            f"the Prometheus path must be an absolute URL path like {PROMETHEUS_PATH!r}; got {path!r}"
        )
    if path == "/v1" or path.startswith("/v1/"):
        raise ConfigError(f"the Prometheus path {path!r} would shadow TF Serving's /v1/ REST API")
