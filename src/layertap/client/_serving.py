"""ServingClient: TF Serving's Classify, Regress, MultiInference and Predict, blocking.

LayerClient answers "what does this layer compute": it reads the model's signatures and plans
Predict calls by layer. ServingClient is the general TF Serving client for everything else a
served model offers, signature by signature: classification and regression signatures fed
tf.Examples, and Predict on any signature by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from layertap.client._channel import TLS
from layertap.client._core import DEFAULT, ClientCore, Timeout
from layertap.client._examples import ExampleLike
from layertap.client._inference import Classification, InferenceCore, Result
from layertap.client._retry import Retry, send_with_retries
from layertap.proto import methods

__all__ = ["ServingClient"]


class ServingClient:
    """Call a model's classify, regress and predict signatures on TF Serving (or `layertap serve`).

    Args:
        target: "host:port", or "dns:///name:port" to balance calls over every address of a name.
        model: the served model's name.
        version: pin a version number (0 is a valid version).
        version_label: pin a label such as "stable" (exclusive with `version`).
        timeout: seconds per call, retries included; None waits forever.
        retry: when to retry UNAVAILABLE answers; None never retries.
        tls: TLS settings (`TLS(...)`), True for the system's roots, None for plaintext.
        credentials: ready-made grpc.ChannelCredentials, instead of `tls`.
        compression: "gzip" (or "deflate") to compress requests.
        channel: a grpc.Channel to use instead of creating one (the caller closes it).
        keepalive_seconds: HTTP/2 keepalive ping interval; None sends none.
        options: extra gRPC channel arguments.

    Examples are dicts of features (`{"x": 1.5, "tags": [b"a", b"b"]}`), serialized tf.Examples
    (bytes), or tf.train.Example messages.

    Raises:
        UsageError: contradictory settings (a version and a label, a non-positive timeout, ...).
    """

    def __init__(
        self,
        target: str,
        model: str,
        *,
        version: int | None = None,
        version_label: str | None = None,
        timeout: float | None = 10.0,
        retry: Retry | None = Retry(),  # noqa: B008 (a frozen value object, safe to share)
        tls: TLS | bool | None = None,
        credentials: Any = None,
        compression: str | None = None,
        channel: Any = None,
        keepalive_seconds: float | None = 60.0,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._core = InferenceCore(
            target, model, version=version, version_label=version_label, timeout=timeout, retry=retry
        )
        self._channel, self._owns_channel = ClientCore.channel(
            target,
            channel=channel,
            tls=tls,
            credentials=credentials,
            compression=compression,
            keepalive_seconds=keepalive_seconds,
            options=options,
            aio=False,
        )
        self._stubs = InferenceCore.stubs(self._channel)

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
        request = self._core.classify_request(examples, context, signature)
        return self._core.classification(self._send(methods.CLASSIFY, request, timeout))

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
        request = self._core.regress_request(examples, context, signature)
        return self._core.regression(self._send(methods.REGRESS, request, timeout))

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
        request = self._core.multi_inference_request(examples, tasks, context)
        return self._core.multi_inference(self._send(methods.MULTI_INFERENCE, request, timeout), tasks)

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
        request = self._core.predict_request(inputs, signature, output_filter)
        return self._core.predictions(self._send(methods.PREDICT, request, timeout))

    def close(self) -> None:
        """Close the channel if this client created it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ServingClient({self._core.settings.target!r}, {self._core.settings.model!r})"

    def _send(self, path: str, request: bytes, timeout: Timeout) -> bytes:
        stub = self._stubs[path]
        attempts = self._core.attempts(timeout)
        return send_with_retries(lambda t: stub(request, timeout=t), attempts, self._core.error)
