"""Heads: small reductions applied to a layer's output inside its signature, on the server.

A head is a layer spec followed by ops, applied in order: `conv2_block1_out:gap,float16` is the
global average of that feature map, cast to half. The batch dimension is always kept (TF Serving's
batching needs dim 0 = batch on every output: tensorflow_serving/batching/batching_session.cc).

The ops are declared once, in `layertap.exporter.heads.registry` (`HEAD_OPS`): what each does, what it
accepts, and its two implementations. `last`, `dims` and `mean=INPUT` are there because they are what an
embeddings user asks for next: causal and recurrent encoders summarise a sequence in its last real token,
not its first, Matryoshka-trained embedding models are meant to be cut to fewer dimensions before
normalising, and transformer backbones take their padding as an input rather than as a Keras mask.

Every op is implemented twice, on purpose: `apply_tf` is what the signature computes, `apply_numpy`
is the independent reference verification compares it with.
"""

from __future__ import annotations

from layertap.exporter.heads.plan import (
    OPS,
    Head,
    HeadOp,
    apply_numpy,
    apply_tf,
    bytes_per_example,
    check_head_name,
    fitting_ops,
    keras_mask,
    parse_head,
    parse_ops,
    plan_head,
)
from layertap.exporter.heads.registry import HEAD_OPS, HeadOpDefinition

__all__ = [
    "HEAD_OPS",
    "OPS",
    "Head",
    "HeadOp",
    "HeadOpDefinition",
    "apply_numpy",
    "apply_tf",
    "bytes_per_example",
    "check_head_name",
    "fitting_ops",
    "keras_mask",
    "parse_head",
    "parse_ops",
    "plan_head",
]
