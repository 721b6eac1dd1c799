"""The models a server holds: their lifecycle (loading, unloading) and the router requests read.

`ModelManager` only wires the two together; `Lifecycle` decides what is loaded, `Router` answers
which servable a ModelSpec names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from layertap.proto import serving_pb2 as pb
from layertap.server.flags import ServerOptions
from layertap.server.lifecycle import Lifecycle, Loader, saved_model_loader, single_model_config
from layertap.server.router import Router
from layertap.server.runner import SessionRunner
from layertap.server.servable import Servable

__all__ = ["ModelManager", "single_model_config"]


class ModelManager:
    """A lifecycle and its router.

    Args:
        options: the server's flags.
        loader: how one version is loaded; by default the SavedModel, run by `runner`, warmed up.
        runner: the session runner every servable is built with (plain, or batching).
        stopping: set when the server is asked to stop; loading and polling watch it.
    """

    def __init__(
        self,
        options: ServerOptions,
        loader: Loader | None = None,
        runner: SessionRunner | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.router = Router()
        stopping = stopping or threading.Event()
        self.lifecycle = Lifecycle(
            options, self.router, loader or saved_model_loader(options, runner, stopping), stopping
        )

    def start(self, config: pb.ModelServerConfig) -> None:
        """Apply the first config and wait until every model serves (see `Lifecycle.start`)."""
        self.lifecycle.start(config)

    def watch_config_file(self, path: str, read: Callable[[str], pb.ModelServerConfig]) -> None:
        """Re-read the config file as `--model_config_file_poll_wait_seconds` says."""
        self.lifecycle.watch_config_file(path, read)

    def reload(self, config: pb.ModelServerConfig) -> None:
        """Replace the model set (see `Lifecycle.reload`)."""
        self.lifecycle.reload(config)

    def servable(self, spec: pb.ModelSpec) -> AbstractContextManager[Servable]:
        """The servable `spec` names, held while the context is open (see `Router.servable`)."""
        return self.router.servable(spec)

    def status(self, spec: pb.ModelSpec) -> list[pb.ModelVersionStatus]:
        """GetModelStatus (see `Lifecycle.status`)."""
        return self.lifecycle.status(spec)

    def model_names(self) -> list[str]:
        """The configured models."""
        return self.lifecycle.model_names()

    def stop(self) -> None:
        """Stop polling and unload everything."""
        self.lifecycle.stop()
