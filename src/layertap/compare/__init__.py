"""Compare two versions' layer outputs before traffic moves: identical, compatible, or changed.

    from layertap.compare import compare_versions, open_version

    result = compare_versions(open_version("models/cnn/1"), open_version("models/cnn/2"))
    result.signatures["conv_2"].verdict     # "identical", "compatible" or "changed"
    result.changed                          # shared signatures whose space changed

Served versions: `ServedVersion("127.0.0.1:8500", "cnn", 2)`. Running a local version needs TensorFlow
(imported when the first rows run); the metrics and served versions need only numpy and gRPC.
"""

from __future__ import annotations

from layertap.compare.api import DEFAULT_ROWS, Comparison, SignatureComparison, compare_versions, probe_inputs
from layertap.compare.metrics import (
    CHANGED,
    COMPATIBLE,
    IDENTICAL,
    OutputComparison,
    Thresholds,
    rows_needed,
)
from layertap.compare.versions import LocalVersion, ServedVersion, SignatureSpec, Version, open_version

__all__ = [
    "CHANGED",
    "COMPATIBLE",
    "DEFAULT_ROWS",
    "IDENTICAL",
    "Comparison",
    "LocalVersion",
    "OutputComparison",
    "ServedVersion",
    "SignatureComparison",
    "SignatureSpec",
    "Thresholds",
    "Version",
    "compare_versions",
    "open_version",
    "probe_inputs",
    "rows_needed",
]
