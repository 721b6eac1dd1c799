"""`layertap serve`: a local server that speaks TensorFlow Serving's gRPC API, flags and lifecycle.

Modules, one concern each: `flags` (TF Serving's flags), `status` (errors carrying a grpc.StatusCode),
`servable` (one loaded version, TF1 session path), `runner` (plain or batching session runs, chosen at
assembly; `batching`), `predict` (request checks in TF Serving's words), `warmup` (replay of warmup
records), `lifecycle` (version lifecycle, config reloads), `router` (ModelSpec to servable, labels),
`manager` (the two wired together), `core` (the one data plane: admission, deadlines, metrics,
errors), `handlers` (gRPC transport), `rest` (REST transport), `reflection`, `app` (assembly, signals).
Importing this package does not import TensorFlow; loading a model does.
"""

from layertap.server.app import LayertapServer, create_server, serve
from layertap.server.flags import ServerOptions

__all__ = ["LayertapServer", "ServerOptions", "create_server", "serve"]
