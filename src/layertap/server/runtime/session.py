"""Session runs the way TF Serving's C++ server makes them: `Session::Run`, beneath Python's checks.

Python's `Session.run` checks every feed against the tensor's static shape before TensorFlow sees it
(`Cannot feed value of shape (1,) for Tensor x:0, which has shape (None, 1)`); the C++ session TF
Serving calls does not (`tensorflow/core/common_runtime/direct_session.cc` checks dtypes, not static
shapes), so TF Serving answers such requests (its own test model `half_plus_two` fed shape [1] returns
3.0, measured through the C API: tests/server/test_session_semantics.py) and the kernels report what
they cannot run. Here a run goes through the C
API's `TF_SessionRun` (TensorFlow's `pywrap_tf_session.TF_SessionRun_wrapper`, the call
`Session.run` itself ends in) with the request's RunOptions (its deadline), so what TF Serving runs
runs, and what it refuses is refused with the runtime's own error.

`make_callable(fetches, feed_list)` would not do: with a feed list it delegates to `Session.run`
and its checks; `CallableOptions` fix the RunOptions (so the deadline) per callable.

The server's sessions answer a failed run with the gRPC status TF Serving would send
(`serving_error_from_tf`); other users (`layertap extract`) get TensorFlow's own exception.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from layertap.server.status import InvalidArgument, NotFound, StatusError, status_error

__all__ = ["RunFunction", "SessionCaller", "serving_error_from_tf"]

#: A session run: feeds by tensor name, fetch names, timeout in ms -> the fetched arrays.
RunFunction = Callable[[Mapping[str, np.ndarray], Sequence[str], "int | None"], list[np.ndarray]]

#: Feed/fetch plans kept per session: signatures x output filters; bounded against hostile filters.
_MAX_PLANS = 256


def serving_error_from_tf(error: BaseException) -> StatusError:
    """The gRPC status TF Serving would answer for a TensorFlow exception raised while loading or running.

    TensorFlow's error codes are gRPC's; Python-side feed checks (ValueError, TypeError) correspond to
    what the C++ session reports as INVALID_ARGUMENT.
    """
    import tensorflow as tf

    if isinstance(error, tf.errors.OpError):
        # Python appends graph-construction tracebacks TF Serving's C++ status does not carry.
        message = str(error.message).split("\n\nErrors may have originated from")[0]
        message = message.split("\n\nOriginal stack trace")[0].strip()
        return status_error(int(error.error_code), message)
    if isinstance(error, ValueError | TypeError):
        return InvalidArgument(str(error))
    if isinstance(error, OSError):
        return NotFound(str(error))
    return StatusError(f"{type(error).__name__}: {error}")


class SessionCaller:
    """Runs feeds and fetches, by tensor name, on one loaded TF1 session; thread-safe.

    Args:
        session: the loaded `tf.compat.v1.Session`.
        statuses: raise a failed run as the `StatusError` TF Serving would answer (the server),
            instead of TensorFlow's exception.
    """

    def __init__(self, session: Any, *, statuses: bool = False) -> None:
        from tensorflow.python.client import pywrap_tf_session

        self._session = session
        self._statuses = statuses
        self._c_api = pywrap_tf_session
        self._plans: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], tuple[list[Any], list[Any]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        # The loader ran the restore ops, so the graph is in the runtime already; make sure.
        session._extend_graph()

    def run(
        self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str], timeout_ms: int | None
    ) -> list[np.ndarray]:
        """One `TF_SessionRun`: the fetched arrays, in the order of `fetches`.

        Raises:
            tf.errors.OpError: the runtime's error (INVALID_ARGUMENT from a kernel, DEADLINE_EXCEEDED
                when `timeout_ms` passed, ...); a `StatusError` with its code when `statuses`.
        """
        try:
            return self._run(feeds, fetches, timeout_ms)
        except Exception as error:
            if self._statuses:
                raise serving_error_from_tf(error) from error
            raise

    def _run(
        self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str], timeout_ms: int | None
    ) -> list[np.ndarray]:
        names = tuple(feeds)
        inputs, outputs = self._plan(names, tuple(fetches))
        options = None
        if timeout_ms is not None:
            import tensorflow as tf

            run_options = tf.compat.v1.RunOptions(timeout_in_ms=max(1, timeout_ms))
            options = self._c_api.TF_NewBufferFromString(run_options.SerializeToString())
        try:
            results = self._c_api.TF_SessionRun_wrapper(
                self._session._session,
                options,
                {tensor: feeds[name] for tensor, name in zip(inputs, names, strict=True)},
                outputs,
                [],
                None,
            )
        finally:
            if options is not None:
                self._c_api.TF_DeleteBuffer(options)
        return [np.asarray(result) for result in results]

    def _plan(self, feeds: tuple[str, ...], fetches: tuple[str, ...]) -> tuple[list[Any], list[Any]]:
        """The graph outputs (TF_Output) for these tensor names, looked up once per signature and filter."""
        key = (feeds, fetches)
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan
        graph = self._session.graph
        plan = (
            [graph.get_tensor_by_name(name)._as_tf_output() for name in feeds],
            [graph.get_tensor_by_name(name)._as_tf_output() for name in fetches],
        )
        with self._lock:
            self._plans[key] = plan
            if len(self._plans) > _MAX_PLANS:
                self._plans.popitem(last=False)
        return plan

    def close(self) -> None:
        """Release the session."""
        self._session.close()
