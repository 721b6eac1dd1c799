"""LayerClient's decisions, shared by LayerClient and AsyncLayerClient; no I/O happens here.

Each call is a `Flow` (see `_flow`): the catalogue fetched once and cached, the Predict calls of a
plan (`_requests`), the answers joined by layer, the redo when a version changed mid-call, and the
result stamped with the space ids of the version that answered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Unpack

from layertap.client import _catalogue, _requests
from layertap.client._base_core import Core
from layertap.client._flow import Flow, Send
from layertap.client._outputs import LayerOutputs
from layertap.client._settings import SettingsKeywords, model_spec
from layertap.errors import LayertapError, ModelNotFoundError, ServingError, UsageError
from layertap.proto import methods
from layertap.wire import codec

__all__ = ["LayerCore", "LayerKeywords"]

logger = logging.getLogger(__name__)


class LayerKeywords(SettingsKeywords, total=False):
    """LayerClient's keyword arguments: the connection's, and how it splits and checks calls."""

    max_batch_size: int | None
    max_reply_bytes: int | None
    max_concurrency: int
    validate: bool


def _answered_version(result: codec.PredictResult) -> int | None:
    """The version a Predict answer names (TF Serving echoes it), or None when it names none."""
    return result.model_spec.version.value if result.model_spec.HasField("version") else None


class LayerCore(Core):
    """Request planning, the catalogue cache and result joining for one model's layers."""

    def __init__(
        self,
        target: str,
        model: str,
        *,
        max_batch_size: int | None = None,
        max_reply_bytes: int | None = _requests.DEFAULT_MAX_REPLY_BYTES,
        max_concurrency: int = 8,
        validate: bool = True,
        **settings: Unpack[SettingsKeywords],
    ) -> None:
        super().__init__(target, model, **settings)
        if max_batch_size is not None and max_batch_size < 1:
            raise UsageError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_reply_bytes is not None and max_reply_bytes < 1:
            raise UsageError(f"max_reply_bytes must be at least 1 byte (or None), got {max_reply_bytes}")
        if max_concurrency < 1:
            raise UsageError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.spec = self.settings.spec()
        self.max_batch_size = max_batch_size
        self.max_reply_bytes = max_reply_bytes
        self.max_concurrency = max_concurrency
        self.validate = validate
        self.catalogue: _catalogue.Catalogue | None = None
        # The description of the last other version that answered (a label moved, a new version
        # loaded since the catalogue was cached): its space ids stamp results, not the cached ones.
        self._answering: _catalogue.Catalogue | None = None

    def known_layers(self) -> Sequence[str]:
        return list(self.catalogue.layers) if self.catalogue is not None else []

    def layers(self, refresh: bool, deadline: float | None) -> Flow[_catalogue.Catalogue]:
        """The catalogue: the cached one, or GetModelMetadata's answer (then cached)."""
        if not refresh and self.catalogue is not None:
            return self.catalogue
        request = _catalogue.metadata_request(self.spec)
        replies = yield Send(methods.GET_MODEL_METADATA, [request], deadline)
        self.catalogue = _catalogue.parse_metadata(replies[0], self.settings.model)
        return self.catalogue

    def predict(
        self,
        catalogue: _catalogue.Catalogue,
        inputs: _requests.Inputs,
        layers: Sequence[str] | str | None,
        deadline: float | None,
    ) -> Flow[LayerOutputs]:
        """The outputs of `layers` for `inputs`, all from one model version (see `_redo`)."""
        plan = _requests.plan_predict(
            catalogue,
            self.spec,
            inputs,
            layers,
            max_batch_size=self.max_batch_size,
            max_reply_bytes=self.max_reply_bytes,
            validate=self.validate,
        )
        results = yield from self._send(plan.calls, deadline)
        gone: ModelNotFoundError | None = None
        for version, again in self._redo(plan, results):
            try:
                redone = yield from self._send(again, deadline)
            except ModelNotFoundError as error:
                gone = error  # that version is no longer (or not yet) served here: try the next
                continue
            merged = self._merged(results, (version, redone))
            break
        else:
            if gone is not None:
                raise gone
            merged = list(results)
        answered = next((v for r in merged if (v := _answered_version(r)) is not None), None)
        describing = yield from self._describing(answered, deadline)
        return _stamped(plan, merged, answered, describing)

    def _send(
        self, calls: Sequence[_requests.Call], deadline: float | None
    ) -> Flow[list[codec.PredictResult]]:
        step = Send(methods.PREDICT, [call.request for call in calls], deadline, self.max_concurrency)
        replies = yield step
        return [codec.decode_predict_response(reply) for reply in replies]

    def _redo(
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
        if len(plan.calls) < 2 or self.settings.version is not None:
            return []
        versions = [_answered_version(result) for result in results]
        known = sorted({version for version in versions if version is not None}, reverse=True)
        if len(known) < 2:
            return []
        logger.info(
            "a call to %s was answered by versions %s (a version changed mid-call); asking again "
            "for one version",
            self.settings.model,
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

    def _merged(
        self, results: Sequence[codec.PredictResult], redone: tuple[int, Sequence[codec.PredictResult]]
    ) -> list[codec.PredictResult]:
        """The answers with those `_redo` asked again replaced; `redone` = (version, their answers).

        Raises:
            ServingError: the answers still come from more than one version.
        """
        merged = list(results)
        version, again = redone
        stale = [i for i, result in enumerate(results) if _answered_version(result) != version]
        for index, result in zip(stale, again, strict=True):
            if _answered_version(result) != version:
                raise ServingError(
                    f"model {self.settings.model!r}: asked for version {version}, answered by "
                    f"{_answered_version(result)}; refusing to join outputs of two versions"
                )
            merged[index] = result
        return merged

    def _describing(self, version: int | None, deadline: float | None) -> Flow[_catalogue.Catalogue | None]:
        """The catalogue of the version that answered: the cached one when it is that version (no
        request per predict), else that version's GetModelMetadata, asked once. None when it cannot
        be had (the version was unloaded meanwhile): the result then names no spaces."""
        for known in (self.catalogue, self._answering):
            if known is not None and known.version in (None, version):
                return known
        if version is None:
            return None
        spec = model_spec(self.settings.model, version=version, version_label=None)
        try:
            replies = yield Send(methods.GET_MODEL_METADATA, [_catalogue.metadata_request(spec)], deadline)
        except LayertapError as error:
            logger.info("no space ids for version %s of %s: %s", version, self.settings.model, error)
            return None
        self._answering = _catalogue.parse_metadata(replies[0], self.settings.model)
        return self._answering


def _stamped(
    plan: _requests.Plan,
    merged: Sequence[codec.PredictResult],
    version: int | None,
    catalogue: _catalogue.Catalogue | None,
) -> LayerOutputs:
    """The joined arrays, named with the version that answered and each layer's space id in it."""
    arrays = _requests.assemble(plan, merged)
    spaces: dict[str, str | None] = dict.fromkeys(arrays)
    if catalogue is not None:
        for call in plan.calls:
            signature = catalogue.signatures.get(call.signature)
            for name in call.layers.values():
                spaces[name] = signature.space if signature is not None else None
    return LayerOutputs(arrays, version=version, spaces=spaces)
