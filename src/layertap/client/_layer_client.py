"""LayerClient and AsyncLayerClient: layer outputs as numpy arrays, blocking or awaited.

Both carry out the same `LayerCore` flows (catalogue, planning, version checks); they differ only
in how they wait on the network.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Unpack

import numpy as np

from layertap.client._base_client import AsyncClient, SyncClient
from layertap.client._catalogue import Catalogue
from layertap.client._layer_core import LayerCore, LayerKeywords
from layertap.client._outputs import LayerOutputs
from layertap.client._requests import Inputs
from layertap.client._settings import DEFAULT, Timeout

__all__ = ["AsyncLayerClient", "LayerClient"]


class LayerClient(SyncClient[LayerCore]):
    """Ask a TF Serving model (or `layertap serve`) for layer outputs as numpy arrays.

    `target`, `model` and the connection's keywords (`timeout=`, `retry=`, `tls=`, `version=`...)
    are every client's: [ConnectionSettings][layertap.client.ConnectionSettings] documents them.
    LayerClient adds four keywords, about how one call is split and checked:

    - `max_batch_size` (None): split larger batches into chunks of this size, sent concurrently.
    - `max_reply_bytes` (256 MiB): also split so that no reply is larger than this (from the
      outputs' shapes and dtypes; None for no limit). A single example larger than this is
      refused before sending: export a head that reduces it.
    - `max_concurrency` (8): how many requests ONE call keeps in flight at most (the chunks of a
      split batch, the per-signature requests of several layers); calls from many threads sharing
      the client are never throttled client-wide, and waiting for a slot counts against the
      call's deadline. Same meaning in AsyncLayerClient.
    - `validate` (True): check inputs against the model's signatures before sending.

    Raises:
        UsageError: contradictory settings (a version and a label, a non-positive timeout, ...).
    """

    def __init__(self, target: str, model: str, **settings: Unpack[LayerKeywords]) -> None:
        super().__init__(LayerCore(target, model, **settings))
        # One catalogue fetch at a time: threads arriving together wait for it instead of asking again.
        self._fetching = threading.Lock()

    def layers(self, *, refresh: bool = False, timeout: Timeout = DEFAULT) -> Catalogue:
        """The model's layers and signatures (fetched once, then cached; `refresh` fetches again)."""
        with self._fetching:
            return self._transport.run(self._core.layers(refresh, self.settings.deadline(timeout)))

    def predict(
        self,
        inputs: Inputs,
        layers: Sequence[str] | str | None = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> LayerOutputs:
        """The outputs of `layers` (the full model's outputs when None) for `inputs`, by layer name.

        Args:
            inputs: one array for a single-input model, else a dict of arrays by input alias.
            layers: layer names (or paths); one signature answers for all of them when one can.
            timeout: seconds for the whole call, overriding the client's.

        Returns:
            Arrays by layer name, in the order asked (a dict). They may be read-only views of the
            reply. `.version` is the version that answered, `.spaces[layer]` the embedding-space id
            of what computed it (`LayerOutputs`): store them with every vector.

        Raises:
            LayerNotFoundError, InvalidInputError: before anything is sent.
            ServingError (a subclass per gRPC status): the server refused or failed.
        """
        deadline = self.settings.deadline(timeout)
        with self._fetching:
            catalogue = self._transport.run(self._core.layers(False, deadline))
        return self._transport.run(self._core.predict(catalogue, inputs, layers, deadline))

    def predict_layer(self, x: Inputs, layer: str, *, timeout: Timeout = DEFAULT) -> np.ndarray:
        """The output of one layer for `x` (an array, or a dict by input alias)."""
        return self.predict(x, [layer], timeout=timeout)[layer]


class AsyncLayerClient(AsyncClient[LayerCore]):
    """The asyncio twin of LayerClient: same arguments, same results, methods are coroutines.

    Create it inside a running event loop (grpc.aio channels belong to one loop); use
    `async with AsyncLayerClient(...) as client:` or await `close()`.
    """

    def __init__(self, target: str, model: str, **settings: Unpack[LayerKeywords]) -> None:
        super().__init__(LayerCore(target, model, **settings))
        self._fetching = asyncio.Lock()

    async def layers(self, *, refresh: bool = False, timeout: Timeout = DEFAULT) -> Catalogue:
        """See LayerClient.layers."""
        async with self._fetching:
            return await self._transport.run(self._core.layers(refresh, self.settings.deadline(timeout)))

    async def predict(
        self,
        inputs: Inputs,
        layers: Sequence[str] | str | None = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> LayerOutputs:
        """The outputs of `layers` for `inputs`, by layer name (see LayerClient.predict)."""
        deadline = self.settings.deadline(timeout)
        async with self._fetching:
            catalogue = await self._transport.run(self._core.layers(False, deadline))
        return await self._transport.run(self._core.predict(catalogue, inputs, layers, deadline))

    async def predict_layer(self, x: Inputs, layer: str, *, timeout: Timeout = DEFAULT) -> np.ndarray:
        """The output of one layer for `x` (an array, or a dict by input alias)."""
        return (await self.predict(x, [layer], timeout=timeout))[layer]
