"""One call, one version: a split call during a real hot swap on `layertap serve` never mixes the
outputs of two versions (sync and asyncio clients alike)."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from layertap.client import AsyncLayerClient, LayerClient
from layertap.proto import serving_pb2 as pb

KERNEL = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
ROWS = 6


class SwapAfterFirstReply(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Once the first Predict reply is in, publish version 2 and wait until it is AVAILABLE, so
    every later chunk of the same call meets version 2 (a hot swap exactly mid-call)."""

    def __init__(self, swap: Callable[[], None]) -> None:
        self.swap = swap
        self.done = threading.Event()
        self.lock = threading.Lock()

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        outcome = continuation(details, request)
        if details.method.endswith("/Predict"):
            outcome.result()
            with self.lock:
                if not self.done.is_set():
                    self.swap()
                    self.done.set()
        return outcome


def _wait_for(target: str, ready: Callable[[dict[int, int]], bool]) -> None:
    """Poll GetModelStatus of model "m" until `ready(version -> state)` holds (30 s at most)."""
    with grpc.insecure_channel(target) as channel:
        status = channel.unary_unary("/tensorflow.serving.ModelService/GetModelStatus")
        request = pb.GetModelStatusRequest()
        request.model_spec.name = "m"
        deadline = time.monotonic() + 30
        states: dict[int, int] = {}
        while time.monotonic() < deadline:
            reply = pb.GetModelStatusResponse.FromString(status(request.SerializeToString(), timeout=5))
            states = {v.version: v.state for v in reply.model_version_status}
            if ready(states):
                return
            time.sleep(0.05)
    raise AssertionError(f"model m did not reach the expected states: {states}")


def _swapper(
    base: Path, saved_models: dict[str, Path], publish: Callable[..., None], target: str
) -> Callable[[], None]:
    def swap() -> None:
        publish(base, 2, saved_models["2"])
        _wait_for(target, lambda states: states.get(2) == pb.ModelVersionStatus.AVAILABLE)

    return swap


class AsyncSwapAfterFirstReply(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """The asyncio twin of SwapAfterFirstReply."""

    def __init__(self, swap: Callable[[], None]) -> None:
        self.swap = swap
        self.done = False

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        call = await continuation(details, request)
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        if method.endswith("/Predict"):
            await call
            if not self.done:
                self.done = True
                await asyncio.get_running_loop().run_in_executor(None, self.swap)
        return call


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_split_call_during_hot_swap_returns_one_version(
    flavour: str,
    make_repo: Callable[..., Path],
    generation_exports: dict[str, Path],
    publish: Callable[..., None],
    start_server: Callable[..., tuple[Any, grpc.Channel]],
) -> None:
    base = make_repo("m", {1: "1"})
    server, _ = start_server(model_name="m", model_base_path=str(base), file_system_poll_wait_seconds=1)
    target = f"127.0.0.1:{server.port}"
    swap = _swapper(base, generation_exports, publish, target)
    x = np.arange(ROWS * 2, dtype=np.float32).reshape(ROWS, 2)
    # max_concurrency=1: the chunks go one after the other, so the first meets version 1 and the
    # others version 2; the client must notice and ask version 2 for the first chunk again.
    settings: dict[str, Any] = {"max_batch_size": 1, "max_concurrency": 1}
    if flavour == "sync":
        interceptor = SwapAfterFirstReply(swap)
        with grpc.insecure_channel(target) as plain:
            channel = grpc.intercept_channel(plain, interceptor)
            with LayerClient(target, "m", channel=channel, **settings) as client:
                client.wait_ready(30)
                y = client.predict(x, ["y"])["y"]
        assert interceptor.done.is_set()
    else:
        async_interceptor = AsyncSwapAfterFirstReply(swap)

        async def run() -> np.ndarray:
            channel = grpc.aio.insecure_channel(target, interceptors=[async_interceptor])
            async with AsyncLayerClient(target, "m", channel=channel, **settings) as client:
                await client.wait_ready(30)
                result = (await client.predict(x, ["y"]))["y"]
            await channel.close()
            return result

        y = asyncio.run(run())
        assert async_interceptor.done
    # Version 1 multiplies by 1, version 2 by 2: every row comes from version 2.
    np.testing.assert_allclose(y, 2 * (x @ KERNEL))


class SwapThenWithdraw(SwapAfterFirstReply):
    """Swap to version 2 after the first reply, then withdraw version 2 just before the client asks
    for it pinned: the redo meets NOT_FOUND and the client must fall back to version 1."""

    def __init__(self, swap: Callable[[], None], withdraw: Callable[[], None]) -> None:
        super().__init__(swap)
        self.withdraw = withdraw
        self.withdrawn = False

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.method.endswith("/Predict") and not self.withdrawn:
            spec = pb.PredictRequest.FromString(request).model_spec
            if spec.HasField("version") and spec.version.value == 2:
                self.withdrawn = True
                self.withdraw()
        return super().intercept_unary_unary(continuation, details, request)


def test_redo_falls_back_when_the_newest_version_is_gone(
    tmp_path: Path,
    generation_exports: dict[str, Path],
    publish: Callable[..., None],
    start_server: Callable[..., Any],
) -> None:
    base = tmp_path / "m"
    base.mkdir()
    publish(base, 1, generation_exports["1"])
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "m" base_path: "{base}" model_platform: "tensorflow" '
        "model_version_policy { latest { num_versions: 2 } } } }\n"
    )
    server, _ = start_server(model_config_file=str(config), file_system_poll_wait_seconds=1)
    target = f"127.0.0.1:{server.port}"

    def withdraw() -> None:
        shutil.rmtree(base / "2")
        _wait_for(target, lambda states: states.get(2) in (None, pb.ModelVersionStatus.END))

    interceptor = SwapThenWithdraw(_swapper(base, generation_exports, publish, target), withdraw)
    x = np.arange(ROWS * 2, dtype=np.float32).reshape(ROWS, 2)
    with grpc.insecure_channel(target) as plain:
        channel = grpc.intercept_channel(plain, interceptor)
        with LayerClient(target, "m", channel=channel, max_batch_size=1, max_concurrency=1) as client:
            client.wait_ready(30)
            y = client.predict(x, ["y"])["y"]
    assert interceptor.withdrawn
    np.testing.assert_allclose(y, x @ KERNEL)  # every row from version 1, none from the withdrawn 2
