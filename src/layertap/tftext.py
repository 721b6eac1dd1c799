"""TF Text's ops in this process, as TF Serving's model server has them.

TF Serving links TF Text into its model server (`tensorflow_serving/workspace.bzl`, `org_tensorflow_text`),
so a SavedModel whose graph tokenizes text (`RegexSplitWithOffsets`, `WordpieceTokenizeWithOffsets`,
`TFText>RoundRobinTrim`, ... as KerasHub preprocessors emit) loads there; a TensorFlow process without
those ops fails with `Op type not registered` (tensorflow/serving#2267 is that error on a server whose TF
Text is too old). Every place layertap loads a SavedModel the way TF Serving does (`layertap serve`,
`validate`, the exporter's verification) calls `load_tf_text_ops()` first, so it loads what the server
would. The ops come from the `tensorflow-text` package built for the installed TensorFlow (installed with
keras-hub, `pip install 'layertap[kerashub]'`, or on its own); importing it registers its op libraries.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging

__all__ = ["load_tf_text_ops"]

logger = logging.getLogger(__name__)


@functools.cache
def load_tf_text_ops() -> str | None:
    """Register TF Text's ops once per process; returns its version, or None when it is not installed
    or does not load (logged: SavedModels that need its ops then fail with `Op type not registered`)."""
    if importlib.util.find_spec("tensorflow_text") is None:
        logger.debug("tensorflow-text is not installed: TF Text ops are not registered")
        return None
    version = importlib.metadata.version("tensorflow-text")
    try:
        import tensorflow_text  # noqa: F401  (imported for its op registrations)
    except Exception as error:  # a build for another TensorFlow fails here with a symbol or ABI error
        import tensorflow as tf

        logger.warning(
            "tensorflow-text %s does not load beside TensorFlow %s (%s: %s); models that tokenize text "
            "in the graph will not load. Install the tensorflow-text matching TensorFlow's X.Y.",
            version,
            tf.__version__,
            type(error).__name__,
            str(error).splitlines()[0] if str(error) else "",
        )
        return None
    return version
