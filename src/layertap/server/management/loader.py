"""How one model version is loaded: the SavedModel through the TF1 session path, then its warmup.

The lifecycle calls a `Loader` for every version it loads; tests pass their own to count or fail
loads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from layertap.server.filesystem import Location
from layertap.server.flags import ServerOptions
from layertap.server.management import warmup
from layertap.server.runtime.batching import BatchScheduler
from layertap.server.runtime.servable import Servable, SessionSettings

__all__ = ["Loader", "saved_model_loader"]

#: Loads one version; the default loads a SavedModel and replays its warmup records.
Loader = Callable[[str, int, Location], Servable]


def saved_model_loader(
    options: ServerOptions, runner: BatchScheduler | None = None, stopping: threading.Event | None = None
) -> Loader:
    """The default loader: the SavedModel through the TF1 session path, warmed up.

    With a `runner` (batching), every servable's session calls go through it, warmup's included.

    A warmup replay stops between records once `stopping` is set, so a stop never waits for it.
    """
    settings = SessionSettings(
        options.tensorflow_intra_op_parallelism,
        options.tensorflow_inter_op_parallelism,
        options.tensorflow_session_parallelism,
    )

    def load(name: str, version: int, path: Location) -> Servable:
        servable = Servable.load(name, version, path, options.tags, settings, runner=runner)
        if options.enable_model_warmup:
            try:
                warmup.replay(
                    servable,
                    options.num_request_iterations_for_warmup,
                    stopping,
                    check_method_names=options.enable_signature_method_name_check,
                )
            except BaseException:
                servable.close()
                raise
        return servable

    return load
