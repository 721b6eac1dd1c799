"""layertap.server's public surface, and that importing it stays cheap (no TensorFlow until a model loads)."""

from __future__ import annotations

import subprocess
import sys

import layertap.server


def test_public_names() -> None:
    assert sorted(layertap.server.__all__) == ["LayertapServer", "ServerOptions", "create_server", "serve"]
    for name in layertap.server.__all__:
        assert getattr(layertap.server, name).__module__.startswith("layertap.server.")


def test_import_does_not_load_tensorflow() -> None:
    code = (
        "import sys, layertap.server, layertap.cli.serve, layertap.server.rest.server, "
        "layertap.server.runtime.batching, layertap.server.grpc.servicer, layertap.server.dataplane.plane, "
        "layertap.server.management.lifecycle; "
        "print('tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False"
