"""Object storage for model repositories: gs:// and s3:// base paths, TensorFlow-free.

`layertap.storage.uri` decides what a base path is (a URI is never a relative path). The store clients are
imported only when a gs:// or s3:// location is used, so `import layertap.storage` costs nothing.
"""

from __future__ import annotations

from layertap.storage.uri import ObjectLocation, parse_location, require_backend, serving_base_path

__all__ = ["ObjectLocation", "parse_location", "require_backend", "serving_base_path"]
