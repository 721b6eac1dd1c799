"""`ConfigFile`: the one parse/read/format/write of TF Serving's config files, shared by every kind."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from layertap import config
from layertap.config.files import ConfigFile, unchanged
from layertap.errors import ConfigError, ConfigParseError
from layertap.proto import serving_pb2 as pb


def _positive(message: pb.BatchingParameters, text: str, path: str | None) -> int:
    if message.max_batch_size.value < 1:
        raise ConfigParseError("max_batch_size must be positive", path=path, line=1)
    return message.max_batch_size.value


def _message(size: int) -> pb.BatchingParameters:
    if size < 1:
        raise ConfigError(f"max_batch_size must be positive; got {size}")
    message = pb.BatchingParameters()
    message.max_batch_size.value = size
    return message


SIZES = ConfigFile(pb.BatchingParameters, _positive, _message, mode=0o640)


def test_a_kind_parses_reads_formats_and_writes_through_its_checks(tmp_path: Path) -> None:
    assert SIZES.parse("max_batch_size { value: 8 }") == 8
    assert SIZES.format(8) == "max_batch_size {\n  value: 8\n}\n"
    path = tmp_path / "sizes.config"
    SIZES.write(path, 16)
    assert SIZES.read(path) == 16
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    with pytest.raises(ConfigParseError) as caught:
        SIZES.parse("max_batch_size { value: 0 }", "b.config")
    assert (str(caught.value), caught.value.line) == ("b.config:1: max_batch_size must be positive", 1)
    with pytest.raises(ConfigParseError, match=r"b\.config:1: .*max_batch_sise"):
        SIZES.parse("max_batch_sise { value: 8 }", "b.config")


def test_a_refused_value_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sizes.config"
    SIZES.write(path, 4)
    with pytest.raises(ConfigError, match="got 0"):
        SIZES.write(path, 0)
    assert SIZES.read(path) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sizes.config"]


def test_the_four_kinds_and_their_named_functions() -> None:
    assert unchanged(pb.SSLConfig(server_key="k")) == pb.SSLConfig(server_key="k")
    kinds = {
        config.MODEL_SERVER_CONFIG: ("model_server", pb.ModelServerConfig, 0o644),
        config.BATCHING_CONFIG: ("batching", pb.BatchingParameters, 0o644),
        config.MONITORING_CONFIG: ("monitoring", pb.MonitoringConfig, 0o644),
        config.SSL_CONFIG: ("ssl", pb.SSLConfig, 0o600),
    }
    for kind, (name, message_type, mode) in kinds.items():
        assert (kind.message_type, kind.mode) == (message_type, mode)
        for verb in ("parse", "read", "format", "write"):
            assert getattr(config, f"{verb}_{name}_config") == getattr(kind, verb)
