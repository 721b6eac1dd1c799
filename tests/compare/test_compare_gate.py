"""The promotion gate on `layertap config models label`: a label only moves within one embedding space."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.config import decide_label_move
from layertap.errors import ConfigError
from tests.fixtures.gate_repo import MODEL, Repo

REPO_ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, repo: Repo, versions: str = "1, 2, 3, 4, 5") -> Path:
    path = tmp_path / "models.config"
    path.write_text(
        "model_config_list {\n  config {\n"
        f'    name: "{MODEL}"\n    base_path: "{repo.path}"\n    model_platform: "tensorflow"\n'
        f"    model_version_policy {{ specific {{ versions: [{versions}] }} }}\n"
        '    version_labels { key: "stable" value: 1 }\n'
        "  }\n}\n",
        encoding="utf-8",
    )
    return path


def _label(config: Path, version: int, *flags: str) -> list[str]:
    return ["config", "models", "label", MODEL, "stable", str(version), "--config", str(config), *flags]


def test_a_changed_space_is_refused_and_the_config_is_untouched(
    gate_repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, gate_repo)
    before = config.read_bytes()
    assert main(_label(config, 4, "--step", "2", "--json")) == EXIT_USAGE
    captured = capsys.readouterr()
    decision = json.loads(captured.out)
    assert config.read_bytes() == before
    assert (decision["allowed"], decision["source"]) == (False, "compared now")
    assert (decision["old_version"], decision["new_version"]) == (1, 4)
    assert sorted(decision["blocking"]) == ["a", "b", "serving_default", "vec"]
    assert "mean cosine" in decision["blocking"]["b"]
    assert "refused, the embedding space changed" in captured.err
    assert "--accept-new-space" in captured.err

    assert main(_label(config, 4, "--step", "2", "--accept-new-space", "--json")) == EXIT_OK
    accepted = json.loads(capsys.readouterr().out)
    assert (accepted["allowed"], accepted["accepted_new_space"]) == (True, True)
    assert "value: 4" in config.read_text(encoding="utf-8")


def test_identical_and_compatible_versions_pass_from_the_manifests(
    gate_repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, gate_repo)
    assert main(_label(config, 2, "--json")) == EXIT_OK
    decision = json.loads(capsys.readouterr().out)
    assert (decision["allowed"], decision["source"]) == (True, "space ids")
    assert {v["verdict"] for v in decision["verdicts"].values()} == {"identical"}

    config = _config(tmp_path, gate_repo)
    assert main(_label(config, 3, "--json")) == EXIT_OK
    decision = json.loads(capsys.readouterr().out)
    assert (decision["allowed"], decision["source"]) == (True, "recorded at export")
    assert {v["verdict"] for v in decision["verdicts"].values()} == {"compatible"}
    assert "value: 3" in config.read_text(encoding="utf-8")


def test_only_the_signature_whose_layer_changed_blocks(gate_repo: Repo) -> None:
    decision = decide_label_move(MODEL, "stable", 1, 5, base_path=gate_repo.path, compare=_verdicts_now)
    assert (decision.allowed, decision.source, sorted(decision.blocking)) == (False, "compared now", ["vec"])
    dropped = decide_label_move(MODEL, "stable", 1, 6, base_path=gate_repo.path, compare=_verdicts_now)
    assert dropped.blocking == {"vec": "only the old version has this signature"}
    added = decide_label_move(MODEL, "stable", 6, 1, base_path=gate_repo.path, compare=_verdicts_now)
    assert (added.allowed, added.blocking) == (True, {})  # a new signature breaks no stored vector


def test_without_manifests_or_a_comparison_the_gate_says_what_to_run(gate_repo: Repo) -> None:
    with pytest.raises(
        ConfigError, match=r"run `layertap compare .*/1 .*/4`, or export with --compare-with 1"
    ):
        decide_label_move(MODEL, "stable", 1, 4, base_path=gate_repo.path)
    assert decide_label_move(MODEL, "fresh", None, 4, base_path=gate_repo.path).source == "new label"


def _verdicts_now(old: Path, new: Path) -> dict[str, tuple[str, str]]:
    from layertap.compare import compare_versions, open_version

    comparison = compare_versions(open_version(old), open_version(new), rows=128)
    return {k: (s.verdict, s.reason) for k, s in comparison.signatures.items() if s.only_in != "new"}


_BLOCKED = """
import sys
for blocked in ("tensorflow", "keras", "tensorflow_serving"):
    sys.modules[blocked] = None
from layertap.cli import main
code = main(["config", "models", "label", "emb", "stable", sys.argv[2], "--config", sys.argv[1]])
print(code, sorted(n for n, m in sys.modules.items() if m is not None and n.split(".")[0] == "tensorflow"))
"""


def test_recorded_verdicts_need_no_tensorflow(gate_repo: Repo, tmp_path: Path) -> None:
    config = _config(tmp_path, gate_repo)
    # 1 -> 2: equal space ids. 2 -> 3: 3 recorded its comparison with 1, whose ids 2 shares.
    for version in ("2", "3"):
        result = subprocess.run(
            [sys.executable, "-c", _BLOCKED, str(config), version],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=REPO_ROOT,
        )
        assert result.stdout.split("\n")[0] == "0 []", result.stderr
        assert f"value: {version}" in config.read_text(encoding="utf-8")
