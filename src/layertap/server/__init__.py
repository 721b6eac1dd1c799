"""`layertap serve`: a local server that speaks TensorFlow Serving's gRPC API, flags and lifecycle.

Modules, one concern each: `flags` (TF Serving's flags), `repository` (version directories),
`policy` (version policies), `servable` (one loaded version, TF1 session path), `predict` (request
checks in TF Serving's words), `warmup` (replay of warmup records), `manager` (version lifecycle,
labels, config reloads), `handlers` (gRPC services), `reflection`, `app` (assembly and signals).
Importing this package does not import TensorFlow; loading a model does.
"""

from layertap.server.app import LayertapServer, create_server, serve
from layertap.server.flags import ServerOptions

__all__ = ["LayertapServer", "ServerOptions", "create_server", "serve"]
