"""The data plane: one place for admission, deadlines, metrics and errors of every inference call.

`plane` (the `DataPlane` both transports call), `admission` (the bound on concurrent calls, and
deadlines), `predict` (Predict's checks in TF Serving's order and words), `inference` (Classify,
Regress, MultiInference), `metrics` (TF Serving's Prometheus metrics).
"""
