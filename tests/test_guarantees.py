"""The skip policy of tests/guarantees.py: a skip on a laptop, a failure in CI."""

from __future__ import annotations

import pytest

from tests.guarantees import import_or_skip, skip_or_fail


def test_skips_on_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAYERTAP_REQUIRE_ALL", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no tmpfs"):
        skip_or_fail("no tmpfs")
    with pytest.raises(pytest.skip.Exception, match="no_such_module_xyz is not installed"):
        import_or_skip("no_such_module_xyz")


@pytest.mark.parametrize("variable", [("LAYERTAP_REQUIRE_ALL", "1"), ("CI", "true")])
def test_fails_where_every_test_must_run(monkeypatch: pytest.MonkeyPatch, variable: tuple[str, str]) -> None:
    monkeypatch.delenv("LAYERTAP_REQUIRE_ALL", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv(*variable)
    with pytest.raises(pytest.fail.Exception, match=r"required test could not run .*: no tmpfs"):
        skip_or_fail("no tmpfs")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_xyz is not installed"):
        import_or_skip("no_such_module_xyz")
    assert import_or_skip("json").__name__ == "json"
