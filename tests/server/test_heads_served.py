"""Every head op, end to end: exported, run through the session loader, served by `layertap serve`,
fetched with `layertap.client` and with the official stubs, equal to an independent numpy reference.

Image ops run on the tutorial CNN, sequence ops on an Embedding(mask_zero) + LSTM over padded
tokens, where the mask the reference uses is computed from the tokens themselves (token != 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from layertap.client import LayerClient
from layertap.server import ServerOptions, create_server
from tests.guarantees import import_or_skip

# name -> (layer, ops): every op on image outputs...
IMAGE_HEADS = {
    "gap": ("conv_2", ["gap"]),
    "gmp": ("conv_1", ["gmp"]),
    "grid2": ("pool_1", ["avgpool=2"]),
    "grid3": ("conv_2", ["avgpool=3"]),
    "unit": ("flatten", ["l2"]),
    "short": ("flatten", ["dims=16", "l2"]),
    "gap16": ("conv_2", ["gap", "float16"]),
    "map_bf16": ("pool_2", ["bfloat16"]),
    "unit_bf16": ("conv_2", ["gap", "l2", "bfloat16"]),
}
# ...and on sequence outputs (padded tokens with a Keras mask).
SEQUENCE_HEADS = {
    "mean": ("lstm", ["mean"]),
    "first": ("embed", ["first"]),
    "last": ("lstm", ["last"]),
    "mean_l2": ("lstm", ["mean", "l2"]),
    "mean16": ("embed", ["mean", "float16"]),
    "gmp_seq": ("lstm", ["gmp"]),
    "gap_seq": ("embed", ["gap"]),
    "dims_seq": ("embed", ["dims=3", "mean"]),
}
TOKENS = np.array([[3, 7, 9, 0, 0, 0], [5, 0, 0, 0, 0, 0], [2, 4, 6, 8, 1, 3]], dtype=np.int32)


def _bins(size: int, k: int) -> list[slice]:
    return [slice(int(np.floor(i * size / k)), int(np.ceil((i + 1) * size / k))) for i in range(k)]


def reference(raw: np.ndarray, mask: np.ndarray | None, ops: list[str]) -> np.ndarray:
    """The head ops in plain numpy, written apart from layertap's own implementation."""
    import ml_dtypes

    x = raw.astype(np.float64)
    out_dtype: Any = raw.dtype
    for op in ops:
        name, _, argument = op.partition("=")
        if name == "gap":
            x = x.reshape(x.shape[0], -1, x.shape[-1]).mean(axis=1)
        elif name == "gmp":
            x = x.reshape(x.shape[0], -1, x.shape[-1]).max(axis=1)
        elif name == "mean":
            weights = np.ones(x.shape[:2]) if mask is None else mask.astype(np.float64)
            x = (x * weights[..., None]).sum(axis=1) / np.maximum(weights.sum(axis=1, keepdims=True), 1)
        elif name == "first":
            x = x[:, 0, :]
        elif name == "last":
            lengths = mask.sum(axis=1) if mask is not None else np.full(len(x), x.shape[1])
            x = np.stack(
                [x[row, length - 1] if length else 0 * x[row, 0] for row, length in enumerate(lengths)]
            )
        elif name == "avgpool":
            k = int(argument)
            x = np.stack(
                [
                    np.stack([x[:, h, w, :].mean(axis=(1, 2)) for w in _bins(x.shape[2], k)], 1)
                    for h in _bins(x.shape[1], k)
                ],
                1,
            )
        elif name == "dims":
            x = x[..., : int(argument)]
        elif name == "l2":
            x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)
        elif name == "float16":
            out_dtype = np.float16
        elif name == "bfloat16":
            out_dtype = ml_dtypes.bfloat16
        if name not in ("dims", "l2", "float16", "bfloat16"):
            mask = None  # the time axis is gone
    return x.astype(out_dtype)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    tolerance = 1e-2 if want.dtype.itemsize == 2 else 1e-5
    scale = max(float(np.max(np.abs(want.astype(np.float64)))), 1e-12)
    assert float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) <= tolerance * scale


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    import keras

    from layertap.demo.tutorial_cnn import build_tutorial_cnn

    keras.utils.set_random_seed(21)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    embedded = keras.layers.Embedding(12, 6, mask_zero=True, name="embed")(tokens)
    states = keras.layers.LSTM(5, return_sequences=True, name="lstm")(embedded)
    text = keras.Model(tokens, keras.layers.GlobalAveragePooling1D(name="pool")(states), name="text")
    return {"images": build_tutorial_cnn(), "text": text}


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    from layertap.demo.tutorial_cnn import synthetic_digits

    images, _ = synthetic_digits(3, seed=5)
    return {"images": images.astype(np.float32), "text": TOKENS}


