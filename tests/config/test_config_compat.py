"""`check_compat`: a SavedModel against a TF Serving release's op registry, read without TensorFlow.

The SavedModels are the session's real one (conftest), edited at the protobuf level with layertap's own
graph schema so each carries exactly one problem; tests/compat proves the verdicts against a real old
TensorFlow.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from layertap.cli import EXIT_OK, EXIT_USAGE, main
from layertap.config import compat
from layertap.errors import ConfigError
from layertap.proto import serving_pb2 as pb
from tests.fixtures.graphedit import edit_graph, function_node, use_op

Edit = Callable[[Any], None]


@pytest.fixture
def edited(tmp_path: Path, layer_signatures_saved_model: Path) -> Callable[[Edit], Path]:
    """A copy of the session's SavedModel with `edit(meta_graph)` applied to its `serve` MetaGraph."""

    def make(edit: Edit) -> Path:
        target = tmp_path / f"v{len(list(tmp_path.iterdir())) + 1}"
        shutil.copytree(layer_signatures_saved_model, target)
        return edit_graph(target, edit)

    return make


def _set_attr(node: Any, name: str, **value: Any) -> None:
    entry = node.attr[name]
    for field, content in value.items():
        setattr(entry, field, content)


def test_a_plain_export_is_compatible_with_every_release(layer_signatures_saved_model: Path) -> None:
    for server in ("2.16.1", "2.17.1", "2.20.0", compat.SERVING_VERSION):
        report = compat.check_compat(layer_signatures_saved_model, server)
        assert report.problems == (), server
        assert report.compatible
        assert report.exported_with.startswith("2.21")
        assert report.producer > 2000


def test_an_op_the_server_lacks(edited: Callable[[Edit], Path]) -> None:
    version = edited(use_op("DecodeWebP"))
    report = compat.check_compat(version, "2.16.1")
    assert not report.compatible
    (problem,) = report.problems
    assert (problem.level, problem.kind) == ("error", "op")
    assert problem.where.startswith("function ")
    assert "Op type not registered 'DecodeWebP' in TensorFlow 2.16.1, the server's" in str(problem)
    assert compat.check_compat(version, "2.21.0").problems == ()


def test_an_attr_the_servers_op_does_not_know_is_a_warning(edited: Callable[[Edit], Path]) -> None:
    def edit(graph: Any) -> None:
        use_op("GatherNd")(graph)
        node = function_node(graph, "GatherNd")
        _set_attr(node, "Tparams", type=pb.DT_FLOAT)
        _set_attr(node, "Tindices", type=pb.DT_INT32)
        _set_attr(node, "bad_indices_policy", s=b"IGNORE")

    version = edited(edit)
    report = compat.check_compat(version, "2.16.1")
    assert report.compatible  # TensorFlow 2.16.1 ignores attrs it does not know (tests/compat proves it)
    (problem,) = report.problems
    assert (problem.level, problem.kind) == ("warning", "attr")
    assert problem.message == (
        "NodeDef mentions attr 'bad_indices_policy' not in Op 'GatherNd' of TensorFlow 2.16.1: that server "
        'ignores it and runs the op as 2.16.1 defines it, so the value {"s":"SUdOT1JF"} has no effect there'
    )
    assert compat.check_compat(version, "2.17.0").problems == ()  # where the attr appeared
    assert main(["compat", str(version), "--server", "2.16.1"]) == EXIT_OK
    assert main(["compat", str(version), "--server", "2.16.1", "--strict"]) == EXIT_USAGE


def test_attr_values_outside_the_allowed_list_and_required_attrs(edited: Callable[[Edit], Path]) -> None:
    def edit(graph: Any) -> None:
        node = function_node(graph, "Mul")
        node.attr["T"].type = pb.DT_STRING  # Mul's T does not allow strings
        node.op = "Mul"
        graph.graph_def.library.function[0].node_def[0].attr.clear()  # e.g. a ReadVariableOp without dtype

    report = compat.check_compat(edited(edit), "2.21.0")
    messages = [problem.message for problem in report.problems]
    assert any(
        "attr 'T' of op 'Mul': value [\"DT_STRING\"] is not in the list of allowed values" in m
        for m in messages
    )
    assert any("requires attr" in m and "the graph has none" in m for m in messages), messages


