"""LayerClient against the official-stub peer: catalogue, predictions, every dtype, both encodings."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from layertap.client import LayerClient, TensorSpec
from layertap.errors import InvalidInputError, LayerNotFoundError, UsageError
from tests.fixtures.client_peer import ECHO_DTYPES, MODEL, Peer, dense_1, dense_2, scores

X = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)


@pytest.fixture
def client(peer_target: str) -> LayerClient:
    with LayerClient(peer_target, MODEL) as client:
        yield client


def test_catalogue_lists_layers_signatures_and_inputs(client: LayerClient, peer: Peer) -> None:
    catalogue = client.layers()
    assert catalogue.model == MODEL and catalogue.version == 1
    assert "__saved_model_init_op" not in catalogue.signatures
    assert list(catalogue.layers) == sorted(
        [
            "dense_1",
            "dense_2",
            "scores",
            "pair",
            "fixed",
            "split:0",
            "split:1",
            *(f"echo_{name}" for name in ECHO_DTYPES),
        ]
    )
    assert catalogue.layers["dense_1"].signature == "dense_1"  # its own signature, not a group
    assert catalogue.layers["scores"].signature == "heads"  # only a group answers for it
    assert catalogue.layers["scores"].output == TensorSpec("scores", "float64", (None, 2))
    assert catalogue.layers["dense_1"].inputs == {"image": TensorSpec("image", "float32", (None, 4))}
    assert catalogue.layers["fixed"].inputs["image"].shape == (2, 4)
    assert catalogue.layers["echo_string"].inputs["x"] == TensorSpec("x", "string", None)
    assert sorted(sig.key for sig in catalogue.groups) == ["features", "heads", "split"]
    assert catalogue.layers["split:1"].signature == "split"
    assert client.layers() is catalogue  # cached: one metadata call
    assert peer.count("GetModelMetadata") == 1
    assert client.layers(refresh=True) is not catalogue
    assert peer.count("GetModelMetadata") == 2


@pytest.mark.parametrize("tensor_content", [False, True], ids=["typed", "tensor_content"])
def test_predict_layer_values_in_both_encodings(
    client: LayerClient, peer: Peer, tensor_content: bool
) -> None:
    peer.settings.tensor_content = tensor_content
    out = client.predict_layer(X, "dense_1")
    np.testing.assert_allclose(out, dense_1(X), rtol=1e-6)
    assert out.dtype == np.float32 and out.shape == (3, 3)
    request = peer.settings.requests[-1]
    assert request.model_spec.signature_name == "dense_1" and list(request.output_filter) == []
    assert len(request.inputs["image"].tensor_content) == X.nbytes  # requests carry tensor_content


def test_full_model_when_no_layers_named(client: LayerClient, peer: Peer) -> None:
    out = client.predict(X)
    assert list(out) == ["dense_2"]
    np.testing.assert_allclose(out["dense_2"], dense_2(X), rtol=1e-6)


def test_several_layers_covered_by_a_group_use_one_call(client: LayerClient, peer: Peer) -> None:
    client.layers()
    out = client.predict(X, ["dense_2", "dense_1"])
    assert list(out) == ["dense_2", "dense_1"]  # the caller's order
    np.testing.assert_allclose(out["dense_1"], dense_1(X), rtol=1e-6)
    np.testing.assert_allclose(out["dense_2"], dense_2(X), rtol=1e-6)
    assert peer.count("Predict") == 1
    assert peer.settings.requests[-1].model_spec.signature_name == "features"
    assert list(peer.settings.requests[-1].output_filter) == []  # the whole group was asked for


def test_subset_of_a_group_is_filtered(client: LayerClient, peer: Peer) -> None:
    out = client.predict(X, ["scores"])
    np.testing.assert_allclose(out["scores"], scores(X), rtol=1e-6)
    assert out["scores"].dtype == np.float64
    request = peer.settings.requests[-1]
    assert request.model_spec.signature_name == "heads" and list(request.output_filter) == ["scores"]


def test_layers_without_a_common_group_go_concurrently(client: LayerClient, peer: Peer) -> None:
    out = client.predict(X, ["scores", "dense_2"])
    assert peer.count("Predict") == 2
    assert sorted(r.model_spec.signature_name for r in peer.settings.requests) == ["dense_2", "heads"]
    np.testing.assert_allclose(out["scores"], scores(X), rtol=1e-6)
    np.testing.assert_allclose(out["dense_2"], dense_2(X), rtol=1e-6)


def test_multi_input_dict_and_version_zero_is_sent(peer_target: str, peer: Peer) -> None:
    a = np.ones((2, 2), np.float32)
    b = np.arange(4, dtype=np.float32).reshape(2, 2)
    with LayerClient(peer_target, MODEL, version=1) as client:
        np.testing.assert_array_equal(client.predict_layer({"a": a, "b": b}, "pair"), a + b)
        assert peer.settings.requests[-1].model_spec.version.value == 1
    with LayerClient(peer_target, MODEL, version_label="stable") as client:
        np.testing.assert_array_equal(client.predict({"a": a, "b": b}, "pair")["pair"], a + b)
        assert peer.settings.requests[-1].model_spec.version_label == "stable"
    from layertap.client._settings import model_spec

    spec = model_spec(MODEL, version=0, version_label=None)
    assert spec.HasField("version") and spec.version.value == 0  # never `if version:`


@pytest.mark.parametrize("tensor_content", [False, True], ids=["typed", "tensor_content"])
@pytest.mark.parametrize("dtype", ECHO_DTYPES)
def test_every_dtype_round_trips(client: LayerClient, peer: Peer, dtype: str, tensor_content: bool) -> None:
    peer.settings.tensor_content = tensor_content
    if dtype == "string":
        x = np.array([[b"a", b""], [b"\xff\x00bytes", "é".encode()]], dtype=object)
    elif dtype == "bool":
        x = np.array([[True, False, True], [False, False, True]])
    elif dtype.startswith("complex"):
        x = (np.arange(6) - 2.5 + 1j * np.arange(6)[::-1]).astype(dtype).reshape(2, 3)
    else:
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
        x = np.array([[info.min, info.max, 0], [1, 2, 3]], dtype=dtype)
    out = client.predict_layer(x, f"echo_{dtype}")
    assert out.dtype == x.dtype and out.shape == x.shape
    assert out.tolist() == x.tolist()


def test_typed_field_with_one_value_fills_the_shape(client: LayerClient, peer: Peer) -> None:
    peer.settings.compress_constants = True
    for dtype, value in (("int32", -7), ("float32", 2.5), ("float16", 1.5), ("bool", True), ("int64", 2**40)):
        x = np.full((3, 4), value, dtype=dtype)
        out = client.predict_layer(x, f"echo_{dtype}")
        assert out.dtype == x.dtype and out.tolist() == x.tolist()


def test_empty_batches(client: LayerClient, peer: Peer) -> None:
    for tensor_content in (False, True):
        peer.settings.tensor_content = tensor_content
        out = client.predict_layer(np.zeros((0, 4), np.float32), "dense_1")
        assert out.shape == (0, 3) and out.dtype == np.float32


def test_inputs_checked_locally_before_sending(client: LayerClient, peer: Peer) -> None:
    client.layers()
    cases = [
        (np.zeros((2, 3), np.float32), "dense_1", "expects float32[?, 4]"),
        (np.zeros((4,), np.float32), "dense_1", "expects rank 2"),
        (np.zeros((2, 4), np.float64), "dense_1", "does not cast safely to float32"),
        (np.zeros((3, 4), np.float32), "fixed", "dimension 0 must be 2"),
        ({"a": np.zeros((1, 2), np.float32)}, "pair", "missing: ['b']"),
        ({"a": 1, "b": 2, "c": 3}, "pair", "extra: ['c']"),
        (np.zeros((1, 2), np.float32), "pair", "takes 2 inputs (a, b); pass a dict"),
        (np.zeros((1,), np.float32), "echo_string", "expects strings"),
    ]
    for inputs, layer, fragment in cases:
        with pytest.raises(InvalidInputError) as raised:
            client.predict_layer(inputs, layer)
        assert fragment in str(raised.value) and f"layer {layer!r}" in str(raised.value)
    assert peer.count("Predict") == 0


def test_safe_casts_and_lists_are_accepted(client: LayerClient, peer: Peer) -> None:
    as_int = client.predict_layer(np.array([[1, 2, 3, 4]], dtype=np.int16), "dense_1")
    from_list = client.predict_layer([[1.0, 2.0, 3.0, 4.0]], "dense_1")
    np.testing.assert_allclose(as_int, dense_1(np.array([[1, 2, 3, 4]])), rtol=1e-6)
    np.testing.assert_array_equal(as_int, from_list)
    assert peer.settings.requests[-1].inputs["image"].dtype == 1  # DT_FLOAT on the wire


def test_unknown_layer_lists_layers_and_nearest(client: LayerClient, peer: Peer) -> None:
    with pytest.raises(LayerNotFoundError) as raised:
        client.predict_layer(X, "dense1")
    message = str(raised.value)
    assert "no layer 'dense1'" in message and "Nearest: dense_1, dense_2" in message and "scores" in message
    with pytest.raises(UsageError):
        client.predict(X, [])
    assert peer.count("Predict") == 0


@pytest.mark.parametrize("tensor_content", [False, True], ids=["typed", "tensor_content"])
def test_batch_splitting_reassembles_in_order(peer_target: str, peer: Peer, tensor_content: bool) -> None:
    peer.settings.tensor_content = tensor_content
    x = np.random.default_rng(0).normal(size=(23, 4)).astype(np.float32)
    with LayerClient(peer_target, MODEL, max_batch_size=5, max_concurrency=3) as client:
        out = client.predict(x, ["dense_1", "dense_2"])
    np.testing.assert_allclose(out["dense_1"], dense_1(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["dense_2"], dense_2(x), rtol=1e-5, atol=1e-5)
    sizes = sorted(r.inputs["image"].tensor_shape.dim[0].size for r in peer.settings.requests)
    assert sizes == [3, 5, 5, 5, 5]


def test_one_client_shared_by_many_threads(client: LayerClient, peer: Peer) -> None:
    rng = np.random.default_rng(1)
    batches = [rng.normal(size=(i + 1, 4)).astype(np.float32) for i in range(16)]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            results[index] = client.predict_layer(batches[index], "dense_1")
        except BaseException as error:  # collected, then asserted empty
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for index, batch in enumerate(batches):
        np.testing.assert_allclose(results[index], dense_1(batch), rtol=1e-5, atol=1e-6)
    assert peer.count("GetModelMetadata") == 1  # threads arriving together share one fetch
    assert peer.count("Predict") == 16


def test_results_are_arrays_usable_after_the_client_closes(peer_target: str, peer: Peer) -> None:
    with LayerClient(peer_target, MODEL) as client:
        out = client.predict_layer(X, "dense_1")
    assert float(out.sum()) == pytest.approx(float(dense_1(X).sum()), rel=1e-6)


def test_a_layer_with_several_output_tensors(client: LayerClient, peer: Peer) -> None:
    out = client.predict(X, ["split:1", "split:0"])
    np.testing.assert_allclose(out["split:0"], dense_1(X), rtol=1e-6)
    np.testing.assert_allclose(out["split:1"], dense_2(X), rtol=1e-6)
    assert peer.count("Predict") == 1 and list(peer.settings.requests[-1].output_filter) == []
    with pytest.raises(
        LayerNotFoundError, match="has 2 output tensors; ask for them by name: split:0, split:1"
    ):
        client.predict_layer(X, "split")


def test_each_signature_gets_only_the_inputs_it_takes(client: LayerClient, peer: Peer) -> None:
    a = np.ones((3, 2), np.float32)
    b = np.full((3, 2), 2.0, np.float32)
    out = client.predict({"image": X, "a": a, "b": b}, ["pair", "dense_1"])
    np.testing.assert_array_equal(out["pair"], a + b)
    np.testing.assert_allclose(out["dense_1"], dense_1(X), rtol=1e-6)
    sent = {r.model_spec.signature_name: sorted(r.inputs) for r in peer.settings.requests}
    assert sent == {"pair": ["a", "b"], "dense_1": ["image"]}


@pytest.mark.parametrize("limit", [1, 3])
def test_split_requests_run_concurrently_within_the_limit(peer_target: str, peer: Peer, limit: int) -> None:
    peer.settings.delay = 0.3  # long enough for the chunks to overlap on the server
    x = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
    with LayerClient(peer_target, MODEL, max_batch_size=1, max_concurrency=limit) as client:
        np.testing.assert_allclose(client.predict_layer(x, "dense_1"), dense_1(x), rtol=1e-5, atol=1e-6)
    assert peer.count("Predict") == 6
    assert peer.settings.most_in_flight == limit
