"""Tests whose subject is a `layertap` command: its arguments, output, exit codes and messages, one module per
command (`test_cli_export.py`, `test_cli_query.py` for `layers`/`predict`, `test_cli_serve.py`, ...).

What a command computes is tested with the library, in the package of that library (tests/exporter for what
an export contains, tests/compare for what a comparison finds); the fixtures both use are in tests/fixtures.
"""
