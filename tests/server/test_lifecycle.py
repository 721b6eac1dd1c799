"""Version lifecycle: hot swaps under load, broken versions, policies, labels, config reloads, warmup."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from layertap.errors import ServerError

Status = get_model_status_pb2.ModelVersionStatus
StartServer = Callable[..., tuple[object, grpc.Channel]]


def _request(name: str = "m", version: int | None = None, label: str = "") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1.0, 1.0]], np.float32)))
    return request


def _states(channel: grpc.Channel, name: str = "m") -> list[tuple[int, int, int, str]]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    return [
        (s.version, s.state, s.status.error_code, s.status.error_message)
        for s in response.model_version_status
    ]


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _config(tmp_path: Path, body: str, name: str = "models.config") -> Path:
    path = tmp_path / name
    path.write_text(f"model_config_list {{\n{body}\n}}\n")
    return path


def test_new_version_under_load_fails_no_request_and_answers_switch(
    make_repo: Callable[..., Path],
    start_server: StartServer,
    generation_exports: dict[str, Path],
    publish: Callable[[Path, int, Path], None],
) -> None:
    base = make_repo("m", {1: "1"})
    _, channel = start_server(model_name="m", model_base_path=str(base), file_system_poll_wait_seconds=1)
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    answers: list[tuple[int, float]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                response = prediction.Predict(_request(), timeout=30)
                answers.append((response.model_spec.version.value, response.outputs["y"].float_val[0]))
            except grpc.RpcError as error:
                failures.append(error)

    clients = [threading.Thread(target=ask) for _ in range(4)]
    for client in clients:
        client.start()
    _wait_for(lambda: len(answers) >= 20, "answers from version 1")
    publish(base, 2, generation_exports["2"])
    _wait_for(lambda: bool(answers) and answers[-1][0] == 2, "answers from version 2")
    count = len(answers)
    _wait_for(lambda: len(answers) >= count + 20, "more answers from version 2")
    stop.set()
    for client in clients:
        client.join()
    assert failures == []
    versions = [version for version, _ in answers]
    switch = versions.index(2)
    # Both generations answered with their own weights: y = [1,1] @ kernel * factor.
    assert set(answers[:switch]) == {(1, 4.0)}
    assert (2, 8.0) in answers[switch:]
    # After the old version went away, every answer comes from version 2.
    _wait_for(lambda: _states(channel)[-1][1] == Status.END, "version 1 to unload")
    assert prediction.Predict(_request(), timeout=10).model_spec.version.value == 2
    assert [(v, s) for v, s, _, _ in _states(channel)] == [(2, Status.AVAILABLE), (1, Status.END)]


def test_broken_version_is_reported_and_previous_keeps_serving(
    make_repo: Callable[..., Path],
    start_server: StartServer,
    generation_exports: dict[str, Path],
    publish: Callable[[Path, int, Path], None],
) -> None:
    base = make_repo("m", {1: "1"})
    _, channel = start_server(model_name="m", model_base_path=str(base), file_system_poll_wait_seconds=1)
    publish(base, 2, generation_exports["broken"])
    _wait_for(lambda: _states(channel)[0][:2] == (2, Status.END), "version 2 to fail")
    states = _states(channel)
    assert states[0][2] == grpc.StatusCode.DATA_LOSS.value[0]
    assert states[0][3].startswith(f"Cannot parse file b'{base / '2' / 'saved_model.pb'}'")
    assert states[1] == (1, Status.AVAILABLE, 0, "")
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    assert prediction.Predict(_request(), timeout=10).model_spec.version.value == 1
    # A good version 3 replaces version 1; the broken 2 stays reported as failed.
    publish(base, 3, generation_exports["3"])
    _wait_for(lambda: _states(channel)[0][:2] == (3, Status.AVAILABLE), "version 3")
    assert prediction.Predict(_request(), timeout=10).outputs["y"].float_val[0] == 12.0


def test_startup_fails_when_the_only_version_is_broken(
    make_repo: Callable[..., Path], start_server: StartServer
) -> None:
    base = make_repo("m", {1: "broken"})
    with pytest.raises(ServerError, match=r"model m could not be loaded from .*version 1: "):
        start_server(model_name="m", model_base_path=str(base))


def test_non_numeric_directories_are_ignored(
    make_repo: Callable[..., Path], start_server: StartServer, generation_exports: dict[str, Path]
) -> None:
    import shutil

    base = make_repo("m", {1: "1"})
    shutil.copytree(generation_exports["3"], base / "tmp-5")
    shutil.copytree(generation_exports["3"], base / "v7")
    _, channel = start_server(model_name="m", model_base_path=str(base))
    assert [v for v, *_ in _states(channel)] == [1]


def test_two_models_labels_and_specific_policy(
    make_repo: Callable[..., Path], start_server: StartServer, tmp_path: Path
) -> None:
    first = make_repo("first", {1: "1", 2: "2", 3: "3"})
    second = make_repo("second", {1: "1", 2: "2"})
    config = _config(
        tmp_path,
        f'  config {{ name: "first" base_path: "{first}" model_platform: "tensorflow"\n'
        "    model_version_policy { specific { versions: 1 versions: 3 } }\n"
        '    version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 3 } }\n'
        f'  config {{ name: "second" base_path: "{second}" model_platform: "tensorflow" }}',
    )
    # Labels on versions that are not loaded yet: TF Serving refuses them at startup...
    with pytest.raises(
        ServerError,
        match="Request to assign label to version 3 of model first, which is not "
        "currently available for inference",
    ):
        start_server(model_config_file=str(config))
    # ...unless --allow_version_labels_for_unavailable_models.
    _, channel = start_server(model_config_file=str(config), allow_version_labels_for_unavailable_models=True)
    assert [(v, s) for v, s, *_ in _states(channel, "first")] == [
        (3, Status.AVAILABLE),
        (1, Status.AVAILABLE),
    ]
    assert [(v, s) for v, s, *_ in _states(channel, "second")] == [(2, Status.AVAILABLE)]
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    assert prediction.Predict(_request("first", label="stable"), timeout=10).outputs["y"].float_val[0] == 4.0
    assert prediction.Predict(_request("first", label="canary"), timeout=10).outputs["y"].float_val[0] == 12.0
    assert prediction.Predict(_request("first"), timeout=10).model_spec.version.value == 3
    with pytest.raises(grpc.RpcError) as caught:
        prediction.Predict(_request("first", version=2), timeout=10)
    assert caught.value.details() == "Servable not found for request: Specific(first, 2)"
    with pytest.raises(grpc.RpcError) as caught:
        prediction.Predict(_request("second", label="stable"), timeout=10)
    assert caught.value.details() == "Unrecognized servable version label: stable"


def test_reload_config_replaces_the_model_set(
    make_repo: Callable[..., Path], start_server: StartServer, tmp_path: Path
) -> None:
    first = make_repo("first", {1: "1", 2: "2"})
    second = make_repo("second", {1: "3"})
    config = _config(
        tmp_path, f'  config {{ name: "first" base_path: "{first}" model_platform: "tensorflow" }}'
    )
    _, channel = start_server(model_config_file=str(config))
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    reload = model_management_pb2.ReloadConfigRequest()
    entry = reload.config.model_config_list.config.add(name="second", base_path=str(second))
    entry.model_platform = "tensorflow"
    response = models.HandleReloadConfigRequest(reload, timeout=60)
    assert response.status.error_code == 0
    # The new model is served when the RPC returns; the one left out is unloaded.
    assert prediction.Predict(_request("second"), timeout=10).outputs["y"].float_val[0] == 12.0
    assert [(v, s) for v, s, *_ in _states(channel, "first")] == [(2, Status.END)]
    with pytest.raises(grpc.RpcError) as caught:
        prediction.Predict(_request("first"), timeout=10)
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(first)",
    )
    # Moving a label to a version that is not AVAILABLE is refused, and nothing changes.
    entry.version_labels["stable"] = 5
    with pytest.raises(grpc.RpcError) as caught:
        models.HandleReloadConfigRequest(reload, timeout=60)
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "Request to assign label to version 5 of model second, "
        "which is not currently available for inference",
    )
    entry.version_labels["stable"] = 1
    models.HandleReloadConfigRequest(reload, timeout=60)
    assert prediction.Predict(_request("second", label="stable"), timeout=10).model_spec.version.value == 1


def test_config_file_is_polled(
    make_repo: Callable[..., Path], start_server: StartServer, tmp_path: Path
) -> None:
    first = make_repo("first", {1: "1"})
    second = make_repo("second", {4: "2"})
    line = '  config {{ name: "{}" base_path: "{}" model_platform: "tensorflow" }}'
    config = _config(tmp_path, line.format("first", first))
    _, channel = start_server(model_config_file=str(config), model_config_file_poll_wait_seconds=1)
    _config(tmp_path, line.format("first", first) + "\n" + line.format("second", second))
    _wait_for(lambda: _states_or_none(channel, "second") == [(4, Status.AVAILABLE, 0, "")], "second model")
    prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    assert prediction.Predict(_request("second"), timeout=10).model_spec.version.value == 4
    assert prediction.Predict(_request("first"), timeout=10).model_spec.version.value == 1


def _states_or_none(channel: grpc.Channel, name: str) -> list[tuple[int, int, int, str]] | None:
    try:
        return _states(channel, name)
    except grpc.RpcError:
        return None


def test_warmup_records_run_at_load_and_a_failing_record_fails_the_load(
    make_repo: Callable[..., Path],
    start_server: StartServer,
    caplog: pytest.LogCaptureFixture,
    write_warmup: Callable[[Path, list[str]], None],
) -> None:
    base = make_repo("m", {1: "1", 2: "2"})
    write_warmup(base / "1", ["serving_default", "serving_default"])
    write_warmup(base / "2", ["no_such_signature"])
    caplog.set_level("INFO", logger="layertap.server")
    with pytest.raises(
        ServerError, match=r'warmup record 1 of .* failed: Serving signature key "no_such_signature"'
    ):
        start_server(model_name="m", model_base_path=str(base))
    (base / "2" / "assets.extra" / "tf_serving_warmup_requests").unlink()
    write_warmup(base / "2", ["serving_default", "add"])
    with pytest.raises(
        ServerError, match=r"warmup record 2 of .* failed: input size does not match signature"
    ):
        start_server(model_name="m", model_base_path=str(base))
    import shutil

    shutil.rmtree(base / "2")
    start_server(model_name="m", model_base_path=str(base))
    assert "Number of warmup records read: 2." in caplog.text
    # --enable_model_warmup=false skips the file entirely.
    write_warmup(base / "1", ["no_such_signature"])
    start_server(model_name="m", model_base_path=str(base), enable_model_warmup=False)
