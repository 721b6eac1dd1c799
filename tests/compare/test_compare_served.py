"""Served versions (`layertap serve` on loopback): the comparison equals the on-disk one, and every
`LayerClient` result names the version and space that computed it, from the cached catalogue."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from layertap.cli import EXIT_FAILURE, EXIT_OK, main
from layertap.client import LayerClient
from layertap.compare import ServedVersion, compare_versions, open_version
from tests.fixtures.gate_repo import MODEL, ROWS, Repo

SERVED = (1, 3, 4)


@pytest.fixture(scope="module")
def target(gate_repo: Repo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from layertap.server import ServerOptions, create_server

    config = tmp_path_factory.mktemp("served") / "models.config"
    config.write_text(
        "model_config_list { config {\n"
        f'  name: "{MODEL}" base_path: "{gate_repo.path}" model_platform: "tensorflow"\n'
        f"  model_version_policy {{ specific {{ versions: {list(SERVED)} }} }}\n"
        "} }\n",
        encoding="utf-8",
    )
    server, port = create_server(ServerOptions(port=0, model_config_file=str(config), max_num_load_retries=0))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=1.0)


def _verdicts(comparison: object) -> dict[str, tuple[str, tuple[float | None, ...]]]:
    return {
        key: (sig.verdict, tuple(o.mean_cosine for o in sig.outputs))
        for key, sig in comparison.signatures.items()  # type: ignore[attr-defined]
    }


@pytest.mark.parametrize("new", [3, 4])
def test_a_served_comparison_equals_the_one_on_disk(gate_repo: Repo, target: str, new: int) -> None:
    on_disk = compare_versions(
        open_version(gate_repo.version(1)), open_version(gate_repo.version(new)), rows=ROWS
    )
    old_served, new_served = ServedVersion(target, MODEL, 1), ServedVersion(target, MODEL, new)
    try:
        served = compare_versions(old_served, new_served, rows=ROWS)
    finally:
        old_served.close()
        new_served.close()
    assert {k: s.verdict for k, s in served.signatures.items()} == {
        k: s.verdict for k, s in on_disk.signatures.items()
    }
    assert served.changed == on_disk.changed
    for key, signature in served.signatures.items():
        assert (signature.old_space, signature.new_space) == (
            gate_repo.spaces(1)[key],
            gate_repo.spaces(new)[key],
        )
        for mine, theirs in zip(signature.outputs, on_disk.signatures[key].outputs, strict=True):
            for metric in ("mean_cosine", "neighbour_overlap", "cka", "max_abs_difference"):
                assert getattr(mine, metric) == pytest.approx(getattr(theirs, metric), abs=1e-6), (
                    key,
                    metric,
                )


def test_the_served_cli_exits_1_on_a_changed_space(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["compare", "--target", target, "--model", MODEL, "--rows", str(ROWS), "--json"]
    assert main([*base, "1", "3"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["changed"] == []
    assert main([*base, "1", "4"]) == EXIT_FAILURE
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] == ["a", "b", "serving_default", "vec"]
    assert report["new"] == {"location": f"{target} {MODEL} version 4", "version": 4}


def test_every_result_carries_its_version_and_space_without_another_request(
    gate_repo: Repo, target: str
) -> None:
    rows = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    with LayerClient(target, MODEL, version=3) as client:
        catalogue = client.layers()
        assert {key: sig.space for key, sig in catalogue.signatures.items()} == gate_repo.spaces(3)
        assert catalogue.space_of("vec") == gate_repo.spaces(3)["vec"]
        outputs = client.predict(rows, ["a", "vec"])
        assert outputs.version == 3
        assert outputs.spaces == {"a": gate_repo.spaces(3)["a"], "vec": gate_repo.spaces(3)["vec"]}
        assert sorted(outputs) == ["a", "vec"] and outputs["vec"].shape == (4, 16)
        # The space is the catalogue's: no GetModelMetadata per predict.
        assert client.layers() is catalogue


def test_layers_lists_the_space_of_each_layer(
    gate_repo: Repo, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["layers", "--target", target, "--model", MODEL, "--model-version", "4"]
    assert main([*argv, "--json"]) == EXIT_OK
    listing = json.loads(capsys.readouterr().out)
    assert {name: entry["space"] for name, entry in listing["layers"].items()} == {
        "a": gate_repo.spaces(4)["a"],
        "b": gate_repo.spaces(4)["b"],
        "out": gate_repo.spaces(4)["serving_default"],
        "vec": gate_repo.spaces(4)["vec"],
    }
    assert main(argv) == EXIT_OK
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["LAYER", "SIGNATURE", "OUTPUT", "SPACE", "INPUTS"]
    row = next(line for line in table if line.startswith("vec "))
    short = gate_repo.spaces(4)["vec"].removeprefix("sha256:")[:12]
    assert row.index(short) == table[1].index("SPACE")


def test_the_stamp_leaves_requests_unchanged(target: str) -> None:
    # The space id sits in the SignatureDef's `defaults` under a key no input has: a request without it
    # is complete, and the full model answers as Keras does.
    from tests.fixtures.gate_repo import build_model

    rows = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    with LayerClient(target, MODEL, version=1) as client:
        served = client.predict(rows, ["out"])["out"]
    np.testing.assert_allclose(served, build_model(1).predict(rows, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_result_names_the_space_of_the_version_that_answered_after_a_rollout(
    gate_repo: Repo, tmp_path: Path
) -> None:
    """The catalogue is cached from version 3; version 4 (another space) replaces it mid-session: the
    next result is stamped with version 4's space ids, asked once, not with the cached catalogue's."""
    from layertap.server import ServerOptions, create_server

    base = tmp_path / MODEL
    base.mkdir()
    shutil.copytree(gate_repo.version(3), base / "3")
    options = ServerOptions(
        port=0, model_name=MODEL, model_base_path=str(base), file_system_poll_wait_seconds=1
    )
    server, port = create_server(options)
    rows = np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)
    try:
        with LayerClient(f"127.0.0.1:{port}", MODEL) as client:
            before = client.predict(rows, ["vec"])
            assert (before.version, before.spaces) == (3, {"vec": gate_repo.spaces(3)["vec"]})
            shutil.copytree(gate_repo.version(4), tmp_path / "4")
            (tmp_path / "4").rename(base / "4")  # whole, as a publisher does
            deadline = time.monotonic() + 120
            while (after := client.predict(rows, ["vec"])).version != 4:
                assert time.monotonic() < deadline, "version 4 was never served"
                time.sleep(0.2)
            assert after.spaces == {"vec": gate_repo.spaces(4)["vec"]}
            assert client.layers().version == 3  # the cached catalogue is the client's; only the stamp moved
            assert client.predict(rows, ["vec"]).spaces == {"vec": gate_repo.spaces(4)["vec"]}
    finally:
        server.stop(grace=1.0)
