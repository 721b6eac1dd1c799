"""TensorFlow Serving's config files, built from protobuf messages and checked against the model repository.

Never imports TensorFlow: a model-ops machine needs only protobuf to generate and check configs.
"""

from __future__ import annotations

from layertap.config.models import (
    MODEL_PLATFORM,
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

__all__ = [
    "MODEL_PLATFORM",
    "all_versions",
    "describe_policy",
    "find_model",
    "format_model_server_config",
    "latest_versions",
    "parse_model_server_config",
    "read_model_server_config",
    "remove_model",
    "set_model",
    "set_version_policy",
    "specific_versions",
    "write_model_server_config",
]
