"""How a loaded version runs: the `servable` (one SavedModel version), its C API `session` runs,
and, with `--enable_batching`, the `batching` scheduler in front of them."""
