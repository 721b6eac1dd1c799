"""Run in the old TensorFlow's environment: load each SavedModel version given on the command line through
the TF1 session loader (the C++ loader TF Serving uses, reached from Python), run every signature on zeros
("7" for strings),
and print one JSON line per version: {"path", "tensorflow", "loaded", "error", "outputs": {sig: [shapes]}}."""

from __future__ import annotations

import json
import sys

import numpy as np
import tensorflow as tf


def _zeros(info: object) -> np.ndarray:
    dims = [d.size if d.size >= 0 else 1 for d in info.tensor_shape.dim]  # type: ignore[attr-defined]
    dtype = tf.dtypes.as_dtype(info.dtype).as_numpy_dtype  # type: ignore[attr-defined]
    if dtype is object:  # DT_STRING: a digit parses for every string-to-number op too
        return np.full(dims, b"7", dtype=object)
    return np.zeros(dims, dtype=dtype)


def load_and_run(path: str) -> dict[str, object]:
    report: dict[str, object] = {"path": path, "tensorflow": tf.__version__, "loaded": False, "error": ""}
    try:
        with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
            report["loaded"] = True
            outputs: dict[str, list[list[int]]] = {}
            for key, signature in meta_graph.signature_def.items():
                if key == "__saved_model_init_op":
                    continue
                feeds = {info.name: _zeros(info) for info in signature.inputs.values()}
                fetches = {alias: info.name for alias, info in signature.outputs.items()}
                values = session.run(fetches, feed_dict=feeds)
                outputs[key] = [list(np.shape(values[alias])) for alias in sorted(values)]
            report["outputs"] = outputs
    except Exception as error:  # the outcome is the report: any failure is data for the test
        report["error"] = f"{type(error).__name__}: {error}"
    return report


if __name__ == "__main__":
    for version_dir in sys.argv[1:]:
        print(json.dumps(load_and_run(version_dir)), flush=True)
