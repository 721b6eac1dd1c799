"""Export inner layers of Keras models as ONE multi-signature SavedModel, published safely.

    from layertap.exporter import export
    result = export(model, ["conv_1", "conv_2"], base_path="models", name="mnist_cnn")

Importing this package is cheap: TensorFlow and Keras are imported when a function needs them.
"""

from __future__ import annotations

from layertap.exporter.api import ExportResult, LayerInfo, SignatureInfo, Sizes, export, inspect_model

__all__ = ["ExportResult", "LayerInfo", "SignatureInfo", "Sizes", "export", "inspect_model"]
