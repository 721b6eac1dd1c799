"""Everything the sync and asyncio clients share except the act of waiting on the network.

Each public method of LayerClient and AsyncLayerClient is: build the request bytes here, send
them (blocking or awaited, with `Attempts` deciding retries), and turn the answer into results
here. Nothing in this module does I/O.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Sequence
from typing import Any

import grpc

from layertap.client import _catalogue, _requests, _status
from layertap.client._channel import TLS, create_channel
from layertap.client._errors import from_rpc_error
from layertap.client._outputs import LayerOutputs
from layertap.client._retry import Attempts, Retry
from layertap.errors import DeadlineExceededError, ServingError, UsageError
from layertap.proto import methods
from layertap.wire import codec

__all__ = ["DEFAULT", "ClientCore", "Default", "Timeout"]


def _answered_version(result: codec.PredictResult) -> int | None:
    """The version a Predict answer names (TF Serving echoes it), or None when it names none."""
    return result.model_spec.version.value if result.model_spec.HasField("version") else None


logger = logging.getLogger(__name__)


class Default(enum.Enum):
    """Marks a parameter left to the client's setting (None already means "no timeout")."""

    TOKEN = "default"


DEFAULT = Default.TOKEN
# A call's timeout: seconds, None for no deadline, or DEFAULT for the client's setting.
Timeout = float | Default | None


