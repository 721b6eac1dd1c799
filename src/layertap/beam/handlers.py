"""The two model handlers, and the small functions a pipeline needs around them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RemoteModelHandler

from layertap.errors import DeadlineExceededError, ServerUnavailableError, UsageError
from layertap.extract.images import ImagePreprocessing, decode_image
from layertap.extract.records import InputSpec
from layertap.extract.runners import InProcessRunner, RemoteRunner, Runner

__all__ = ["LayerServingHandler", "SavedModelHandler", "as_row", "decode_image_file"]


def _stack(batch: Sequence[Any], spec: InputSpec) -> np.ndarray:
    if spec.is_string:
        array = np.empty(len(batch), dtype=object)
        array[:] = list(batch)
        return array
    return np.stack([np.asarray(example, dtype=spec.dtype) for example in batch])


def _predict(batch: Sequence[Any], runner: Runner) -> list[PredictionResult]:
    """What both handlers answer for a batch: one result per example, model_id `model/version`."""
    features = runner.run(_stack(batch, runner.input))
    model_id = f"{runner.model}/{runner.version}"
    return [
        PredictionResult(example, {name: array[index] for name, array in features.items()}, model_id)
        for index, example in enumerate(batch)
    ]


def _retryable(error: Exception) -> bool:
    """Retry what may pass (a restarting server, a full batch queue, a slow call), not refusals."""
    return isinstance(error, ServerUnavailableError | DeadlineExceededError)


class LayerServingHandler(RemoteModelHandler[Any, PredictionResult, RemoteRunner]):  # type: ignore[misc]
    """RunInference through TF Serving: one example (a numpy array, or a string) per element.

    Args:
        target: "host:port" of TF Serving / `layertap serve` (or "dns:///name:port").
        model: the served model's name.
        layers: layer names (or signature keys) sharing one input.
        version: pin this version; by default each worker pins the version served when it connects
            (PredictionResult.model_id says which).
        max_batch_size: the server's max_batch_size: Beam batches up to it, the client splits to it.
        min_batch_size: the smallest batch Beam forms (it waits for no more in batch pipelines).
        client_options: more LayerClient arguments (timeout, tls, retry...).
        num_retries, throttle_delay_secs: Beam's retry and throttling settings.
    """

    def __init__(
        self,
        target: str,
        model: str,
        layers: Sequence[str],
        *,
        version: int | None = None,
        max_batch_size: int = 64,
        min_batch_size: int = 1,
        client_options: Mapping[str, Any] | None = None,
        num_retries: int = 5,
        throttle_delay_secs: int = 5,
    ) -> None:
        if not layers:
            raise UsageError("name at least one layer for LayerServingHandler")
        super().__init__(
            namespace="layertap",
            num_retries=num_retries,
            throttle_delay_secs=throttle_delay_secs,
            retry_filter=_retryable,
        )
        self._target = target
        self._model = model
        self._layers = list(layers)
        self._version = version
        self._batching = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}
        self._client_options = {**(client_options or {}), "max_batch_size": max_batch_size}

    def create_client(self) -> RemoteRunner:
        return RemoteRunner(
            [self._target],
            self._model,
            self._layers,
            version=self._version,
            client_options=self._client_options,
        )

    def request(
        self,
        batch: Sequence[Any],
        model: RemoteRunner,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        return _predict(batch, model)

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        return self._batching

    def get_metrics_namespace(self) -> str:
        return "layertap"


class SavedModelHandler(ModelHandler[Any, PredictionResult, InProcessRunner]):  # type: ignore[misc]
    """RunInference in the worker, from a SavedModel version directory (local or gs://).

    Args:
        version_dir: the version directory (`.../digits/1`).
        layers: layer names (or signature keys) sharing one input.
        model: the model name recorded in model_id (default: the manifest's).
        max_batch_size, min_batch_size: how Beam batches elements.
        large_model: load one copy per machine instead of one per process (Beam's setting).
    """

    def __init__(
        self,
        version_dir: str,
        layers: Sequence[str],
        *,
        model: str | None = None,
        max_batch_size: int = 64,
        min_batch_size: int = 1,
        large_model: bool = False,
    ) -> None:
        if not layers:
            raise UsageError("name at least one layer for SavedModelHandler")
        super().__init__(
            min_batch_size=min_batch_size, max_batch_size=max_batch_size, large_model=large_model
        )
        self._version_dir = version_dir
        self._layers = list(layers)
        self._model = model

    def load_model(self) -> InProcessRunner:
        return InProcessRunner(self._version_dir, self._layers, model=self._model)

    def run_inference(
        self,
        batch: Sequence[Any],
        model: InProcessRunner,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        return _predict(batch, model)

    def get_metrics_namespace(self) -> str:
        return "layertap"


def as_row(keyed: tuple[str, PredictionResult]) -> dict[str, Any]:
    """(id, PredictionResult) -> a Parquet row: `id`, then each layer flattened to a list."""
    key, result = keyed
    inference: Mapping[str, Any] = result.inference
    return {
        "id": key,
        **{name: np.asarray(value).reshape(-1).tolist() for name, value in inference.items()},
    }


def decode_image_file(
    path_and_bytes: tuple[str, bytes],
    shape: tuple[int, int, int],
    preprocessing: ImagePreprocessing | None = None,
    dtype: str = "float32",
) -> tuple[str, np.ndarray]:
    """(path, encoded image) -> (path, one input), decoded exactly as `layertap extract` decodes images.

    Args:
        shape: the model input's (height, width, channels).
        preprocessing: scale/offset or a function (see `layertap.extract.images`).
    """
    path, data = path_and_bytes
    spec = InputSpec("image", tuple(shape), np.dtype(dtype))
    chosen = preprocessing or ImagePreprocessing()
    return path, decode_image(data, spec, chosen, chosen.resolve())
