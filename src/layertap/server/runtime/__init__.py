"""How a loaded version runs: the `servable` (one SavedModel version), its C API `session` calls,
and the `runner` they go through (plain, or server-side `batching`)."""
