"""`check_serving_config`: the config against the repository on disk."""

from __future__ import annotations

from pathlib import Path

from layertap.config import check, labels, models
from layertap.config.compat import is_newer, parse_version
from layertap.config.gate import GateDecision
from layertap.proto import serving_pb2 as pb
from tests.fixtures.config_repos import VersionWriter
from tests.fixtures.graphedit import edit_graph, use_op


def _config(
    tmp_path: Path, policy: pb.ServableVersionPolicy | None = None, labels_: dict[str, int] | None = None
) -> pb.ModelServerConfig:
    config = models.set_model(models.parse_model_server_config(""), "cnn", "/models/cnn", policy=policy)
    for label, version in (labels_ or {}).items():
        models.find_model(config, "cnn").version_labels[label] = version
    return config


def _messages(report: check.CheckReport) -> list[str]:
    return [f"{finding.level}: {finding.message}" for finding in report.findings]


def test_clean_repository_passes(tmp_path: Path, write_version: VersionWriter) -> None:
    write_version("cnn", 1)
    write_version("cnn", 2)
    config = _config(tmp_path, models.specific_versions([1, 2]), {"stable": 1})
    report = check.check_serving_config(
        config,
        mounts={str(tmp_path / "models"): "/models"},
        signatures={"cnn": ["conv_2"], "*": ["pool_2"]},
    )
    assert report.findings == ()
    assert report.ok
    assert dict(report.served) == {"cnn": (1, 2)}


def test_every_problem_is_reported(tmp_path: Path, write_version: VersionWriter) -> None:
    write_version("cnn", 1, drop=("variables",))
    # Version 2 uses an op TensorFlow 2.16.1 does not register: TF Serving 2.16.1 would fail to load it.
    edit_graph(write_version("cnn", 2, manifest={"tensorflow_version": "2.21.0"}), use_op("DecodeWebP"))
    config = _config(tmp_path, models.specific_versions([1, 2, 3]), {"stable": 1, "canary": 4})
    report = check.check_serving_config(
        config,
        mounts={str(tmp_path / "models"): "/models"},
        signatures={"cnn": ["conv_2", "dense_9"], "ghost": ["x"]},
        server="2.16.1",
    )
    host = tmp_path / "models" / "cnn"
    messages = _messages(report)
    compat_message = messages.pop(5)
    assert compat_message.startswith(
        "error: version 2 on TF Serving 2.16.1 (TensorFlow 2.16.1; exported with 2.21."
    )
    assert compat_message.endswith(
        "node 'mul': Op type not registered 'DecodeWebP' in TensorFlow 2.16.1, the server's"
    )
    assert messages == [
        "error: label 'canary' points at version 4, which policy specific 1,2,3 does not serve "
        "(serves [1, 2]); TF Serving refuses a label on a version that is not AVAILABLE",
        f"error: version 1 (served by policy specific 1,2,3) is incomplete: missing variables/ in {host}/1 "
        "(half-copied? publish by writing elsewhere and renaming)",
        f"error: version 3 (named by the specific policy) is not on disk under /models/cnn (host: {host}); "
        "present: [1, 2]",
        f"error: version 4 (labelled 'canary') is not on disk under /models/cnn (host: {host}); "
        "present: [1, 2]",
        "error: version 2 has no signature dense_9; it has: conv_2, pool_2, serving_default",
        "error: signatures were requested for a model the config does not list",
    ]
    assert not report.ok
    assert len(report.errors) == 7


def test_missing_base_path_and_empty_base_path(tmp_path: Path) -> None:
    config = _config(tmp_path)
    report = check.check_serving_config(config)
    assert _messages(report) == ["error: base_path /models/cnn does not exist or is not a directory"]
    (tmp_path / "models" / "cnn").mkdir(parents=True)
    report = check.check_serving_config(config, mounts={str(tmp_path / "models"): "/models"})
    assert _messages(report)[0].startswith("error: base_path /models/cnn (host: ")
    assert _messages(report)[0].endswith(
        "holds no numbered version directory; TF Serving would serve nothing"
    )


def test_served_versions_are_checked_against_the_servers_op_registry(
    tmp_path: Path, write_version: VersionWriter
) -> None:
    # A TensorFlow 2.21 export of plain ops loads on TF Serving 2.16.1: no version-string warning.
    version = write_version("cnn", 1)
    mounts = {str(tmp_path / "models"): "/models"}
    for server in ("2.16.1", "2.20.0", "2.21.0"):
        assert check.check_serving_config(_config(tmp_path), mounts=mounts, server=server).findings == ()
    edit_graph(version, use_op("DecodeWebP"))
    report = check.check_serving_config(_config(tmp_path), mounts=mounts, server="2.17.1")
    assert [finding.level for finding in report.findings] == ["error"]
    assert "Op type not registered 'DecodeWebP' in TensorFlow 2.17.0" in report.findings[0].message
    assert check.check_serving_config(_config(tmp_path), mounts=mounts, server="2.21.0").findings == ()


