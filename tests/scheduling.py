"""The order in which `make test`'s two pytest-xdist workers take the test modules: longest first.

`make test` runs the suite on two worker processes with `--dist loadfile --no-loadscope-reorder`:
each module goes whole to one worker (so its module-scoped fixtures are built once, and a module's
tests run in file order as they do in one process), and a worker takes the next module from the
front of the queue whenever it has two tests or fewer left. Taken last, a module that runs for
minutes (the publishers killed mid-upload, the benchmark smoke test, the KerasHub exports) would
leave one worker running it alone while the other sits idle; taken first, the short modules fill
in around it on the other worker.

`LONGEST_FIRST` names the modules that took longest in a full two-worker run on a 2-core machine
(pytest `--durations=0` summed per module, 2026-12-07, under load: from about 700 s down to about
100 s of a 2,700 s run), longest first; every other module follows in collection
order. The order is only used in xdist workers: run in one process
(`make test TEST_WORKERS=0`, or `pytest` directly) the suite keeps pytest's own order.
`tests/test_scheduling.py` checks that every module named here exists, so a move or a rename cannot
silently send one to the back of the queue.
"""

from __future__ import annotations

import pytest

LONGEST_FIRST = (
    "tests/storage/test_storage_gcs_kill_e2e.py",
    "tests/bench/test_bench_smoke.py",
    "tests/exporter/test_exporter_kerashub.py",
    "tests/reliability/test_reliability_serving.py",
    "tests/server/test_heads_served.py",
    "tests/exporter/test_exporter_applications.py",
    "tests/test_readme.py",
    "tests/deploy/test_deploy_replicas.py",
    "tests/server/test_demo_serving.py",
    "tests/reliability/test_reliability_sigkill.py",
    "tests/exporter/test_exporter_all_layers.py",
    "tests/exporter/test_exporter_keras2.py",
    "tests/exporter/test_exporter_backends.py",
    "tests/exporter/test_exporter_custom_objects.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):
        return  # not an xdist worker: nothing is scheduled
    rank = {module: position for position, module in enumerate(LONGEST_FIRST)}
    # A stable sort: the tests of one module keep their order, unlisted modules theirs.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