@pytest.fixture(scope="module")
def expected(models: dict[str, Any], inputs: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The Keras layer output, then the head ops in numpy (mask from the tokens: token != 0)."""
    import keras

    answers: dict[str, dict[str, np.ndarray]] = {}
    for model_name, heads in (("images", IMAGE_HEADS), ("text", SEQUENCE_HEADS)):
        model = models[model_name]
        mask = inputs["text"] != 0 if model_name == "text" else None
        answers[model_name] = {}
        for head, (layer, ops) in heads.items():
            sub = keras.Model(model.inputs, model.get_layer(layer).output)
            raw = np.asarray(sub([inputs[model_name]], training=False))
            answers[model_name][head] = reference(raw, mask, ops)
    return answers


@pytest.fixture(scope="module")
def repository(models: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from layertap.exporter import export

    base = tmp_path_factory.mktemp("heads")
    export(
        models["images"],
        [],
        heads=IMAGE_HEADS,
        groups={"pair": ["gap", "gmp"]},
        base_path=base,
        name="images",
    )
    export(models["text"], ["lstm"], heads=SEQUENCE_HEADS, base_path=base, name="text")
    config = base / "models.config"
    config.write_text(
        "model_config_list {\n"
        + "".join(
            f'  config {{ name: "{name}" base_path: "{base / name}" model_platform: "tensorflow" }}\n'
            for name in ("images", "text")
        )
        + "}\n"
    )
    return base


def _serve(repository: Path, **flags: Any) -> Iterator[str]:
    options = ServerOptions(
        port=0, model_config_file=str(repository / "models.config"), grpc_max_threads=4, **flags
    )
    server, port = create_server(options)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=1.0)


@pytest.fixture(scope="module")
def served(repository: Path) -> Iterator[str]:
    """`layertap serve` in TF Serving's default encoding (typed fields: float16 as half_val)."""
    yield from _serve(repository)


def test_session_loader_matches_reference(
    repository: Path, inputs: dict[str, np.ndarray], expected: dict[str, dict[str, np.ndarray]]
) -> None:
    import tensorflow as tf

    for model_name, answers in expected.items():
        with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
            meta_graph = tf.compat.v1.saved_model.loader.load(
                session, ["serve"], str(repository / model_name / "1")
            )
            for head, want in answers.items():
                definition = meta_graph.signature_def[head]
                assert list(definition.outputs) == [head]
                (alias,) = definition.inputs
                got = session.run(
                    definition.outputs[head].name, {definition.inputs[alias].name: inputs[model_name]}
                )
                assert_close(np.asarray(got), want)


def test_layertap_client_matches_reference(
    served: str, inputs: dict[str, np.ndarray], expected: dict[str, dict[str, np.ndarray]]
) -> None:
    for model_name, answers in expected.items():
        with LayerClient(served, model_name) as client:
            catalogue = client.layers()
            for head, want in answers.items():
                output = catalogue.layer(head).output
                assert output.dtype == want.dtype.name
                # Every head reduces the token axis, so only the batch dimension is free.
                assert output.shape == (None, *want.shape[1:]), head
                assert_close(client.predict_layer(inputs[model_name], head), want)
        if model_name == "images":
            with LayerClient(served, model_name) as client:
                pair = client.predict(inputs[model_name], ["gap", "gmp"])
                assert_close(pair["gap"], answers["gap"])
                assert_close(pair["gmp"], answers["gmp"])


def test_official_stubs_match_reference(
    served: str, inputs: dict[str, np.ndarray], expected: dict[str, dict[str, np.ndarray]]
) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(served) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for model_name, answers in expected.items():
            alias = "tokens" if model_name == "text" else "image"
            for head, want in answers.items():
                request = predict_pb2.PredictRequest()
                request.model_spec.name = model_name
                request.model_spec.signature_name = head
                request.inputs[alias].CopyFrom(tf.make_tensor_proto(inputs[model_name]))
                response = stub.Predict(request, timeout=30)
                tensor = response.outputs[head]
                if want.dtype.itemsize == 2:
                    # TF Serving's default encoding: 16-bit floats travel as half_val, not tensor_content.
                    assert not tensor.tensor_content and len(tensor.half_val) == want.size
                assert_close(tf.make_ndarray(tensor), want)


def test_tensor_content_encoding_halves_the_reply(
    repository: Path, served: str, inputs: dict[str, np.ndarray], expected: dict[str, dict[str, np.ndarray]]
) -> None:
    from layertap.proto import serving_pb2 as pb
    from layertap.wire import codec

    for compact in _serve(repository, enable_serialization_as_tensor_content=True):
        sizes: dict[tuple[str, str], int] = {}
        for target, encoding in ((served, "typed"), (compact, "content")):
            with grpc.insecure_channel(target) as channel:
                call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
                for head in ("map_bf16", "grid2"):
                    spec = pb.ModelSpec(name="images", signature_name=head)
                    request = codec.encode_predict_request(spec, {"image": inputs["images"]})
                    reply = call(request, timeout=30)
                    sizes[(head, encoding)] = len(reply)
                    (got,) = codec.decode_predict_response(reply).outputs.values()
                    assert_close(got, expected["images"][head])
            with LayerClient(target, "images") as client:
                assert_close(
                    client.predict_layer(inputs["images"], "map_bf16"), expected["images"]["map_bf16"]
                )
        # 16-bit content is exactly 2 bytes an element; half_val spends a varint of 1 to 3 bytes on
        # each (1 for a zero, so which is smaller depends on the values: BENCHMARKS.md has numbers).
        elements = expected["images"]["map_bf16"].size
        assert 2 * elements < sizes[("map_bf16", "content")] < 2 * elements + 200
        assert sizes[("map_bf16", "typed")] > elements
        assert sizes[("grid2", "content")] < 4 * expected["images"]["grid2"].size + 200


class CountPredicts(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.count = 0

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.count += details.method.endswith("/Predict")
        return continuation(details, request)


def test_reply_byte_budget_chooses_chunk_sizes(
    served: str, inputs: dict[str, np.ndarray], expected: dict[str, dict[str, np.ndarray]]
) -> None:
    from layertap.errors import InvalidInputError

    # pool_2 as bfloat16 is 5*5*64 elements; on the wire at most 3 bytes each (a half_val varint).
    per_example = 5 * 5 * 64 * 3
    images = np.concatenate([inputs["images"]] * 3)  # 9 examples
    want = np.concatenate([expected["images"]["map_bf16"]] * 3)
    for budget, calls in ((per_example, 9), (2 * per_example + 1, 5), (9 * per_example, 1)):
        counter = CountPredicts()
        with grpc.insecure_channel(served) as plain:
            channel = grpc.intercept_channel(plain, counter)
            with LayerClient(served, "images", channel=channel, max_reply_bytes=budget) as client:
                assert_close(client.predict_layer(images, "map_bf16"), want)
        assert counter.count == calls, (budget, counter.count)
    with LayerClient(served, "images", max_reply_bytes=4 * per_example, max_batch_size=2) as client:
        assert_close(client.predict_layer(images, "map_bf16"), want)  # the smaller limit wins
    refusal = r"one example of map_bf16 .* up to 4,800 bytes.*--head"
    with (
        LayerClient(served, "images", max_reply_bytes=1000) as client,
        pytest.raises(InvalidInputError, match=refusal),
    ):
        client.predict_layer(images, "map_bf16")


# ---- keras.applications and keras_hub backbones (slow): the same checks, one helper.

# Two heads keep the ResNet50 export cheap (each signature traces the prefix again) and between them
# hold every image op (all are on the tutorial CNN above too).
RESNET_HEADS = {
    "early": ("conv2_block1_out", ["avgpool=3", "gmp", "float16"]),
    "late": ("conv4_block6_out", ["gap", "dims=64", "l2", "bfloat16"]),
}
BERT_HEADS = {
    "cls": ("transformer_layer_1", ["first"]),
    "cls_unit": ("transformer_layer_1", ["first", "l2", "float16"]),
    "mean": ("transformer_layer_1", ["mean=padding_mask"]),
    "last": ("embeddings_layer_norm", ["last=padding_mask", "bfloat16"]),
}


def _check_everywhere(
    model: Any,
    heads: dict[str, tuple[str, list[str]]],
    feeds: dict[str, np.ndarray],
    mask: np.ndarray | None,
    tmp: Path,
) -> None:
    """Export `heads`, then compare the session loader, layertap.client and the official stubs on
    `layertap serve` with the Keras layer output + the numpy reference."""
    import keras
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from layertap.exporter import export

    result = export(model, [], heads=heads, base_path=tmp, name="app")
    # An input is known by its InputLayer's name (what the signature calls it).
    ordered = [feeds[tensor._keras_history.operation.name] for tensor in model.inputs]
    expected = {}
    for head, (layer, ops) in heads.items():
        raw = np.asarray(keras.Model(model.inputs, model.get_layer(layer).output)(ordered, training=False))
        expected[head] = reference(raw, mask, ops)
        want = expected[head]
        assert result.signatures[head].outputs == {head: ((None, *want.shape[1:]), want.dtype.name)}
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(result.path))
        for head, want in expected.items():
            definition = meta_graph.signature_def[head]
            feed = {definition.inputs[alias].name: feeds[alias] for alias in definition.inputs}
            assert_close(np.asarray(session.run(definition.outputs[head].name, feed)), want)
    config = tmp / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "app" base_path: "{tmp / "app"}" '
        f'model_platform: "tensorflow" }} }}\n'
    )
    for target in _serve(tmp):
        with LayerClient(target, "app") as client:
            for head, want in expected.items():
                needed = client.layers().layer(head).inputs
                assert_close(client.predict_layer({alias: feeds[alias] for alias in needed}, head), want)
        with grpc.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for head, want in expected.items():
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "app"
                request.model_spec.signature_name = head
                for alias in result.signatures[head].inputs:
                    request.inputs[alias].CopyFrom(tf.make_tensor_proto(feeds[alias]))
                assert_close(tf.make_ndarray(stub.Predict(request, timeout=60).outputs[head]), want)