def test_labels_with_latest_policy_warn(tmp_path: Path, write_version: VersionWriter) -> None:
    write_version("cnn", 1)
    config = _config(tmp_path, None, {"stable": 1})
    report = check.check_serving_config(config, mounts={str(tmp_path / "models"): "/models"})
    assert _messages(report) == [
        "warning: labels with policy latest 1: a new version on disk can unload a labelled one; "
        "use a specific policy with labels"
    ]


def test_label_move_steps_pass_the_check(tmp_path: Path, write_version: VersionWriter) -> None:
    write_version("cnn", 1)
    write_version("cnn", 2)
    config = _config(tmp_path, models.specific_versions([1]), {"stable": 1})
    step1 = labels.begin_label_move(config, "cnn", "stable", 2, versions_on_disk={1, 2})
    allowed = GateDecision("cnn", "stable", 1, 2, allowed=True, accepted_new_space=False, source="space ids")
    step2 = labels.finish_label_move(step1, "cnn", "stable", 2, versions_on_disk={1, 2}, decision=allowed)
    for step in (step1, step2):
        assert check.check_serving_config(step, mounts={str(tmp_path / "models"): "/models"}).findings == ()


def test_resolve_base_path() -> None:
    mounts = {"/srv/repo": "/models", "/srv/special": "/models/special"}
    assert check.resolve_base_path("/models/cnn", mounts) == "/srv/repo/cnn"
    assert check.resolve_base_path("/models/special/v", mounts) == "/srv/special/v"
    assert check.resolve_base_path("/models", mounts) == "/srv/repo"
    assert check.resolve_base_path("/modelsx/cnn", mounts) == "/modelsx/cnn"
    assert check.resolve_base_path("/data/cnn", {}) == "/data/cnn"


def test_version_comparison() -> None:
    assert parse_version("2.21.0-rc1") == (2, 21, 0)
    assert parse_version("2.22") == (2, 22, 0)
    assert is_newer("2.22.0", "2.21.3")
    assert is_newer("2.21.1", "2.21.0")
    assert not is_newer("2.21.0", "2.21.0")
    assert not is_newer("2.9.0", "2.21.0")


def test_tensorflow_version_from_the_exporters_manifest_layout(
    tmp_path: Path, write_version: VersionWriter
) -> None:
    # The exporter writes {"versions": {"tensorflow": ..., "keras": ...}}; top-level keys are read too.
    # What the manifest claims no longer decides anything: the graph is checked.
    write_version("cnn", 1, manifest={"versions": {"tensorflow": "2.30.0", "keras": "3.20.0"}})
    report = check.check_serving_config(_config(tmp_path), mounts={str(tmp_path / "models"): "/models"})
    assert report.findings == ()


def _write_warmup(version_dir: Path, signatures: list[str], *, truncate: bool = False) -> None:
    # TFRecord framing with zero CRCs: our reader checks the framing only (the real exporter's file, with
    # CRCs, is read in tests/deploy/test_deploy_image_compat.py).
    records = b""
    for name in signatures:
        request = pb.PredictRequest()
        request.model_spec.name = "cnn"
        request.model_spec.signature_name = name
        data = pb.PredictionLog(predict_log=pb.PredictLog(request=request)).SerializeToString()
        records += len(data).to_bytes(8, "little") + b"\0" * 4 + data + b"\0" * 4
    (version_dir / "assets.extra").mkdir(exist_ok=True)
    (version_dir / "assets.extra" / "tf_serving_warmup_requests").write_bytes(
        records[:-6] if truncate else records
    )


def test_warmup_records(tmp_path: Path, write_version: VersionWriter) -> None:
    mounts = {str(tmp_path / "models"): "/models"}
    version = write_version("cnn", 1)
    _write_warmup(version, ["conv_2", "pool_2", ""])  # "" is serving_default
    assert check.check_serving_config(_config(tmp_path), mounts=mounts).findings == ()
    _write_warmup(version, ["conv_2", "dense_9"])
    assert _messages(check.check_serving_config(_config(tmp_path), mounts=mounts)) == [
        "error: version 1: warmup records name signatures it does not have: dense_9; the warmup fails "
        "and the version never becomes AVAILABLE",
        "warning: version 1: no warmup record for pool_2, serving_default; each initialises on its first "
        "request, which is slow (on a GPU, seconds)",
    ]
    _write_warmup(version, ["conv_2", "pool_2", "serving_default"] * 334)
    assert _messages(check.check_serving_config(_config(tmp_path), mounts=mounts)) == [
        "error: version 1 has 1002 warmup records; TF Serving refuses more than 1000 and the version "
        "fails to load"
    ]
    _write_warmup(version, ["conv_2"], truncate=True)
    [finding] = check.check_serving_config(_config(tmp_path), mounts=mounts).findings
    assert finding.level == "error"
    assert "is truncated in record 1" in finding.message


def test_a_base_path_tf_serving_cannot_read_is_an_error(tmp_path: Path) -> None:
    # gs:// base paths are read and checked (tests/storage/test_storage_read_gcs.py).
    config = models.set_model(models.parse_model_server_config(""), "cnn", "s3://bucket/cnn")
    assert _messages(check.check_serving_config(config)) == [
        "error: base_path s3://bucket/cnn: TF Serving reads local paths and gs:// only; its model server "
        "links no S3 filesystem (tensorflow/serving#1963), so it would serve nothing from here"
    ]
