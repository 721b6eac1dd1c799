"""One loaded model version, run through the TF1 session path TF Serving's C++ loader takes.

`tf.compat.v1.saved_model.loader.load` restores the MetaGraph into its own Graph and Session (as TF
Serving's `LoadSavedModel` does), and requests feed and fetch the signature's tensors by name through
the C API's session run (`session.SessionCaller`: no Python static shape checks, as in C++). A model
that only works through `tf.saved_model.load` (TF2 object restore) fails here as it would there.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import grpc

from layertap.proto import serving_pb2 as pb
from layertap.server.filesystem import Location
from layertap.server.runtime.batching import BatchScheduler
from layertap.server.runtime.session import RunFunction, SessionCaller, serving_error_from_tf
from layertap.server.status import NotFound, StatusError, Unavailable, status_error
from layertap.version_folder import SAVED_MODEL_FILES

__all__ = ["Servable", "SessionSettings", "import_tensorflow"]

logger = logging.getLogger(__name__)


class _DropLoaderDeprecation(logging.Filter):
    """TensorFlow warns that the TF1 loader and the TFRecord iterator are deprecated; they are what TF
    Serving's C++ server uses (the session loader, the record reader), so using them is the point."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "loader_impl) is deprecated" not in message and "tf_record_iterator (from" not in message


def import_tensorflow() -> float:
    """Import TensorFlow once, quietly; returns the seconds it took (0 when already imported)."""
    import os
    import sys

    if "tensorflow" in sys.modules:
        return 0.0
    started = time.monotonic()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().addFilter(_DropLoaderDeprecation())
    return time.monotonic() - started


class SessionSettings:
    """TensorFlow session threading, from TF Serving's parallelism flags (0 = TensorFlow's choice)."""

    def __init__(self, intra_op: int = 0, inter_op: int = 0, session: int = 0) -> None:
        # --tensorflow_session_parallelism sets both pools unless they are set on their own.
        self.intra_op = intra_op or session
        self.inter_op = inter_op or session


class Servable:
    """A loaded SavedModel version: its signatures, its session, and the requests currently using it.

    Use `Servable.load`. `run(feeds, fetches, timeout_ms)` feeds and fetches tensors by name and
    returns the fetched arrays, or raises the `StatusError` TF Serving would answer (DEADLINE_EXCEEDED
    when `timeout_ms` passed, INVALID_ARGUMENT for shapes the graph refuses, ...); it is thread-safe
    (TensorFlow sessions are). It is chosen once, here: the session's own run, or, with a batching
    `runner`, that runner's queue in front of it. `close` waits until every request holding the
    servable (`in_use`) has finished, so unloading never fails a request.
    """

    def __init__(
        self,
        name: str,
        version: int,
        path: Location,
        session: Any,
        signatures: Mapping[str, pb.SignatureDef],
        *,
        runner: BatchScheduler | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.signatures = dict(signatures)
        self._session = SessionCaller(session, statuses=True)
        self._runner = runner
        self.run: RunFunction = (
            self._session.run
            if runner is None
            else functools.partial(runner.run, id(self), self._session.run)
        )
        self._users = 0
        self._closed = False
        self._idle = threading.Condition()

    @classmethod
    def load(
        cls,
        name: str,
        version: int,
        path: Location,
        tags: Sequence[str],
        settings: SessionSettings,
        *,
        runner: BatchScheduler | None = None,
    ) -> Servable:
        """Load `path` with the TF1 SavedModel loader into a fresh Graph and Session.

        Raises:
            StatusError: with TF Serving's code for the failure (NOT_FOUND for a missing
                saved_model.pb, the TensorFlow error's code otherwise).
        """
        import tensorflow as tf

        from layertap.tftext import load_tf_text_ops

        load_tf_text_ops()  # the model server links TF Text: its tokenizer ops must resolve here too
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=settings.intra_op,
            inter_op_parallelism_threads=settings.inter_op,
        )
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=config)
        try:
            with graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(session, list(tags), str(path))
        except Exception as error:
            session.close()
            raise _load_error(error, path, tags) from error
        signatures = {
            key: pb.SignatureDef.FromString(signature.SerializeToString())
            for key, signature in meta_graph.signature_def.items()
        }
        return cls(name, version, path, session, signatures, runner=runner)

    def signature_def_map(self) -> pb.SignatureDefMap:
        """Every signature of the MetaGraph, as GetModelMetadata reports them."""
        result = pb.SignatureDefMap()
        for key, signature in self.signatures.items():
            result.signature_def[key].CopyFrom(signature)
        return result

    @contextmanager
    def in_use(self) -> Iterator[Servable]:
        """Hold the servable for one request; `close` waits for holders to leave."""
        with self._idle:
            if self._closed:
                raise Unavailable(f"version {self.version} of model {self.name} was unloaded")
            self._users += 1
        try:
            yield self
        finally:
            with self._idle:
                self._users -= 1
                if self._users == 0:
                    self._idle.notify_all()

    def close(self) -> None:
        """Wait for in-flight requests, then release the session and its memory."""
        started = time.monotonic()
        with self._idle:
            self._closed = True
            while self._users:
                self._idle.wait()
        if self._runner is not None:
            self._runner.forget(id(self))
        self._session.close()
        logger.debug(
            "closed session of %s version %d after %.3f s",
            self.name,
            self.version,
            time.monotonic() - started,
        )


def _load_error(error: BaseException, path: Location, tags: Sequence[str]) -> StatusError:
    if not any((path / name).exists() for name in SAVED_MODEL_FILES):
        return NotFound(f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {path}")
    if isinstance(error, OSError):
        # The file is there but does not parse: TensorFlow's C++ reader reports DATA_LOSS.
        return status_error(grpc.StatusCode.DATA_LOSS, str(error))
    if isinstance(error, RuntimeError) and "MetaGraphDef associated with tags" in str(error):
        return NotFound(f"{error} (loaded with --saved_model_tags={','.join(tags)})")
    return serving_error_from_tf(error)