@pytest.mark.slow
def test_resnet50_heads_everywhere(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(3)
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3))
    images = np.random.default_rng(4).uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
    _check_everywhere(model, RESNET_HEADS, {model.layers[0].name: images}, None, tmp_path)


@pytest.mark.slow
def test_bert_backbone_heads_everywhere(tmp_path: Path) -> None:
    keras_hub = import_or_skip("keras_hub")
    import keras

    keras.utils.set_random_seed(8)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=50,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=12,
    )
    padding = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]], dtype=np.int32)
    feeds = {
        "token_ids": np.array([[2, 7, 9, 0, 0, 0], [4, 5, 6, 7, 8, 9], [3, 0, 0, 0, 0, 0]], dtype=np.int32),
        "segment_ids": np.zeros((3, 6), dtype=np.int32),
        "padding_mask": padding,
    }
    _check_everywhere(backbone, BERT_HEADS, feeds, padding.astype(bool), tmp_path)


def test_rest_serves_float32_heads_and_refuses_half_ones(
    repository: Path, inputs: dict[str, np.ndarray], expected: dict[str, dict[str, np.ndarray]]
) -> None:
    """As TF Serving's JSON writer: a float32 head answers; float16/bfloat16 heads are refused
    (`Failed to write JSON value for tensor type`), so REST users export float32 heads."""
    import json
    import socket
    import urllib.error
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])

    def predict(head: str) -> tuple[int, Any]:
        body = json.dumps({"signature_name": head, "instances": inputs["images"].tolist()}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/images:predict", data=body)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    for _ in _serve(repository, rest_api_port=port):
        status, answer = predict("gap")
        assert status == 200
        assert_close(np.asarray(answer["predictions"], dtype=np.float32), expected["images"]["gap"])
        assert predict("gap16") == (400, {"error": "Failed to write JSON value for tensor type: half"})
        assert predict("map_bf16") == (400, {"error": "Failed to write JSON value for tensor type: bfloat16"})
