"""`layertap serve` in the test process for an export: `with serving(result) as target: ...`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def serving(result: Any) -> Iterator[str]:
    """Serve the model of an ExportResult on a free loopback port; yields HOST:PORT."""
    from layertap.server import ServerOptions, create_server

    options = ServerOptions(
        port=0, model_name=result.name, model_base_path=str(result.path.parent), max_num_load_retries=0
    )
    server, port = create_server(options)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=1.0)
