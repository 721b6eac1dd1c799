"""A TF-free publisher for the kill and concurrency tests: `layertap repo push` with TensorFlow blocked.

    python tests/storage/publish_child.py VERSION_DIR gs://BUCKET/PREFIX/NAME [--lease-seconds S]

With sys.modules["tensorflow"] = None any import of TensorFlow (or Keras) fails loudly, so this also proves
the upload path never loads it (and starts in well under a second of TensorFlow-free imports).
"""

from __future__ import annotations

import sys

for blocked in ("tensorflow", "keras"):
    sys.modules[blocked] = None  # type: ignore[assignment]

from layertap.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["repo", "push", "--json", *sys.argv[1:]]))
