"""`layertap serve` as a command: TF Serving flag spelling, refused flags, health, reflection, drain."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from layertap.errors import ConfigError
from layertap.server.flags import UNSUPPORTED_FLAGS, ServerOptions, add_flags, options_from_args


def _parse(*argv: str) -> ServerOptions:
    parser = argparse.ArgumentParser(allow_abbrev=False, exit_on_error=False)
    add_flags(parser)
    return options_from_args(parser.parse_args(list(argv)))


# Every flag of tensorflow_model_server 2.20 (tensorflow_serving/model_servers/main.cc).
TF_SERVING_FLAGS = [
    "port",
    "grpc_socket_path",
    "rest_api_port",
    "rest_api_num_threads",
    "rest_api_timeout_in_ms",
    "rest_api_enable_cors_support",
    "enable_batching",
    "allow_version_labels_for_unavailable_models",
    "batching_parameters_file",
    "enable_per_model_batching_parameters",
    "model_config_file",
    "model_config_file_poll_wait_seconds",
    "model_name",
    "model_base_path",
    "num_load_threads",
    "num_unload_threads",
    "max_num_load_retries",
    "load_retry_interval_micros",
    "file_system_poll_wait_seconds",
    "flush_filesystem_caches",
    "tensorflow_session_parallelism",
    "tensorflow_session_config_file",
    "tensorflow_intra_op_parallelism",
    "tensorflow_inter_op_parallelism",
    "use_alts_credentials",
    "ssl_config_file",
    "platform_config_file",
    "per_process_gpu_memory_fraction",
    "saved_model_tags",
    "grpc_channel_arguments",
    "grpc_max_threads",
    "enable_model_warmup",
    "num_request_iterations_for_warmup",
    "version",
    "monitoring_config_file",
    "remove_unused_fields_from_bundle_metagraph",
    "prefer_tflite_model",
    "num_tflite_pools",
    "num_tflite_interpreters_per_pool",
    "enable_signature_method_name_check",
    "xla_cpu_compilation_enabled",
    "xla_gpu_compilation_enabled",
    "enable_profiler",
    "thread_pool_factory_config_file",
    "mixed_precision",
    "skip_initialize_tpu",
    "enable_grpc_healthcheck_service",
    "enable_serialization_as_tensor_content",
]


def test_every_tf_serving_flag_is_either_implemented_or_refused_by_name() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_flags(parser)
    registered = {option.lstrip("-") for action in parser._actions for option in action.option_strings}
    assert len(TF_SERVING_FLAGS) == 48
    assert set(TF_SERVING_FLAGS) <= registered
    implemented = set(TF_SERVING_FLAGS) - set(UNSUPPORTED_FLAGS)
    assert implemented - {"version"} <= set(ServerOptions.__dataclass_fields__)
    assert set(UNSUPPORTED_FLAGS) <= set(TF_SERVING_FLAGS)


def test_flags_parse_with_tf_serving_spelling() -> None:
    options = _parse(
        "--port=9000",
        "--model_name",
        "m",
        "--model_base_path=/models/m",
        "--enable_model_warmup=false",
        "--enable_serialization_as_tensor_content",
        "--allow_version_labels_for_unavailable_models=1",
        "--file_system_poll_wait_seconds=5",
        "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.primary_user_agent=x",
    )
    assert (options.port, options.model_name, options.model_base_path) == (9000, "m", "/models/m")
    assert options.enable_model_warmup is False
    assert options.enable_serialization_as_tensor_content is True
    assert options.allow_version_labels_for_unavailable_models is True
    assert options.file_system_poll_wait_seconds == 5
    assert options.channel_arguments() == [
        ("grpc.max_connection_age_ms", 2000),
        ("grpc.primary_user_agent", "x"),
    ]
    # TF Serving's defaults, and layertap's loopback default.
    defaults = _parse("--model_base_path=/m")
    assert (defaults.port, defaults.model_name, defaults.enable_model_warmup) == (8500, "default", True)
    assert (defaults.model_config_file_poll_wait_seconds, defaults.bind_address) == (0, "127.0.0.1")


@pytest.mark.parametrize(
    "flag",
    [
        "--enable_per_model_batching_parameters",
        "--xla_cpu_compilation_enabled=true",
        "--num_tflite_pools=2",
    ],
)
def test_unsupported_tf_serving_flags_are_refused_by_name(flag: str) -> None:
    name = flag.removeprefix("--").split("=")[0]
    with pytest.raises((ConfigError, argparse.ArgumentError)) as caught:
        _parse("--model_base_path=/m", flag)
    assert f"--{name} is a TensorFlow Serving flag that layertap serve does not support" in str(caught.value)
    assert UNSUPPORTED_FLAGS[name] in str(caught.value)


def test_monitoring_needs_the_rest_port() -> None:
    with pytest.raises(ConfigError, match="serves metrics on the REST port; add --rest_api_port"):
        _parse("--model_base_path=/m", "--monitoring_config_file=monitoring.config")


def test_batching_file_without_batching_is_refused() -> None:
    refused = r"--batching_parameters_file=b\.config needs --enable_batching=true"
    with pytest.raises(ConfigError, match=refused):
        _parse("--model_base_path=/m", "--batching_parameters_file=b.config")
    assert _parse(
        "--model_base_path=/m", "--enable_batching", "--batching_parameters_file=b.config"
    ).enable_batching


def test_missing_model_and_bad_boolean() -> None:
    with pytest.raises(ConfigError, match="either --model_base_path"):
        _parse("--port=1")
    with pytest.raises(argparse.ArgumentError, match="expected true, false, 1 or 0, got 'yes'"):
        _parse("--model_base_path=/m", "--enable_model_warmup=yes")


def _run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "layertap.cli", "serve", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_refuses_unknown_flag_prefix_and_unsupported_flag() -> None:
    result = _run_cli("--model_base=/m")
    assert result.returncode == 2
    assert "unrecognized arguments: --model_base=/m" in result.stderr
    result = _run_cli("--model_base_path=/m", "--platform_config_file=platform.config")
    assert result.returncode == 2
    assert (
        "--platform_config_file is a TensorFlow Serving flag that layertap serve does not support"
        in result.stderr
    )


def test_health_and_reflection(make_repo: Callable[..., Path], start_server: Callable[..., tuple]) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    base = make_repo("m", {1: "1"})
    _, channel = start_server(model_name="m", model_base_path=str(base))
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="tensorflow.serving.PredictionService"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health"),
    ]
    listed, described, health_file = list(stub.ServerReflectionInfo(iter(requests), timeout=10))
    names = sorted(service.name for service in listed.list_services_response.service)
    assert names == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "tensorflow.serving.ModelService",
        "tensorflow.serving.PredictionService",
    ]
    from google.protobuf import descriptor_pb2

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    services = {s.name: [m.name for m in s.method] for f in files for s in f.service}
    assert services["PredictionService"] == ["Predict", "GetModelMetadata"]
    assert "layertap/proto/serving.proto" in {f.name for f in files}  # the message types come along
    health_proto = descriptor_pb2.FileDescriptorProto.FromString(
        health_file.file_descriptor_response.file_descriptor_proto[0]
    )
    assert [s.name for s in health_proto.service] == ["Health"]


def test_sigterm_drains_in_flight_requests_and_exits_cleanly(make_repo: Callable[..., Path]) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    base = make_repo("m", {1: "1"})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layertap.cli",
            "-v",  # debug logs say when a request has arrived
            "serve",
            "--port=0",
            "--model_name=m",
            f"--model_base_path={base}",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    try:
        assert process.stderr is not None
        port = None
        lines: list[str] = []
        for line in process.stderr:
            lines.append(line)
            match = re.search(r"Running gRPC ModelServer at 127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port is not None, "".join(lines)
        rest: list[str] = []
        arrived = threading.Event()

        def read() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                rest.append(line)
                if "Predict request for model m signature spin" in line:
                    arrived.set()

        reader = threading.Thread(target=read)
        reader.start()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "m"
            request.model_spec.signature_name = "spin"
            request.inputs["n"].CopyFrom(tf.make_tensor_proto(np.int32(10)))
            stub.Predict(request, timeout=60)  # connected, and the spin signature warmed up
            arrived.clear()
            request.inputs["n"].CopyFrom(tf.make_tensor_proto(np.int32(60000)))
            in_flight = stub.Predict.future(request, timeout=120)
            # Once the server has the request, ask it to stop: it must still answer it.
            assert arrived.wait(60)
            process.send_signal(signal.SIGTERM)
            response = in_flight.result()
            assert response.model_spec.version.value == 1
            assert response.outputs["done"].float_val[0] != 0.0
        assert process.wait(timeout=60) == 0
        reader.join()
        log = "".join(rest)
        assert "Received SIGTERM: draining in-flight requests" in log
        assert "layertap serve exited cleanly" in log
        assert "Loading servable { name: m version: 1 } from" in "".join(lines)
        assert "signatures: __saved_model_init_op, add, outer/half, serving_default, spin" in "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_signature_method_name_check_is_off_unless_asked_as_in_tf_serving() -> None:
    assert _parse("--model_base_path=/m").enable_signature_method_name_check is False
    assert _parse(
        "--model_base_path=/m", "--enable_signature_method_name_check"
    ).enable_signature_method_name_check
    assert not _parse(
        "--model_base_path=/m", "--enable_signature_method_name_check=false"
    ).enable_signature_method_name_check
