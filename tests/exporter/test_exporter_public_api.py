"""The exporter's public surface, and that importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import layertap.exporter


def test_all_is_explicit_and_complete() -> None:
    assert layertap.exporter.__all__ == [
        "ExportResult",
        "LayerInfo",
        "SignatureInfo",
        "Sizes",
        "export",
        "inspect_model",
    ]
    for name in layertap.exporter.__all__:
        assert getattr(layertap.exporter, name) is not None


def test_import_does_not_load_tensorflow() -> None:
    code = (
        "import sys, layertap.exporter, layertap.cli.export\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False False"
