"""Keeping TensorFlow's start-up noise out of the `layertap` commands (shown again with `-v`).

TensorFlow's C++ runtime writes to file descriptor 2 directly, before Python's logging can see it:
the absl banner ("All log messages before absl::InitializeLog() ..."), `oneDNN custom operations are
on`, "Could not find cuda drivers", and, on a machine without a GPU, `failed call to cuInit: ...
CUDA error` at ERROR level. `TF_CPP_MIN_LOG_LEVEL` does not reach the lines logged before absl is
initialised (measured with TF 2.21: they appear twice, once per shared library), so importing
TensorFlow happens with fd 2 pointed at a temporary file; afterwards every line that is not one of
TensorFlow's log lines is written back to the real stderr, so nothing else is lost.

The import itself is NOT done here: a hook waits for the first `import tensorflow` (by Keras, the
exporter or the server) and filters that one. So a command checks its arguments and paths first and
a mistake costs no TensorFlow import (10-30 s and ~0.9 GB before, for a missing model file).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
import types
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["is_tensorflow_log_line", "quiet_tensorflow"]

# absl's format: severity+date, time, thread id, file:line], e.g.
# I0000 00:00:1796353498.115380    8279 port.cc:153] oneDNN custom operations are on.
# (before absl is initialised the time is "00:00:<epoch seconds>")
_LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\]")
_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    # The second line of cpu_feature_guard's message.
    "To enable the following instructions:",
)


def is_tensorflow_log_line(line: str) -> bool:
    """Whether `line` is one of TensorFlow's C++ log lines (or their known continuations)."""
    return bool(_LOG_LINE.match(line)) or line.startswith(_NOISE)


def quiet_tensorflow(*, verbose: bool) -> None:
    """Keep TensorFlow quiet (unless `verbose`): its import, whenever it happens, and its later logs.

    Safe to call more than once. Does not import TensorFlow.
    """
    if verbose:
        return
    # C++ logs after absl is initialised: 3 hides INFO, WARNING and ERROR (errors that matter reach
    # Python as exceptions); FATAL still shows. A value the user set explicitly is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tf_keras|absl|h5py)(\.|$)")
    for name in ("absl", "tensorflow", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietImport())


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as the other finders would, and runs its import with fd 2 filtered."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        # The finders after this one decide where TensorFlow is (the path, or another hook's choice).
        for finder in list(sys.meta_path):
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _QuietLoader(spec.loader, self)
                return spec
        return None


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, finder: _QuietImport) -> None:
        self._loader = loader
        self._finder = finder

    def __getattr__(self, name: str) -> Any:
        # What else the wrapped loader offers (resource readers, get_source...) stays reachable.
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # One import only: TensorFlow's own sub-imports, and later imports, go the usual way.
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self._finder)
        with _filtered_stderr():
            self._loader.exec_module(module)
            # Device discovery is where cuInit fails on a machine without a GPU: do it inside the filter.
            module.config.list_physical_devices()
        # TensorFlow's Python logger (tf.get_logger) prints deprecation notices once per call site.
        module.get_logger().setLevel(logging.ERROR)


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not is_tensorflow_log_line(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
