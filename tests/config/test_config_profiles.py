"""The committed op-registry profiles: one per TF Serving release's TensorFlow, current, and what they say."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from layertap.config import opregistry, servers

ROOT = Path(__file__).resolve().parents[2]

# The live registry of the TensorFlow installed here, dumped in a child process: this process must not import
# TensorFlow (layertap.config's promise), and a registry that other tests extended (TF Text) would differ.
_LIVE = """
import json, sys
from layertap.config import opregistry
profile = opregistry.live_profile()
sys.stdout.write(json.dumps(profile.to_json()))
"""


def test_every_release_has_a_profile() -> None:
    available = set(opregistry.available_profiles())
    needed = {release.tensorflow for release in servers.SERVER_RELEASES.values()}
    assert needed <= available, f"missing profiles: {sorted(needed - available)}"
    assert len(available) >= 3
    for version in available:
        profile = opregistry.load_profile(version)
        assert profile.tensorflow == version
        assert profile.source == f"tensorflow-cpu=={version} from PyPI, TF_GetAllOpList()"
        assert len(profile.ops) > 1800, (version, len(profile.ops))
        assert profile.graph_def_version > 1700


def test_profile_of_the_installed_tensorflow_is_current() -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", _LIVE], capture_output=True, text=True, env=env, check=True, timeout=300
    )
    live = json.loads(result.stdout)
    committed = opregistry.load_profile(live["tensorflow"]).to_json()
    assert live["graph_def_version"] == committed["graph_def_version"]
    # Profiles come from the tensorflow-cpu wheel. The `tensorflow` wheel installed here is also built for
    # GPUs and registers two more ops, runtime-internal copies a saved graph never holds.
    gpu_build_only = {"_CopyFromGpuToHost", "_CopyFromHostToGpu"}
    extra = set(live["ops"]) - set(committed["ops"])
    assert extra <= gpu_build_only, f"regenerate: python tools/dump_op_registry.py ({sorted(extra)})"
    for op in gpu_build_only & extra:
        del live["ops"][op]
    assert live["ops"] == committed["ops"], "regenerate: python tools/dump_op_registry.py"


def test_profiles_are_deterministic_compact_files(tmp_path: Path) -> None:
    profile = opregistry.load_profile(opregistry.available_profiles()[0])
    committed = opregistry.PROFILE_DIR / f"tensorflow-{profile.tensorflow}.json.gz"
    rewritten = opregistry.write_profile(profile, tmp_path)
    assert rewritten.read_bytes() == committed.read_bytes()
    assert committed.stat().st_size < 64 * 1024
    assert json.loads(gzip.decompress(committed.read_bytes()))["tensorflow"] == profile.tensorflow


def test_what_changed_between_the_oldest_and_newest_profile() -> None:
    # Facts the compat check rests on, read from the profiles (tools/dump_op_registry.py wrote them).
    old, new = opregistry.load_profile("2.16.1"), opregistry.load_profile("2.21.0")
    assert "DecodeWebP" in new.ops and "DecodeWebP" not in old.ops
    assert "bad_indices_policy" in new.ops["GatherNd"] and "bad_indices_policy" not in old.ops["GatherNd"]
    assert new.ops["GatherNd"]["bad_indices_policy"].default == {"s": ""}
    assert "use_shardy_partitioner" in new.ops["XlaCallModule"]
    assert "use_shardy_partitioner" not in old.ops["XlaCallModule"]
    assert new.ops["Conv2D"]["T"].type == "type"
    assert "DT_FLOAT" in new.ops["Conv2D"]["T"].allowed["list"]["type"]


def test_tf_text_profiles_of_the_linked_releases() -> None:
    linked = {release.tf_text for release in servers.SERVER_RELEASES.values() if release.tf_text}
    assert linked == {"2.12.1", "2.20.0"}
    assert set(opregistry.available_profiles(opregistry.TF_TEXT)) == linked
    assert not any(v.startswith("text") for v in opregistry.available_profiles())
    old, new = (opregistry.load_profile(v, opregistry.TF_TEXT) for v in ("2.12.1", "2.20.0"))
    assert old.source == "tensorflow-text==2.12.1 (with tensorflow-cpu==2.12.1) from PyPI, TF_GetAllOpList()"
    assert {"CaseFoldUTF8", "WordpieceTokenizeWithOffsets"} <= set(old.ops) & set(new.ops)
    assert "TFText>RoundRobinTrim" in new.ops and "TFText>RoundRobinTrim" not in old.ops
    # Only TF Text's own ops: none of TensorFlow's.
    assert not set(new.ops) & set(opregistry.load_profile("2.20.0").ops)


def test_server_releases_and_their_extras() -> None:
    assert list(servers.SERVER_RELEASES) == sorted(servers.SERVER_RELEASES, key=servers.version_key)
    assert servers.server_release("2.17.1").tensorflow == "2.17.0"  # same TensorFlow commit as 2.17.0
    assert servers.server_release("v2.18.0-gpu").xla_gpu
    assert not servers.server_release("2.17.0").xla_gpu
    assert {servers.server_release(v).tf_text for v in ("2.16.1", "2.19.1")} == {"2.12.1"}
    assert servers.server_release("2.20.0").tf_text == "2.20.0"
