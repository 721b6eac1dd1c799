"""layertap: serve the inner layers of Keras models on TensorFlow Serving.

Subpackages: `layertap.exporter` (Keras -> one multi-signature SavedModel, published atomically),
`layertap.client` (TensorFlow-free gRPC client), `layertap.server` (`layertap serve`, a local
TF Serving), `layertap.config` (TF Serving config files). Importing `layertap` imports none of them.
"""

__version__ = "0.1.0"
