"""Fixtures of the client tests only: certificates for TLS. The peer and its model are shared
(tests/fixtures/client_peer.py)."""

from __future__ import annotations

import pytest

from tests.fixtures.certificates import Certificates, make_certificates


@pytest.fixture(scope="session")
def certificates() -> Certificates:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made here."""
    return make_certificates()
