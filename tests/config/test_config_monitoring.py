"""monitoring.config: Prometheus on the REST port."""

from __future__ import annotations

import pytest

from layertap.config import monitoring
from layertap.errors import ConfigError, ConfigParseError


def test_default_prometheus_config_text() -> None:
    text = monitoring.format_monitoring_config(monitoring.monitoring_config())
    assert text == 'prometheus_config {\n  enable: true\n  path: "/monitoring/prometheus/metrics"\n}\n'
    assert monitoring.parse_monitoring_config(text) == monitoring.monitoring_config()


def test_custom_path_and_disable() -> None:
    config = monitoring.monitoring_config("/metrics", enable=False)
    assert config.prometheus_config.path == "/metrics"
    assert config.prometheus_config.enable is False


@pytest.mark.parametrize("path", ["metrics", "/v1/models/x", "/a b", "/m?x=1"])
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(ConfigError):
        monitoring.monitoring_config(path)


def test_parse_refuses_bad_path_and_unknown_field_with_line() -> None:
    with pytest.raises(ConfigParseError) as caught:
        monitoring.parse_monitoring_config('prometheus_config {\n  enable: true\n  path: "metrics"\n}\n')
    assert caught.value.line == 3
    with pytest.raises(ConfigParseError) as caught:
        monitoring.parse_monitoring_config("prometheus_config {\n  enabled: true\n}\n")
    assert caught.value.line == 2
