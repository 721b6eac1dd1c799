"""`layertap serve`: a local server that speaks TensorFlow Serving's gRPC API, flags and lifecycle.

Layout, as KServe's `protocol/{dataplane, grpc, rest}` reads: two transports that only decode and
encode, one data plane between them and the models, model management beside it.

- `grpc/` and `rest/`: the transports (`grpc.servicer`, `rest.server` + `rest.endpoints`), each
  method read in a straight line: decode, data plane, encode; a `StatusError` is mapped to the
  transport's status once.
- `dataplane/`: `DataPlane` (admission, deadlines, metrics, errors, in one context manager, `call`),
  TF Serving's request checks (`predict`, `inference`) and its `metrics`.
- `management/`: the `lifecycle` of versions (polls, loads with `loader` and `warmup`, unloads,
  config reloads) and the one `registry` of AVAILABLE versions and labels requests read.
- `runtime/`: one loaded version (`servable`), its C API `session` runs, and the `batching` runner.
- here: `app` (assembly, signals), `flags` (TF Serving's flags), `status` (errors carrying a
  grpc.StatusCode), `filesystem` (local and gs:// base paths).

The path of a gRPC Predict, hop by hop (each file visited once):

1. `grpc/servicer.py` `_Services.predict` opens the call: `DataPlane.call` (`dataplane/plane.py`)
   admits it, times it, counts it in the metrics and types whatever fails; inside it the servicer
   decodes the bytes (`layertap.wire.codec`) and calls
2. `dataplane/plane.py` `DataPlane.predict`, which takes the deadline's time left and holds the
   version the ModelSpec names while it runs:
3. `management/registry.py` `Registry.servable` (a context manager: the version, label or latest
   AVAILABLE version, held through `runtime/servable.py` `Servable.in_use` so an unload waits), then
4. `dataplane/predict.py` `predict`: TF Serving's checks in its order and words, then `Servable.run`,
   chosen when the version loaded: the session's own run, or with `--enable_batching`
   `runtime/batching.py` `BatchScheduler.run`, which queues the request and runs its batch;
5. `runtime/session.py` `SessionCaller.run`: one `TF_SessionRun` with the deadline as its timeout,
   a TensorFlow error raised as the status TF Serving would send.

Back in the servicer, still inside the call, the outputs are encoded. Counted as nodes the way the
request passes them (servicer, call, plane, registry, servable, predict, session) that is six hops
(seven with batching); before this layout it was ten, through nine files, bouncing between them.
REST (`rest/server.py` reads the body and routes, `rest/endpoints.py` decodes the JSON inside the
call) joins at step 2.

Importing this package does not import TensorFlow; loading a model does.
"""

from layertap.server.app import LayertapServer, create_server, serve
from layertap.server.flags import ServerOptions

__all__ = ["LayertapServer", "ServerOptions", "create_server", "serve"]
