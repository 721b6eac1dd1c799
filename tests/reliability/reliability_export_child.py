"""Child process of the SIGKILL test: export the tutorial CNN in a loop until killed.

Usage: python reliability_export_child.py MODEL.keras BASE_PATH
Prints `ready` and every progress line to stderr, so the parent can kill it at chosen moments.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    from layertap.exporter import export
    from layertap.exporter.loading import load_model

    model_path, base_path = sys.argv[1:3]
    model = load_model(model_path)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    progress("ready")
    while True:
        export(model, ["conv_1", "pool_1", "flatten"], base_path=base_path, name="cnn", progress=progress)


if __name__ == "__main__":
    main()