def test_rest_dtypes_are_warnings_or_errors(edited: Callable[[Edit], Path]) -> None:
    def edit(graph: Any) -> None:
        for signature in graph.signature_def.values():
            for output in signature.outputs.values():
                output.dtype = pb.DT_HALF

    version = edited(edit)
    report = compat.check_compat(version, "2.19.1")
    assert report.compatible
    assert {problem.kind for problem in report.problems} == {"rest_dtype"}
    assert "signature 'conv_2' output 'conv_2' is DT_HALF: TF Serving 2.19.1's REST API cannot write it" in (
        " ".join(str(problem) for problem in report.problems)
    )
    assert not compat.check_compat(version, "2.19.1", rest=True).compatible


def test_tf_text_ops_are_checked_against_the_tf_text_the_server_links(edited: Callable[[Edit], Path]) -> None:
    # CaseFoldUTF8 is in every TF Text; TF Serving 2.16.1-2.19.1 link TF Text 2.12.1, 2.20.0 links 2.20.0.
    common = edited(use_op("CaseFoldUTF8"))
    assert compat.check_compat(common, "2.16.1").problems == ()
    newer = edited(use_op("TFText>RoundRobinTrim"))  # added in TF Text after 2.12.1 (Keras Hub packers)
    (missing,) = [p for p in compat.check_compat(newer, "2.19.1").problems if p.kind == "op"]
    assert missing.level == "error"
    assert missing.message == (
        "Op type not registered 'TFText>RoundRobinTrim': a TF Text op, and the server links TF Text 2.12.1, "
        "which does not have it"
    )
    assert [p for p in compat.check_compat(newer, "2.20.0").problems if p.kind in ("op", "custom_op")] == []
    # 2.21.0 links TF Text 2.20.0 too (tensorflow/serving master's workspace.bzl; layertap.config.servers).
    assert [p for p in compat.check_compat(newer, "2.21.0").problems if p.kind in ("op", "custom_op")] == []


def test_every_release_has_the_ops_of_the_tf_text_it_links() -> None:
    from layertap.config import opregistry, servers

    recorded = opregistry.available_profiles(opregistry.TF_TEXT)
    for release in servers.SERVER_RELEASES.values():
        assert release.tf_text in recorded, release
    # The tokenizer ops KerasHub's BERT and GPT-2 preprocessors put in a graph, in the pinned release.
    linked = opregistry.load_profile(servers.SERVER_RELEASES["2.21.0"].tf_text, opregistry.TF_TEXT).ops
    assert {"RegexSplitWithOffsets", "WordpieceTokenizeWithOffsets", "TFText>RoundRobinTrim"} <= set(linked)


def test_custom_ops_are_warnings(edited: Callable[[Edit], Path]) -> None:
    version = edited(use_op("MyCompanyFusedOp"))
    (problem,) = compat.check_compat(version, "2.16.1").problems
    assert (problem.level, problem.kind) == ("warning", "custom_op")
    assert "is in no TensorFlow's or TF Text's registry: a custom op" in problem.message


def test_bad_arguments(tmp_path: Path, layer_signatures_saved_model: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown TF Serving release '2\.15\.0'; layertap has profiles for 2\.16\.1"
    ):
        compat.check_compat(layer_signatures_saved_model, "2.15.0")
    with pytest.raises(ConfigError, match="cannot read"):
        compat.check_compat(tmp_path, "2.16.1")
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\xff\xff")
    with pytest.raises(ConfigError, match="is not a SavedModel protobuf"):
        compat.check_compat(tmp_path, "2.16.1")


def test_cli(
    edited: Callable[[Edit], Path], layer_signatures_saved_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compat", str(layer_signatures_saved_model), "--server", "2.16.1"]) == EXIT_OK
    assert "compatible with TF Serving 2.16.1 (TensorFlow 2.16.1)" in capsys.readouterr().out
    version = edited(use_op("DecodeWebP"))
    assert main(["compat", str(version), "--server", "2.16.1"]) == EXIT_USAGE
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("error: function ") and "Op type not registered 'DecodeWebP'" in out[0]
    assert out[-1].startswith(f"{version}: NOT compatible with TF Serving 2.16.1")
    assert main(["compat", str(version), "--server", "2.16.1", "--json"]) == EXIT_USAGE
    body = json.loads(capsys.readouterr().out)
    assert body["compatible"] is False and body["server"] == "2.16.1"
    assert body["problems"][0]["kind"] == "op"
    assert main(["compat", str(version), "--server", "9.9.9"]) == EXIT_USAGE
    assert "unknown TF Serving release '9.9.9'" in capsys.readouterr().err
