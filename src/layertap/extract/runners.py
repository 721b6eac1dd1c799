"""Who computes the features: a version directory loaded in this process through the session loader
TF Serving uses, or TF Serving (or `layertap serve`) asked through `LayerClient`.

Both resolve the names asked for (layer names, or signature keys) through the same `Catalogue` the
client builds from GetModelMetadata, so a name means the same signature and output in-process and
remotely. A runner is pinned to ONE model version for its whole life: features of two versions
live in two spaces and are never mixed in one output.

Both warm up when they start, before a job's clock does: one example of zeros goes through exactly
the call the job makes (the same feeds and fetches). A TensorFlow session builds the executor of a
feed/fetch combination on its first run with it (graph pruning and Grappler's rewrites:
`DirectSession::GetOrCreateExecutors` in tensorflow/core/common_runtime/direct_session.cc), which TF
Serving pays at load by replaying a version's warmup records
(tensorflow_serving/servables/tensorflow/saved_model_warmup.cc). Measured on ResNet50 64x64
(`conv4_block6_out`): the first run took 1.6 s of CPU against 0.04 s for the next one at batch 1 and
0.97 s at batch 64, and a batch shape never seen before (40, 13 after 64) cost no more than its share
of a batch of 64, so one example warms every batch size, the last partial batch included.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from layertap.client._catalogue import Catalogue, Layer, parse_metadata
from layertap.errors import UsageError
from layertap.extract.records import InputSpec
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.version_folder import MANIFEST_PATH, parse_manifest

__all__ = ["InProcessRunner", "OutputSpec", "RemoteRunner", "Runner"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputSpec:
    """One feature column: a layer's output for one example (no batch dimension)."""

    name: str
    signature: str
    shape: tuple[int | None, ...]
    dtype: np.dtype[Any]


class Runner(Protocol):
    """Features for batches of one input, from one model version."""

    model: str
    version: int
    input: InputSpec
    outputs: dict[str, OutputSpec]
    #: the embedding-space id of each output's signature (None for versions exported without one)
    spaces: dict[str, str | None]
    #: how many batches may be in flight at once (one per server for remote runners)
    parallelism: int

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def resolve(catalogue: Catalogue, names: Sequence[str]) -> tuple[InputSpec, dict[str, OutputSpec]]:
    """The common input and the outputs of `names` in `catalogue`.

    Raises:
        LayerNotFoundError: a name is no layer (lists the layers and the nearest names).
        UsageError: the layers take different inputs, or more than one.
    """
    if not names:
        raise UsageError("name at least one layer (signature) to extract")
    layers: list[Layer] = [catalogue.layer(name) for name in dict.fromkeys(names)]
    specs = {(tuple(layer.inputs.items())) for layer in layers}
    first = layers[0]
    if len(specs) != 1 or len(first.inputs) != 1:
        described = "; ".join(
            f"{layer.name}: {', '.join(f'{a} {s.describe()}' for a, s in layer.inputs.items())}"
            for layer in layers
        )
        raise UsageError(
            f"extract feeds one input to every layer asked for; these take {described}. Extract layers "
            "that share a single input"
        )
    alias, tensor = next(iter(first.inputs.items()))
    if tensor.shape is None or not tensor.shape:
        raise UsageError(f"input {alias!r} has no batch dimension ({tensor.describe()}); cannot batch it")
    dtype = np.dtype(object) if tensor.dtype == "string" else tensor.numpy_dtype
    if dtype is None:
        raise UsageError(f"input {alias!r} has a dtype extract cannot feed: {tensor.describe()}")
    outputs: dict[str, OutputSpec] = {}
    for layer in layers:
        out_dtype = np.dtype(object) if layer.output.dtype == "string" else layer.output.numpy_dtype
        if out_dtype is None or layer.output.shape is None:
            raise UsageError(
                f"layer {layer.name!r} returns {layer.output.describe()}, which extract cannot store"
            )
        outputs[layer.name] = OutputSpec(
            layer.name, layer.signature, tuple(layer.output.shape[1:]), out_dtype
        )
    return InputSpec(alias, tuple(tensor.shape[1:]), dtype), outputs


def warmup_example(spec: InputSpec) -> np.ndarray | None:
    """A batch of one example of zeros for `spec` (an open dimension gets size 1), or None for string
    inputs: the graph parses those (an image file, a tf.Example...) and no string is valid for every
    model, so their first batch pays the session's set-up instead."""
    if spec.is_string:
        return None
    return np.zeros((1, *(1 if d is None else d for d in spec.shape)), dtype=spec.dtype)


def warm(runner: Runner) -> None:
    """Run `runner` once on `warmup_example` (see the module's docstring); best effort: a model that
    refuses zeros is logged and the job goes on (its first batch then pays the set-up, and reports
    whatever is wrong with the real records)."""
    example = warmup_example(runner.input)
    if example is None:
        return
    started = time.monotonic()
    try:
        runner.run(example)
    except Exception as error:  # the model's own complaint about zeros: not the records' fault
        logger.warning(
            "warm-up run of %s/%s failed (%s); the first batch pays it", runner.model, runner.version, error
        )
        return
    logger.info("warmed up %s/%s in %.3f s", runner.model, runner.version, time.monotonic() - started)


def _strings(batch: np.ndarray) -> np.ndarray:
    encoded = np.empty(len(batch), dtype=object)
    encoded[:] = [item.encode("utf-8") if isinstance(item, str) else item for item in batch]
    return encoded


