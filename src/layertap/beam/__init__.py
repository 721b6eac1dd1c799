"""Apache Beam `RunInference` model handlers for layer features.

    import apache_beam as beam
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
    from layertap.beam import LayerServingHandler, as_row

    handler = KeyedModelHandler(LayerServingHandler("tfserving:8500", "digits", ["conv_2"]))
    rows = keyed_images | RunInference(handler) | beam.Map(as_row)

`LayerServingHandler` asks TF Serving (or `layertap serve`) through `layertap.client.LayerClient`: Beam
batches elements up to the server's `max_batch_size`, retries UNAVAILABLE and DEADLINE_EXCEEDED
answers (Beam's retry with backoff over the client's own retries) and throttles itself when the server
sheds load (Beam's `RemoteModelHandler`: adaptive client-side throttling). `SavedModelHandler` runs a
version directory in the worker, through the session loader TF Serving uses; Beam loads it once per
worker process and shares it across the process's threads. Both return, per element, a
`PredictionResult` whose `inference` maps each layer to its numpy array and whose `model_id` is
`model/version`. Beam's own TensorFlow handlers cannot do either: they load through Keras, which
refuses SavedModel folders under Keras 3 (apache/beam#30616), and tfx-bsl's take serialized
tf.Examples only.
"""

from __future__ import annotations

from layertap.beam.handlers import LayerServingHandler, SavedModelHandler, as_row, decode_image_file

__all__ = ["LayerServingHandler", "SavedModelHandler", "as_row", "decode_image_file"]
