"""The path a Predict takes through the server, frame by frame, as `layertap.server`'s docstring draws it.

A profile hook (no patching: the server runs as it always does) records, when the session run starts,
which of the server's functions are on the stack; a change that adds a hop or bounces between modules
changes these lists, and the docstring must change with them.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.server.runtime.session import SessionCaller
from layertap.wire import tensors

_SESSION_RUN = SessionCaller._run.__code__


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_frames(frame: FrameType | None) -> list[str]:
    """The stack's frames in layertap/server/, outermost first, as `module/file.py:function`."""
    names: list[str] = []
    while frame is not None:
        path = Path(frame.f_code.co_filename).as_posix()
        if "/layertap/server/" in path:
            names.append(f"{path.split('/layertap/server/', 1)[1]}:{frame.f_code.co_name}")
        frame = frame.f_back
    return names[::-1]


def test_predict_path_is_transport_plane_checks_session(
    make_repo: Callable[..., Path], start_server: Callable[..., tuple[Any, Any]]
) -> None:
    paths: list[list[str]] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is _SESSION_RUN:
            paths.append(_server_frames(frame))

    # Set before the server starts, so every thread it makes (gRPC and REST workers) is profiled.
    threading.setprofile(profile)
    try:
        server, channel = start_server(
            model_name="m", model_base_path=str(make_repo()), rest_api_port=_free_port()
        )
        request = pb.PredictRequest()
        request.model_spec.name = "m"
        request.inputs["x"].CopyFrom(tensors.array_to_proto(np.array([[1.0, 1.0]], np.float32)))
        answer = pb.PredictResponse.FromString(
            channel.unary_unary(methods.PREDICT)(request.SerializeToString(), timeout=30)
        )
        body = json.dumps({"instances": [[1.0, 1.0]]}).encode()
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/m:predict"
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30) as response:
            rest = json.loads(response.read())
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]

    # y = x @ [[1, 2], [3, 4]] * 1.0, z = x * 2 (the version 1 export of conftest.py).
    assert tensors.proto_to_array(answer.outputs["y"]).tolist() == [[4.0, 6.0]]
    assert rest == {"predictions": [{"y": [4.0, 6.0], "z": [2.0, 2.0]}]}
    session = ["runtime/session.py:run", "runtime/session.py:_run"]
    checks_onwards = ["dataplane/plane.py:predict", "dataplane/predict.py:predict", *session]
    assert paths == [
        # `answer` is the wrapper that turns any method's StatusError into the call's status.
        ["grpc/servicer.py:answer", "grpc/servicer.py:predict", *checks_onwards],
        [
            "rest/server.py:<lambda>",
            "rest/endpoints.py:answer",
            "rest/endpoints.py:_predict",
            *checks_onwards,
        ],
    ]
