"""Keeping TensorFlow's start-up noise out of the `layertap` commands (shown again with `-v`).

TensorFlow's C++ runtime writes to file descriptor 2 directly, before Python's logging can see it:
the absl banner ("All log messages before absl::InitializeLog() ..."), `oneDNN custom operations are
on`, "Could not find cuda drivers", and, on a machine without a GPU, `failed call to cuInit: ...
CUDA error` at ERROR level. `TF_CPP_MIN_LOG_LEVEL` does not reach the lines logged before absl is
initialised (measured with TF 2.21: they appear twice, once per shared library), so importing
TensorFlow happens with fd 2 pointed at a temporary file; afterwards every line that is not one of
TensorFlow's log lines is written back to the real stderr, so nothing else is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

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
    """Import TensorFlow quietly (unless `verbose`) and keep its later INFO/WARNING/ERROR logs quiet.

    Safe to call more than once, and a no-op for the import once TensorFlow is imported.
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
    if "tensorflow" in sys.modules:
        return
    with _filtered_stderr():
        import tensorflow as tf

        # Device discovery is where cuInit fails on a machine without a GPU: do it inside the filter.
        tf.config.list_physical_devices()
    # TensorFlow's Python logger (tf.get_logger) prints deprecation notices once per call site.
    tf.get_logger().setLevel(logging.ERROR)


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
