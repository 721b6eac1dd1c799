"""Lifecycle and registry on their own: states while loading, load retries, policies, swaps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from layertap.config.models import describe_policy
from layertap.config.repository import aspired_versions, list_versions
from layertap.errors import ModelNotFoundError, ServingError
from layertap.proto import serving_pb2 as pb
from layertap.server.flags import ServerOptions
from layertap.server.management.lifecycle import Lifecycle, single_model_config
from layertap.server.management.registry import Registry
from layertap.server.runtime.servable import Servable, SessionSettings

S = pb.ModelVersionStatus


def _load(name: str, version: int, path: Path) -> Servable:
    return Servable.load(name, version, path, ["serve"], SessionSettings())


def _states(lifecycle: Lifecycle, name: str = "m") -> list[tuple[int, int]]:
    return [(s.version, s.state) for s in lifecycle.status(pb.ModelSpec(name=name))]


def test_policies_and_version_directories(tmp_path: Path) -> None:
    for name in ("1", "2", "10", "007", "tmp-3", ".staging-4", "-5"):
        (tmp_path / name).mkdir()
    (tmp_path / "8").write_text("a file, not a version")
    assert sorted(list_versions(tmp_path)) == [1, 2, 7, 10]
    on_disk = [1, 2, 7, 10]
    latest = pb.ServableVersionPolicy()
    assert aspired_versions(latest, on_disk) == [10]
    latest.latest.num_versions = 2
    assert aspired_versions(latest, on_disk) == [7, 10]
    assert aspired_versions(pb.ServableVersionPolicy(all=pb.ServableVersionPolicy.All()), on_disk) == on_disk
    specific = pb.ServableVersionPolicy()
    specific.specific.versions.extend([2, 3])
    assert aspired_versions(specific, on_disk) == [2]
    assert (describe_policy(latest), describe_policy(specific)) == ("latest 2", "specific 2,3")
    assert list_versions(tmp_path / "missing") == {}


def test_states_while_loading_and_retries(make_repo: Callable[..., Path]) -> None:
    base = make_repo("m", {1: "1", 2: "2"})
    release = threading.Event()
    attempts: list[int] = []

    def loader(name: str, version: int, path: Path) -> Servable:
        attempts.append(version)
        if version == 2:
            release.wait(30)
            if attempts.count(2) == 1:
                raise ServingError("flaky storage", code="UNAVAILABLE", details="flaky storage")
        return _load(name, version, path)

    options = ServerOptions(
        model_base_path=str(base),
        file_system_poll_wait_seconds=0,
        max_num_load_retries=1,
        load_retry_interval_micros=0,
    )
    registry = Registry()
    lifecycle = Lifecycle(options, registry, loader=loader)
    config = single_model_config("m", str(base))
    config.model_config_list.config[0].model_version_policy.latest.num_versions = 2
    started = threading.Thread(target=lifecycle.start, args=(config,))
    started.start()
    try:
        # Newest first: version 2 is LOADING (blocked) and version 1 waits in START.
        for _ in range(600):
            if _states_or_empty(lifecycle) == [(2, S.LOADING), (1, S.START)]:
                break
            release.wait(0.05)
        assert _states(lifecycle) == [(2, S.LOADING), (1, S.START)]
        not_yet = r"^Servable not found for request: Latest\(m\)$"
        with pytest.raises(ModelNotFoundError, match=not_yet), registry.servable(pb.ModelSpec(name="m")):
            pass
        release.set()
        started.join(60)
        # The first attempt failed, the retry succeeded.
        assert attempts == [2, 2, 1]
        assert _states(lifecycle) == [(2, S.AVAILABLE), (1, S.AVAILABLE)]
        with registry.servable(pb.ModelSpec(name="m")) as servable:
            assert servable.version == 2
    finally:
        release.set()
        lifecycle.stop()
    assert _states(lifecycle) == [(2, S.END), (1, S.END)]


def _states_or_empty(lifecycle: Lifecycle) -> list[tuple[int, int]]:
    try:
        return _states(lifecycle)
    except ModelNotFoundError:
        return []


def test_unload_waits_for_requests_holding_the_version(make_repo: Callable[..., Path]) -> None:
    base = make_repo("m", {1: "1"})
    registry = Registry()
    lifecycle = Lifecycle(
        ServerOptions(model_base_path=str(base), file_system_poll_wait_seconds=0), registry, loader=_load
    )
    lifecycle.start(single_model_config("m", str(base)))
    holding = registry.servable(pb.ModelSpec(name="m"))
    servable = holding.__enter__()
    stopper = threading.Thread(target=lifecycle.stop)
    stopper.start()
    stopper.join(0.5)
    # Still serving the held request: UNLOADING, not END, and the session still runs.
    assert stopper.is_alive()
    assert _states(lifecycle) == [(1, S.UNLOADING)]
    assert servable.signatures["serving_default"].method_name == "tensorflow/serving/predict"
    holding.__exit__(None, None, None)
    stopper.join(30)
    assert _states(lifecycle) == [(1, S.END)]


def test_warmup_reader_checks_tfrecord_checksums(tmp_path: Path) -> None:
    import tensorflow as tf

    from layertap.server.management.warmup import read_records

    path = tmp_path / "records"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in (b"first", b"", b"third" * 100):
            writer.write(record)
    assert list(read_records(path)) == [b"first", b"", b"third" * 100]
    original = path.read_bytes()
    data = bytearray(original)
    data[14] ^= 0xFF  # inside the first record's payload
    path.write_bytes(bytes(data))
    with pytest.raises(ServingError) as caught:
        list(read_records(path))
    assert caught.value.code == "DATA_LOSS"
    assert str(caught.value) == (
        f"corrupted record in {path}. Please verify your warmup data is in TFRecord format."
    )
    path.write_bytes(original[:-3])
    with pytest.raises(ServingError, match="truncated record of 500 bytes"):
        list(read_records(path))
