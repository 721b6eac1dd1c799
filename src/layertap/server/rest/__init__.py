"""The REST transport: the HTTP server (`server`), its routes, and the calls (`endpoints`), which read
JSON bodies (`decode`) and write them (`encode`, `metadata`) as TF Serving does."""
