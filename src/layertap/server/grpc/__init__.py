"""The gRPC transport: TF Serving's PredictionService and ModelService (`servicer`), reflection, profiler."""
