"""tensorflow.ProfilerService on the gRPC port, as TF Serving registers it by default (--enable_profiler)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest


def test_tensorflow_profiler_client_collects_a_trace_from_layertap_serve(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple], tmp_path: Path
) -> None:
    import tensorflow as tf

    base = make_repo("m", {1: "1"})
    server, _ = start_server(model_name="m", model_base_path=str(base))
    logdir = tmp_path / "logdir"
    tf.profiler.experimental.client.trace(f"grpc://127.0.0.1:{server.port}", str(logdir), 300)
    traces = list((logdir / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1
    assert traces[0].stat().st_size > 0


def test_without_enable_profiler_the_service_is_not_there(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple]
) -> None:
    base = make_repo("m", {1: "1"})
    _, channel = start_server(model_name="m", model_base_path=str(base), enable_profiler=False)
    call = channel.unary_unary("/tensorflow.ProfilerService/Profile")
    with pytest.raises(grpc.RpcError) as caught:
        call(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
