"""7. Heads: a raw layer, a float16 head and a gap head, served vs the same sub-model + head
in-process, with the reply bytes in both TF Serving encodings and the request's transport floor.

In-process is the Keras sub-model followed by the same head ops under one `tf.function`. A served
call must also move its request (the images), which in-process code does not: the floor is a bare
gRPC echo of the same request bytes with an 8-byte reply, measured in the same run.
"""

from __future__ import annotations

import contextlib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench import _models, _serving
from bench._harness import Report, Stats, measure, ms
from layertap.client import LayerClient
from layertap.exporter import export
from layertap.exporter.heads import HeadOp, apply_tf, parse_ops
from layertap.proto import methods
from layertap.proto import serving_pb2 as pb
from layertap.wire import codec

# What each signature adds after the layer: nothing, a float16 cast, a global average.
HEADS = {"raw": [], "float16": ["float16"], "gap": ["gap"]}


def run(quick: bool = False) -> Report:
    import grpc
    import keras

    report = Report("heads", "Heads: reply bytes and served vs in-process (sub-model + head)")
    if quick:
        model, layers, batch, label = _models.tutorial_cnn(), ["conv_2"], 2, "tutorial CNN"
        x = np.random.default_rng(0).random((batch, 28, 28, 1), dtype=np.float32)
    else:
        model, batch, label = _models.resnet50(), 8, "ResNet50"
        layers = ["conv2_block1_out", "conv4_block6_out"]
        x = np.random.default_rng(0).random((batch, 224, 224, 3), dtype=np.float32)
    repeat, warmup = (2, 1) if quick else (9, 2)

    def timed(fn: object) -> Stats:
        return measure(fn, repeat=repeat, warmup=warmup, min_time=0)  # type: ignore[arg-type]

    def key(layer: str, head: str) -> str:
        return layer if head == "raw" else f"{layer}_{head}"

    heads = {key(layer, head): (layer, ops) for layer in layers for head, ops in HEADS.items() if ops}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        result = export(model, layers, heads=heads, base_path=Path(tmp), name="heads")
        base = {"heads": result.path.parent}
        with contextlib.ExitStack() as stack:
            # Both servers start at once (each imports TensorFlow and loads the model). --quick (the CI
            # smoke test) starts only the tensor_content one and serves "typed" from it too.
            starting = [_serving.serving(base, extra_flags=("--enable_serialization_as_tensor_content",))]
            if not quick:
                starting.append(_serving.serving(base))
            with ThreadPoolExecutor(len(starting)) as pool:
                targets = list(pool.map(stack.enter_context, starting))
            content_target, typed_target = targets[0], targets[-1]
            if quick:
                report.notes.append("--quick: one server; the typed columns repeat the tensor_content ones")
            # A loaded 2-core machine can take seconds for a 25 MB reply: no 10 s default deadline.
            typed_client = stack.enter_context(LayerClient(typed_target, "heads", timeout=300))
            content_client = stack.enter_context(LayerClient(content_target, "heads", timeout=300))
            transport = stack.enter_context(_serving.echo_server())
            typed_channel = stack.enter_context(grpc.insecure_channel(typed_target, options=_UNLIMITED))
            content_channel = stack.enter_context(grpc.insecure_channel(content_target, options=_UNLIMITED))
            request_floor = timed(transport(x.nbytes, 8))
            for layer in layers:
                sub = keras.Model(model.inputs, model.get_layer(layer).output)
                for head, ops in HEADS.items():
                    signature = key(layer, head)
                    parsed = parse_ops(ops) if ops else ()
                    local_fn = _in_process(sub, parsed)
                    local = timed(lambda f=local_fn: f(x).numpy())
                    request = codec.encode_predict_request(
                        pb.ModelSpec(name="heads", signature_name=signature),
                        {next(iter(result.signatures[signature].inputs)): x},
                    )
                    typed_reply = typed_channel.unary_unary(methods.PREDICT)(request, timeout=300)
                    content_reply = content_channel.unary_unary(methods.PREDICT)(request, timeout=300)
                    output = local_fn(x)
                    rows.append(
                        {
                            "layer": layer,
                            "head": head,
                            "output": f"{output.dtype.name}{tuple(output.shape[1:])}",
                            "typed_reply_bytes": len(typed_reply),
                            "content_reply_bytes": len(content_reply),
                            "decode_typed_ms": ms(
                                timed(lambda r=typed_reply: codec.decode_predict_response(r)).median
                            ),
                            "decode_content_ms": ms(
                                timed(lambda r=content_reply: codec.decode_predict_response(r)).median
                            ),
                            "served_typed": timed(lambda c=typed_client, s=signature: c.predict(x, s)),
                            "served_content": timed(lambda c=content_client, s=signature: c.predict(x, s)),
                            "local": local,
                            "reply_floor": timed(transport(x.nbytes, len(content_reply))),
                        }
                    )
    _write(report, rows, label=label, batch=batch, layers=layers, request_floor=request_floor)
    return report


def _write(
    report: Report,
    rows: list[dict[str, Any]],
    *,
    label: str,
    batch: int,
    layers: list[str],
    request_floor: Stats,
) -> None:
    for row in rows:
        local, floor = row["local"], row["reply_floor"]
        served_typed, served_content = row["served_typed"], row["served_content"]
        report.row(
            model=label,
            batch=batch,
            layer=row["layer"],
            head=row["head"],
            output=row["output"],
            reply_bytes_tensor_content=row["content_reply_bytes"],
            reply_bytes_typed_fields=row["typed_reply_bytes"],
            decode_content_ms=row["decode_content_ms"],
            decode_typed_ms=row["decode_typed_ms"],
            served_content_ms=ms(served_content.median),
            served_content_spread_ms=f"{ms(served_content.p10)}-{ms(served_content.p90)}",
            served_typed_ms=ms(served_typed.median),
            in_process_ms=ms(local.median),
            request_floor_ms=ms(request_floor.median),
            request_and_reply_floor_ms=ms(floor.median),
            served_over_in_process=round(served_content.median / local.median, 3),
            served_over_in_process_plus_request=round(
                served_content.median / (local.median + request_floor.median), 3
            ),
        )
    by = {(row["layer"], row["head"]): row for row in rows}
    first = layers[0]
    gap = by[(first, "gap")]
    ratio = gap["served_content"].median / (gap["local"].median + request_floor.median)
    report.target(f"{first} gap head served / (in-process + request floor)", ratio, "<= 1.10", ratio <= 1.10)
    for layer in layers:
        raw, half = by[(layer, "raw")], by[(layer, "float16")]
        shrink = half["content_reply_bytes"] / raw["content_reply_bytes"]
        report.target(
            f"{layer} float16 / float32 reply bytes (tensor_content)", shrink, "<= 0.51", shrink <= 0.51
        )
        typed = half["typed_reply_bytes"] / raw["typed_reply_bytes"]
        report.target(
            f"{layer} float16 / float32 reply bytes (typed fields, half_val)", typed, "informational", True
        )
        faster = half["served_content"].median / raw["served_content"].median
        report.target(f"{layer} float16 head served / raw served (tensor_content)", faster, "< 1", faster < 1)


def _in_process(sub_model: object, ops: tuple[HeadOp, ...]) -> object:
    """The Keras sub-model followed by the head ops, as one tf.function (what a user would run)."""
    import tensorflow as tf

    def run(images: object) -> object:
        outputs = sub_model(images, training=False)  # type: ignore[operator]
        return apply_tf(outputs, None, ops) if ops else outputs

    return tf.function(run, autograph=False)


_UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