class ClientCore:
    """Settings, request building, retries' bookkeeping and result decoding for one model."""

    def __init__(
        self,
        target: str,
        model: str,
        *,
        version: int | None,
        version_label: str | None,
        timeout: float | None,
        retry: Retry | None,
        max_batch_size: int | None,
        max_concurrency: int,
        validate: bool,
        max_reply_bytes: int | None = _requests.DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        if not model:
            raise UsageError("model must be a non-empty model name")
        if timeout is not None and timeout <= 0:
            raise UsageError(f"timeout must be positive seconds or None, got {timeout}")
        if max_batch_size is not None and max_batch_size < 1:
            raise UsageError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_reply_bytes is not None and max_reply_bytes < 1:
            raise UsageError(f"max_reply_bytes must be at least 1 byte (or None), got {max_reply_bytes}")
        if max_concurrency < 1:
            raise UsageError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.target = target
        self.model = model
        self.version = version
        self.spec = _requests.model_spec(model, version=version, version_label=version_label)
        self.timeout = timeout
        self.retry = retry
        self.max_batch_size = max_batch_size
        self.max_reply_bytes = max_reply_bytes
        self.max_concurrency = max_concurrency
        self.validate = validate
        self.catalogue: _catalogue.Catalogue | None = None

    @staticmethod
    def channel(
        target: str,
        *,
        channel: Any,
        tls: TLS | bool | None,
        credentials: Any,
        compression: str | None,
        keepalive_seconds: float | None,
        options: dict[str, Any] | None,
        aio: bool,
    ) -> tuple[Any, bool]:
        """The channel to use and whether the client owns (and so closes) it."""
        if channel is not None:
            return channel, False
        created = create_channel(
            target,
            tls=tls,
            credentials=credentials,
            compression=compression,
            keepalive_seconds=keepalive_seconds,
            options=options,
            aio=aio,
        )
        return created, True

    @staticmethod
    def stubs(channel: Any) -> dict[str, Any]:
        """Bytes-in, bytes-out callables for the three RPCs; decoding happens outside gRPC so that
        a malformed reply raises TensorFormatError instead of an opaque INTERNAL status."""
        return {
            path: channel.unary_unary(path)
            for path in (methods.PREDICT, methods.GET_MODEL_METADATA, methods.GET_MODEL_STATUS)
        }

    def deadline(self, timeout: Timeout) -> float | None:
        """The `time.monotonic()` deadline of a public call given its timeout (or the client's)."""
        seconds = self.timeout if timeout is DEFAULT else timeout
        return None if seconds is None else time.monotonic() + seconds

    def attempts(self, deadline: float | None) -> Attempts:
        """Retry bookkeeping for one request sent before `deadline`."""
        return Attempts(self.retry, deadline)

    def cached(self, refresh: bool) -> _catalogue.Catalogue | None:
        """The cached catalogue, unless a refresh is asked for."""
        return None if refresh else self.catalogue

    def error(self, error: grpc.RpcError) -> ServingError:
        """The layertap error for a failed call."""
        layers = list(self.catalogue.layers) if self.catalogue is not None else []
        mapped = from_rpc_error(error, target=self.target, model=self.model, layers=layers)
        logger.debug("call to %s failed: %s", self.target, mapped)
        return mapped

    def metadata_request(self) -> bytes:
        """GetModelMetadata asking for the signature definitions."""
        return _catalogue.metadata_request(self.spec)

    def remember_catalogue(self, data: bytes) -> _catalogue.Catalogue:
        """Parse and cache a GetModelMetadata answer."""
        self.catalogue = _catalogue.parse_metadata(data, self.model)
        return self.catalogue

    def plan(
        self, catalogue: _catalogue.Catalogue, inputs: _requests.Inputs, layers: Sequence[str] | str | None
    ) -> _requests.Plan:
        """The Predict calls answering predict(inputs, layers)."""
        return _requests.plan_predict(
            catalogue,
            self.spec,
            inputs,
            layers,
            max_batch_size=self.max_batch_size,
            max_reply_bytes=self.max_reply_bytes,
            validate=self.validate,
        )

    @staticmethod
    def decode(answers: Sequence[bytes]) -> list[codec.PredictResult]:
        """Decode the answers of a plan's calls."""
        return [codec.decode_predict_response(answer) for answer in answers]

    def mixed_versions(
        self, plan: _requests.Plan, results: Sequence[codec.PredictResult]
    ) -> list[tuple[int, list[_requests.Call]]]:
        """When a call's requests were answered by different model versions (a new version became
        AVAILABLE while they were in flight): for each version seen, newest first, the requests
        answered by another one, pinned to it, to send again. Empty when every answer names one
        version.

        Mixing would silently join outputs of two models (two embedding spaces) in one array. The
        newest is tried first; an older one only if the newest is gone when asked (NOT_FOUND, e.g. a
        replica behind the same address that has not loaded it yet).
        """
        if len(plan.calls) < 2 or self.version is not None:
            return []
        versions = [_answered_version(result) for result in results]
        known = sorted({version for version in versions if version is not None}, reverse=True)
        if len(known) < 2:
            return []
        logger.info(
            "a call to %s was answered by versions %s (a version changed mid-call); asking again "
            "for one version",
            self.model,
            known,
        )
        return [
            (
                target,
                [
                    _requests.pinned(call, target)
                    for call, version in zip(plan.calls, versions, strict=True)
                    if version != target
                ],
            )
            for target in known
        ]

    def results(
        self,
        plan: _requests.Plan,
        results: Sequence[codec.PredictResult],
        redone: tuple[int, Sequence[codec.PredictResult]] | None = None,
    ) -> LayerOutputs:
        """Join decoded answers by layer; `redone` = (version, answers of `mixed_versions`' calls).

        The result names the version that answered and each layer's space id (from the cached catalogue).

        Raises:
            ServingError: the answers still come from more than one version.
        """
        merged = list(results)
        if redone is not None:
            version, again = redone
            stale = [i for i, result in enumerate(results) if _answered_version(result) != version]
            for index, result in zip(stale, again, strict=True):
                if _answered_version(result) != version:
                    raise ServingError(
                        f"model {self.model!r}: asked for version {version}, answered by "
                        f"{_answered_version(result)}; refusing to join outputs of two versions"
                    )
                merged[index] = result
        return self._stamped(plan, merged, _requests.assemble(plan, merged))

    def _stamped(
        self, plan: _requests.Plan, merged: Sequence[codec.PredictResult], arrays: dict[str, Any]
    ) -> LayerOutputs:
        version = next((v for r in merged if (v := _answered_version(r)) is not None), None)
        catalogue = self.catalogue
        spaces: dict[str, str | None] = dict.fromkeys(arrays)
        # The catalogue describes one version; another version's signatures may compute another space.
        if catalogue is not None and catalogue.version in (None, version):
            for call in plan.calls:
                signature = catalogue.signatures.get(call.signature)
                for name in call.layers.values():
                    spaces[name] = signature.space if signature is not None else None
        return LayerOutputs(arrays, version=version, spaces=spaces)

    def status_request(self) -> bytes:
        """GetModelStatus for this client's model (and version, when pinned)."""
        return _status.status_request(self.spec)

    def not_ready(self, waited: float, last: list[_status.VersionStatus] | Exception | None) -> Exception:
        """The error wait_ready raises when its time is up."""
        wanted = f"version {self.version}" if self.version is not None else "a version"
        seen = _status.describe(last) if isinstance(last, list) else str(last or "no answer")
        return DeadlineExceededError(
            f"model {self.model!r} at {self.target}: {wanted} not AVAILABLE after {waited:g}s "
            f"(last seen: {seen})",
            code="DEADLINE_EXCEEDED",
        )
