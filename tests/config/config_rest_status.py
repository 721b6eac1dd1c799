"""A loopback HTTP server answering `GET /v1/models/NAME` with TF Serving's REST status body.

The body format is TF Serving's (`model_version_status` with string versions and state names); the tests
use it to exercise our REST status reader and the container health check over real HTTP.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def rest_status_server(states: dict[str, dict[int, str]]) -> Iterator[str]:
    """Serve `states` (model -> version -> state name) on 127.0.0.1; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            prefix = "/v1/models/"
            name = self.path[len(prefix) :] if self.path.startswith(prefix) else None
            if name is None or name not in states:
                self._reply(404, {"error": f"Could not find any versions of model {name}"})
                return
            body = {
                "model_version_status": [
                    {"version": str(v), "state": s, "status": {"error_code": "OK", "error_message": ""}}
                    for v, s in sorted(states[name].items(), reverse=True)
                ]
            }
            self._reply(200, body)

        def _reply(self, code: int, body: object) -> None:
            data = json.dumps(body, indent=1).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
