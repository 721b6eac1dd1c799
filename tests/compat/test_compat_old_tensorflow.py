"""Proof against a real old TensorFlow: `compat`'s verdict agrees with TF 2.16.1's session loader, both ways.

Exports are written with the project's TensorFlow (2.21); the old environment (tests/fixtures/oldtf.py) loads
them through its TF1 session loader, which is the loader TF Serving 2.16.1 is built with, and runs every
signature.
The graphs use what the profiles say changed since 2.16.1:
- the op `DecodeWebP` (new in 2.20): compat error; the old loader refuses the graph (`Op type not
  registered`);
- `StringToNumber` with `out_type=uint32` (allowed since 2.17): compat error; the old TensorFlow refuses the
  node when the function runs (`Value for attr 'out_type' of uint32 is not in the list of allowed values`);
- `GatherNd`'s attr `bad_indices_policy` (new in 2.17) with a non-default value: compat warning; the old
  TensorFlow ignores attrs it does not know (`NodeDef mentions attribute ... will be ignored`) and runs it;
- the same attr at its default value is stripped when saving: nothing to report, and it runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from layertap.config import compat
from tests.fixtures.oldtf import OldTensorFlow

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


def _save_module(path: Path, kind: str) -> Path:
    """A SavedModel whose only function is the graph of `kind` (a module saves every tf.function it has)."""
    import tensorflow as tf

    if kind == "webp":
        spec = tf.TensorSpec([], tf.string, name="image")

        def body(image: Any) -> Any:
            return {"pixels": tf.io.decode_webp(image)}
    elif kind == "to_uint32":
        spec = tf.TensorSpec([None], tf.string, name="text")

        def body(text: Any) -> Any:
            return {"number": tf.strings.to_number(text, out_type=tf.uint32)}
    else:
        spec = tf.TensorSpec([None, 3], tf.float32, name="x")
        policy = "ERROR" if kind == "gather_error" else ""

        def body(x: Any) -> Any:
            return {"row": tf.raw_ops.GatherNd(params=x, indices=[[0]], bad_indices_policy=policy)}

    module = tf.Module()
    module.serve = tf.function(body, input_signature=[spec])
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> version directory, all written by this process's TensorFlow 2.21."""
    from layertap.demo.tutorial_cnn import build_tutorial_cnn
    from layertap.exporter import export

    root = tmp_path_factory.mktemp("exports")
    result = export(build_tutorial_cnn(), ["conv_2", "pool_2"], base_path=root / "models", name="cnn")
    made = {"cnn": Path(result.path)}
    for kind in ("gather_default", "gather_error", "webp", "to_uint32"):
        made[kind] = _save_module(root / kind, kind)
    return made


def test_compat_agrees_with_the_old_session_loader(
    exports: dict[str, Path], old_tensorflow: OldTensorFlow
) -> None:
    result = old_tensorflow.run(str(HERE / "old_loader_child.py"), *map(str, exports.values()))
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = {Path(line["path"]).name: line for line in map(json.loads, result.stdout.splitlines())}
    by_name = {name: outcomes[path.name] for name, path in exports.items()}
    assert {outcome["tensorflow"] for outcome in by_name.values()} == {"2.16.1"}
    verdicts = {name: compat.check_compat(path, "2.16.1") for name, path in exports.items()}

    # Both ways: what compat passes loads and answers; what it flags, the old TensorFlow refuses.
    assert {name: report.compatible for name, report in verdicts.items()} == {
        "cnn": True,
        "gather_default": True,
        "gather_error": True,
        "webp": False,
        "to_uint32": False,
    }
    answered = {name: bool(outcome["loaded"] and not outcome["error"]) for name, outcome in by_name.items()}
    assert answered == {name: report.compatible for name, report in verdicts.items()}
    assert by_name["cnn"]["outputs"] == {
        "conv_2": [[1, 11, 11, 64]],
        "pool_2": [[1, 5, 5, 64]],
        "serving_default": [[1, 10]],
    }
    assert (
        by_name["gather_default"]["outputs"]
        == by_name["gather_error"]["outputs"]
        == {"serving_default": [[1, 3]]}
    )

    # ... and for the same reasons.
    assert not by_name["webp"]["loaded"]
    assert "Op type not registered 'DecodeWebP'" in by_name["webp"]["error"]
    assert [problem.kind for problem in verdicts["webp"].problems] == ["op"]
    assert "Op type not registered 'DecodeWebP'" in verdicts["webp"].problems[0].message
    assert (
        "Value for attr 'out_type' of uint32 is not in the list of allowed values"
        in (by_name["to_uint32"]["error"])
    )
    (refused,) = verdicts["to_uint32"].problems
    assert (refused.kind, refused.level) == ("attr_value", "error")
    assert (
        "attr 'out_type' of op 'StringToNumber': value [\"DT_UINT32\"] is not in the list" in refused.message
    )
    (ignored,) = verdicts["gather_error"].problems
    assert (ignored.kind, ignored.level) == ("attr", "warning")
    assert ignored.message.startswith("NodeDef mentions attr 'bad_indices_policy' not in Op 'GatherNd'")
    assert verdicts["gather_default"].problems == verdicts["cnn"].problems == ()

    # The same exports on the pinned server's TensorFlow: nothing to report.
    assert all(compat.check_compat(path).problems == () for path in exports.values())