class InProcessRunner:
    """A version directory (local or gs://) loaded with TensorFlow's TF1 SavedModel loader, as TF
    Serving's C++ loader does, and run through the C API's session run; thread-safe, so one loaded
    version serves every thread of a process.

    Args:
        path: the version directory (`.../mnist/3`); its name is the version number.
        names: layers (or signature keys) to extract.
        model: the model's name; default: the manifest's, else the parent directory's name.
        tags: the MetaGraph tags.
    """

    def __init__(
        self, path: str, names: Sequence[str], *, model: str | None = None, tags: Sequence[str] = ("serve",)
    ) -> None:
        from layertap.server.runtime.servable import import_tensorflow

        import_tensorflow()
        import tensorflow as tf

        from layertap.server.runtime.session import SessionCaller

        path = path.rstrip("/")
        base, _, leaf = path.rpartition("/")
        if not leaf.isdigit():
            raise UsageError(
                f"a version directory is named by its version number (models/cnn/3); got {path!r}"
            )
        if not tf.io.gfile.exists(f"{path}/saved_model.pb"):
            raise UsageError(f"{path} holds no saved_model.pb: not a SavedModel version directory")
        manifest = _manifest(path)
        self.version = int(leaf)
        self.model = model or manifest.get("model", {}).get("name") or base.rpartition("/")[2] or "model"
        graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=graph)
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self._session, list(tags), path)
        self._caller = SessionCaller(self._session)
        definitions = {
            key: pb.SignatureDef.FromString(definition.SerializeToString())
            for key, definition in meta_graph.signature_def.items()
        }
        catalogue = _catalogue(self.model, self.version, definitions)
        self.input, self.outputs = resolve(catalogue, names)
        self.spaces = {name: catalogue.space_of(name) for name in self.outputs}
        used = {spec.signature for spec in self.outputs.values()}
        self._feeds = [definitions[key].inputs[self.input.alias].name for key in sorted(used)]
        self._fetches = [
            definitions[spec.signature].outputs[catalogue.layers[name].output.alias].name
            for name, spec in self.outputs.items()
        ]
        # Two batches in flight: one runs (the session releases the GIL) while the last one is written.
        self.parallelism = 2
        warm(self)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs for one batch, by name; one session run for every signature asked."""
        fed = _strings(batch) if self.input.is_string else batch
        # Each signature has its own input placeholder; they all get the same batch.
        arrays = self._caller.run(dict.fromkeys(self._feeds, fed), self._fetches, None)
        return dict(zip(self.outputs, arrays, strict=True))

    def close(self) -> None:
        self._caller.close()


def _manifest(path: str) -> dict[str, Any]:
    """The version's layertap manifest (assets.extra/layertap.json), or {} for other SavedModels."""
    import tensorflow as tf

    file = f"{path}/{MANIFEST_PATH}"
    if not tf.io.gfile.exists(file):
        return {}
    with tf.io.gfile.GFile(file, "rb") as handle:
        return parse_manifest(handle.read(), file)


def _catalogue(model: str, version: int, definitions: Mapping[str, pb.SignatureDef]) -> Catalogue:
    """The Catalogue the client would build from this version's GetModelMetadata answer."""
    response = pb.GetModelMetadataResponse()
    response.model_spec.name = model
    response.model_spec.version.value = version
    signature_map = pb.SignatureDefMap()
    for key, definition in definitions.items():
        signature_map.signature_def[key].CopyFrom(definition)
    packed = response.metadata["signature_def"]
    packed.type_url = methods.SIGNATURE_DEF_MAP_TYPE_URL
    packed.value = signature_map.SerializeToString()
    return parse_metadata(response.SerializeToString(), model)


class RemoteRunner:
    """TF Serving (or `layertap serve`) asked through `LayerClient`: one client per target, batches
    spread over them in turn, every client pinned to the version the first target serves when the
    runner starts (a new version appearing mid-job fails the job instead of mixing spaces).

    Args:
        targets: "host:port" addresses (or one "dns:///name:port", which balances by itself).
        model: the served model's name.
        names: layers (or signature keys) to extract.
        version: pin this version instead of the one served at start.
        client_options: more LayerClient keyword arguments (timeout, retry, tls, max_batch_size...).
    """

    def __init__(
        self,
        targets: Sequence[str],
        model: str,
        names: Sequence[str],
        *,
        version: int | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        from layertap.client import LayerClient

        if not targets:
            raise UsageError("name at least one server: --target HOST:PORT (repeatable) or dns:///NAME:PORT")
        options = dict(client_options or {})
        options.setdefault("timeout", 60.0)
        probe = LayerClient(targets[0], model, version=version, **options)
        try:
            catalogue = probe.layers()
        finally:
            probe.close()
        if catalogue.version is None:
            raise UsageError(f"{targets[0]} did not say which version of {model!r} it serves")
        self.model = model
        self.version = catalogue.version
        self.input, self.outputs = resolve(catalogue, names)
        self.spaces = {name: catalogue.space_of(name) for name in self.outputs}
        self._clients = [LayerClient(target, model, version=self.version, **options) for target in targets]
        self._turn = itertools.cycle(self._clients)
        self._lock = threading.Lock()
        self.parallelism = 2 * len(self._clients)
        for _ in self._clients:  # `run` takes the servers in turn: once each warms every one
            warm(self)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs for one batch, by name, from the next server in turn."""
        with self._lock:
            client = next(self._turn)
        fed = _strings(batch) if self.input.is_string else batch
        return client.predict({self.input.alias: fed}, list(self.outputs))

    def close(self) -> None:
        for client in self._clients:
            client.close()
