"""TensorFlow Serving's wire format without TensorFlow: dtypes and the tensor codec.

Shared by the client, the server and the exporter's warmup records. Never imports TensorFlow.
"""
