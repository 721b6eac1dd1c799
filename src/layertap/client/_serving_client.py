"""ServingClient and AsyncServingClient: TF Serving's Classify, Regress, MultiInference and Predict.

LayerClient answers "what does this layer compute": it reads the model's signatures and plans
Predict calls by layer. ServingClient is the general TF Serving client for everything else a
served model offers, signature by signature: classification and regression signatures fed
tf.Examples, and Predict on any signature by name. Both twins carry out `ServingCore`'s flows.

The asyncio twin restates each public signature (a coroutine method needs its own `async def`, and
readers and type checkers need the parameters spelled out); each body is one line into the core.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Unpack

import numpy as np

from layertap.client._base_client import AsyncClient, SyncClient
from layertap.client._examples import ExampleLike
from layertap.client._serving_core import Classification, Result, ServingCore
from layertap.client._settings import DEFAULT, SettingsKeywords, Timeout

__all__ = ["AsyncServingClient", "ServingClient"]


class ServingClient(SyncClient[ServingCore]):
    """Call a model's classify, regress and predict signatures on TF Serving (or `layertap serve`).

    Takes what every client takes: `target`, `model`, then the keywords that
    [ConnectionSettings][layertap.client.ConnectionSettings] documents (`timeout=`, `tls=`, ...).
    Examples are dicts of features (`{"x": 1.5, "tags": [b"a", b"b"]}`), serialized tf.Examples
    (bytes), or tf.train.Example messages.

    Raises:
        UsageError: contradictory settings (a version and a label, a non-positive timeout, ...).
    """

    def __init__(self, target: str, model: str, **settings: Unpack[SettingsKeywords]) -> None:
        super().__init__(ServingCore(target, model, **settings))

    def classify(
        self,
        examples: Sequence[ExampleLike],
        *,
        signature: str = "",
        context: ExampleLike | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Classification:
        """Classify examples with a classification signature (Classify).

        Args:
            examples: the examples, one result row each.
            signature: the signature's name; "" means serving_default.
            context: features shared by every example (sent as example_list_with_context).
            timeout: seconds for the call, overriding the client's.

        Returns:
            Labels and scores, one row per example.

        Raises:
            InvalidInputError: an example cannot be encoded, before anything is sent.
            ServingError (a subclass per gRPC status): the server refused or failed.
        """
        return self._transport.run(self._core.classify(examples, signature, context, timeout))

    def regress(
        self,
        examples: Sequence[ExampleLike],
        *,
        signature: str = "",
        context: ExampleLike | None = None,
        timeout: Timeout = DEFAULT,
    ) -> np.ndarray:
        """Regress examples with a regression signature (Regress): float32 values, one per example.

        Arguments and errors as `classify`.
        """
        return self._transport.run(self._core.regress(examples, signature, context, timeout))

    def multi_inference(
        self,
        examples: Sequence[ExampleLike],
        tasks: Mapping[str, str],
        *,
        context: ExampleLike | None = None,
        timeout: Timeout = DEFAULT,
    ) -> dict[str, Result]:
        """Run several classify/regress signatures on the same examples in one call (MultiInference).

        Args:
            examples: as `classify`.
            tasks: signature name -> "classify" or "regress", e.g.
                `{"classify_x_to_y": "classify", "regress_x_to_y": "regress"}`.
            context: as `classify`.
            timeout: as `classify`.

        Returns:
            By signature name, in the order of `tasks`: a Classification or the regression values.
        """
        return self._transport.run(self._core.multi_inference(examples, tasks, context, timeout))

    def predict(
        self,
        inputs: Mapping[str, Any],
        *,
        signature: str = "",
        output_filter: Sequence[str] = (),
        timeout: Timeout = DEFAULT,
    ) -> dict[str, np.ndarray]:
        """Run a predict signature by name (Predict): arrays by input alias in, by output alias out.

        Args:
            inputs: arrays by the signature's input alias (lists become numpy's default dtype,
                e.g. float64: give arrays of the dtype the signature takes).
            signature: the signature's name; "" means serving_default.
            output_filter: the output aliases to compute; empty computes them all.
            timeout: seconds for the call, overriding the client's.
        """
        return self._transport.run(self._core.predict(inputs, signature, output_filter, timeout))


class AsyncServingClient(AsyncClient[ServingCore]):
    """The asyncio twin of ServingClient: same arguments, same results, methods are coroutines.

    Create it inside a running event loop (grpc.aio channels belong to one loop); use
    `async with AsyncServingClient(...) as client:` or await `close()`.
    """

    def __init__(self, target: str, model: str, **settings: Unpack[SettingsKeywords]) -> None:
        super().__init__(ServingCore(target, model, **settings))

    async def classify(
        self,
        examples: Sequence[ExampleLike],
        *,
        signature: str = "",
        context: ExampleLike | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Classification:
        """See ServingClient.classify."""
        return await self._transport.run(self._core.classify(examples, signature, context, timeout))

    async def regress(
        self,
        examples: Sequence[ExampleLike],
        *,
        signature: str = "",
        context: ExampleLike | None = None,
        timeout: Timeout = DEFAULT,
    ) -> np.ndarray:
        """See ServingClient.regress."""
        return await self._transport.run(self._core.regress(examples, signature, context, timeout))

    async def multi_inference(
        self,
        examples: Sequence[ExampleLike],
        tasks: Mapping[str, str],
        *,
        context: ExampleLike | None = None,
        timeout: Timeout = DEFAULT,
    ) -> dict[str, Result]:
        """See ServingClient.multi_inference."""
        return await self._transport.run(self._core.multi_inference(examples, tasks, context, timeout))

    async def predict(
        self,
        inputs: Mapping[str, Any],
        *,
        signature: str = "",
        output_filter: Sequence[str] = (),
        timeout: Timeout = DEFAULT,
    ) -> dict[str, np.ndarray]:
        """See ServingClient.predict."""
        return await self._transport.run(self._core.predict(inputs, signature, output_filter, timeout))
