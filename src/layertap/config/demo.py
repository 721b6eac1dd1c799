"""The demo model's serving files, as committed in `serving_config/` and mounted by `docker/`.

`demo_files()` is the one source of those files: `layertap config demo --out serving_config` writes them,
the demo calls it, and a test fails when the committed copies drift from it.
"""

from __future__ import annotations

import os
from pathlib import Path

from layertap.config.batching import format_batching_config, gpu_batching_defaults
from layertap.config.models import format_model_server_config, latest_versions, set_model
from layertap.config.monitoring import PROMETHEUS_PATH, format_monitoring_config, monitoring_config
from layertap.config.textformat import write_text_file
from layertap.proto import serving_pb2 as pb

__all__ = ["DEMO_BASE_PATH", "DEMO_MODEL_NAME", "demo_files", "write_demo_files"]

DEMO_MODEL_NAME = "tutorial_cnn"
#: Where the model repository is mounted inside the serving container (docker/compose.yaml, k8s).
DEMO_BASE_PATH = f"/models/{DEMO_MODEL_NAME}"


def demo_files(
    model_name: str = DEMO_MODEL_NAME,
    base_path: str = DEMO_BASE_PATH,
    *,
    num_batch_threads: int = 4,
) -> dict[str, str]:
    """The demo's `models.config`, `batching.config` and `monitoring.config`, by file name.

    The model is served with `latest { num_versions: 1 }` (a new version replaces the old one once it has
    loaded) and no labels, so the files start a fresh server as they are (labels fail at server start).
    """
    models = set_model(pb.ModelServerConfig(), model_name, base_path, policy=latest_versions(1))
    return {
        "models.config": format_model_server_config(models),
        "batching.config": format_batching_config(gpu_batching_defaults(num_batch_threads)),
        "monitoring.config": format_monitoring_config(monitoring_config(PROMETHEUS_PATH)),
    }


def write_demo_files(
    directory: str | os.PathLike[str],
    model_name: str = DEMO_MODEL_NAME,
    base_path: str = DEMO_BASE_PATH,
    *,
    num_batch_threads: int = 4,
) -> list[Path]:
    """Write `demo_files(...)` into `directory` (atomically, file by file); returns the paths written."""
    written = []
    files = demo_files(model_name, base_path, num_batch_threads=num_batch_threads)
    for name, text in files.items():
        path = Path(directory) / name
        write_text_file(path, text)
        written.append(path)
    return written
