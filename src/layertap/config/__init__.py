"""TensorFlow Serving's config files, built from protobuf messages and checked against the model repository.

Never imports TensorFlow: a model-ops machine needs only protobuf to generate and check configs.

Each config file kind is one `ConfigFile` (`MODEL_SERVER_CONFIG`, `BATCHING_CONFIG`, `MONITORING_CONFIG`,
`SSL_CONFIG`) that parses, reads, formats and writes it; `parse_model_server_config`, `read_batching_config`,
`write_ssl_config` and the like are those objects' methods under the names they always had.

- `models.config`: `parse_model_server_config`, `set_model`, `remove_model`, `set_version_policy`, labels
  (`set_label`, the two-step `begin_label_move` / `finish_label_move`), and the promotion gate that refuses
  to move a label into another embedding space (`decide_label_move`).
- `batching.config`: `BatchingSettings`, `gpu_batching_defaults`.
- `monitoring.config`: `monitoring_config` (Prometheus path); `ssl.config`: `ssl_config` (gRPC TLS).
- `check_serving_config`: the config against the repository on disk.
- `check_compat`: would a TF Serving release (`SERVER_RELEASES`) load a version? Its graph against the op
  registry of the release's TensorFlow (`opregistry`, profiles in `op_registries/`).
- `demo_files`: the demo model's files, as committed in `serving_config/`.
"""

from __future__ import annotations

from layertap.config.batching import (
    BATCHING_CONFIG,
    BatchingSettings,
    format_batching_config,
    gpu_batching_defaults,
    parse_batching_config,
    read_batching_config,
    write_batching_config,
)
from layertap.config.check import CheckReport, Finding, check_serving_config, resolve_base_path
from layertap.config.compat import (
    IMAGE_TENSORFLOW_VERSION,
    SERVING_IMAGE_CPU,
    SERVING_IMAGE_GPU,
    SERVING_VERSION,
    CompatProblem,
    CompatReport,
    check_compat,
)
from layertap.config.demo import DEMO_BASE_PATH, DEMO_MODEL_NAME, demo_files, write_demo_files
from layertap.config.files import ConfigFile
from layertap.config.gate import GateDecision, decide_label_move
from layertap.config.labels import begin_label_move, finish_label_move, remove_label, set_label
from layertap.config.models import (
    MODEL_PLATFORM,
    MODEL_SERVER_CONFIG,
    all_versions,
    describe_policy,
    find_model,
    format_model_server_config,
    latest_versions,
    parse_model_server_config,
    read_model_server_config,
    remove_model,
    set_model,
    set_version_policy,
    specific_versions,
    write_model_server_config,
)
from layertap.config.monitoring import (
    MONITORING_CONFIG,
    PROMETHEUS_PATH,
    format_monitoring_config,
    monitoring_config,
    parse_monitoring_config,
    read_monitoring_config,
    write_monitoring_config,
)
from layertap.config.repository import VersionDir, aspired_versions, list_versions
from layertap.config.servers import SERVER_RELEASES, ServerRelease, server_release
from layertap.config.ssl import (
    SSL_CONFIG,
    format_ssl_config,
    parse_ssl_config,
    read_ssl_config,
    ssl_config,
    write_ssl_config,
)
from layertap.version_folder import SavedModelSummary, read_manifest, read_saved_model_summary

__all__ = [
    "BATCHING_CONFIG",
    "DEMO_BASE_PATH",
    "DEMO_MODEL_NAME",
    "IMAGE_TENSORFLOW_VERSION",
    "MODEL_PLATFORM",
    "MODEL_SERVER_CONFIG",
    "MONITORING_CONFIG",
    "PROMETHEUS_PATH",
    "SERVER_RELEASES",
    "SERVING_IMAGE_CPU",
    "SERVING_IMAGE_GPU",
    "SERVING_VERSION",
    "SSL_CONFIG",
    "BatchingSettings",
    "CheckReport",
    "CompatProblem",
    "CompatReport",
    "ConfigFile",
    "Finding",
    "GateDecision",
    "SavedModelSummary",
    "ServerRelease",
    "VersionDir",
    "all_versions",
    "aspired_versions",
    "begin_label_move",
    "check_compat",
    "check_serving_config",
    "decide_label_move",
    "demo_files",
    "describe_policy",
    "find_model",
    "finish_label_move",
    "format_batching_config",
    "format_model_server_config",
    "format_monitoring_config",
    "format_ssl_config",
    "gpu_batching_defaults",
    "latest_versions",
    "list_versions",
    "monitoring_config",
    "parse_batching_config",
    "parse_model_server_config",
    "parse_monitoring_config",
    "parse_ssl_config",
    "read_batching_config",
    "read_manifest",
    "read_model_server_config",
    "read_monitoring_config",
    "read_saved_model_summary",
    "read_ssl_config",
    "remove_label",
    "remove_model",
    "resolve_base_path",
    "server_release",
    "set_label",
    "set_model",
    "set_version_policy",
    "specific_versions",
    "ssl_config",
    "write_batching_config",
    "write_demo_files",
    "write_model_server_config",
    "write_monitoring_config",
    "write_ssl_config",
]
