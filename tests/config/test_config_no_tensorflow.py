"""layertap.config and `layertap config` never import TensorFlow, directly or indirectly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import layertap.config

REPO_ROOT = Path(__file__).resolve().parents[2]

# With sys.modules["tensorflow"] = None any import of TensorFlow raises ImportError, so a hidden import fails
# loudly; the CLI run also reads a real SavedModel and writes files.
_PROBE = """
import sys
for blocked in ("tensorflow", "keras", "tensorflow_serving"):
    sys.modules[blocked] = None
import layertap.config
import layertap.config.status
from layertap.cli import main
code = main(["config", "check", "--config", sys.argv[1], "--mount", sys.argv[2] + ":/models",
             "--signature", "conv_2"])
code |= main(["config", "demo", "--out", sys.argv[3]])
loaded = sorted(
    name for name, module in sys.modules.items()
    if module is not None and name.split(".")[0] in ("tensorflow", "keras", "tensorflow_serving", "grpc")
)
print(code, loaded)
"""


def test_config_runs_with_tensorflow_blocked(tmp_path: Path, layer_signatures_saved_model: Path) -> None:
    (tmp_path / "repo" / "tutorial_cnn").mkdir(parents=True)
    (tmp_path / "repo" / "tutorial_cnn" / "1").symlink_to(
        layer_signatures_saved_model, target_is_directory=True
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE,
            str(REPO_ROOT / "serving_config" / "models.config"),
            str(tmp_path / "repo"),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["tutorial_cnn: serves versions [1]", "0 []"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "batching.config",
        "models.config",
        "monitoring.config",
    ]


def test_public_api_is_explicit() -> None:
    exported = set(layertap.config.__all__)
    assert len(exported) == len(layertap.config.__all__)
    for name in exported:
        assert getattr(layertap.config, name) is not None
    public = {name for name in vars(layertap.config) if not name.startswith("_")}
    modules = {
        "batching", "check", "compat", "demo", "gate", "labels", "models", "monitoring", "repository",
        "status", "textformat", "annotations", "ssl", "opregistry", "servers", "files",
    }  # fmt: skip
    assert public - modules == exported
