"""Keras 2 layer configs Keras 3 reads differently: rewritten (or given a Keras 3 class) before loading;
and which Keras 2 SavedModel folders hold a model Keras 3 can rebuild at all.

Found by exporting tf_keras models Keras 3's legacy `.h5` reader refused or rebuilt wrongly:

- **`time_major`**: Keras 2's recurrent layers (`LSTM`, `GRU`, `SimpleRNN`, `RNN`, also inside
  `Bidirectional` and `TimeDistributed`) write `time_major` in their config
  (`tf_keras/src/layers/rnn/base_rnn.py`); Keras 3's are batch-major only and refuse the key
  ("Unrecognized keyword arguments passed to LSTM: {'time_major': False}"). `False` is Keras 3's only
  behaviour, so the key is dropped; a time-major layer is refused.
- **Keys inherited from a Keras 2 base class**: Keras 2's depthwise, separable and transposed
  convolutions (`DepthwiseConv2D`, `SeparableConv2D`, `Conv2DTranspose`...: MobileNet, EfficientNet,
  Xception) write every key of their Conv base: `groups: 1`, and for separable ones an unused
  `kernel_initializer`, `kernel_regularizer: None`, `kernel_constraint: None`. Keras 3's constructors refuse
  keys they do not take ("Unrecognized keyword arguments passed to SeparableConv2D: {'groups': 1}"). A
  key the Keras 3 class does not take is dropped when it cannot change what the layer computes: `None`,
  `groups: 1` (one group, what those layers do), an initializer (the weights come from the file). Any
  other is left for Keras 3 to refuse.
- **`BatchNormalization`'s `axis` as a list**: Keras 2 wrote it as given, so a list of one axis stays one
  (`[3]`, tf_keras's MobileNetV3); Keras 3's takes one int ("int() argument must be ... not 'list'"), so a
  list of one axis becomes that axis.
- **Layer names with `/`**: Keras 2 allowed them (tf_keras's MobileNetV3: `Conv/BatchNorm`,
  `expanded_conv/depthwise`); Keras 3 refuses them ("Argument `name` must be a string and cannot contain
  character `/`"), and layertap's layer specs use `/` for nested models. Each `/` becomes `_`
  (`Conv_BatchNorm`) everywhere the config names the layer; a renaming that would collide with another
  layer's name is refused.
- **Tensors passed by keyword** to a Keras layer (`MultiHeadAttention()(query, value=v)`): Keras 2 wrote
  them inside the node's keyword arguments as `[layer, node, tensor]` and resolved them when loading
  (`_deserialize_keras_tensors` in `tf_keras/src/engine/functional.py`); Keras 3's legacy reader passes the
  lists on as they are ("MultiHeadAttention.build() missing 1 required positional argument:
  'value_shape'"). Such a node is rewritten in Keras 3's own node format (`args`/`kwargs`, tensors as
  `__keras_tensor__` with their history), whose reader resolves tensors in keyword arguments too
  (`deserialize_node` in `keras/src/models/functional.py`).
- **Strings that name Keras layer functions**: Keras 3's legacy reader turns a config string into a
  function when one of that name is among its layer module's objects (`class_and_config_for_serialized_
  keras_object` in `keras/src/legacy/saving/serialization.py`), and the merge shortcuts `dot`, `add`,
  `concatenate`... are there: `Attention(score_mode="dot")` reached its constructor as `keras.layers.dot`
  ("Invalid value for argument score_mode"). Those names are given to the reader as custom objects
  that are themselves (a string is no function), so the strings stay strings.
- **`hard_sigmoid`**: Keras 2's is `clip(0.2 x + 0.5, 0, 1)` (`hard_sigmoid` in `tf_keras/src/backend.py`),
  Keras 3's `relu6(x + 3) / 6` (`keras/src/ops/nn.py`): the same name, another function, and Keras 2's
  `ConvLSTM2D` uses it by default as its `recurrent_activation`. Read as it is, such a model loads and
  verifies against itself but differs from Keras 2 (by 0.14 on a small ConvLSTM2D). Every activation key
  naming it is pointed at `keras2_hard_sigmoid`, Keras 2's function (the other activations Keras 2 and 3
  share compute the same values).
- **Lambda globals**: Keras 2 rebuilt a Lambda's bytecode with the globals of its own Lambda module, which
  imports `tf` and `np`, plus those of the module the function was defined in when it is imported
  (`Lambda._parse_function_config` in `tf_keras/src/layers/core/lambda_layer.py`). Keras 3 gives the
  function the globals of `keras/src/utils/python_utils.py`, where `tf` is not defined, so the common
  `Lambda(lambda x: tf.reduce_sum(x, ...))` fails when Keras 3 infers its output shape ("could not
  automatically infer the shape of the Lambda's output"). With `allow_unsafe`, Keras 2's Lambda layers
  load as `Keras2Lambda`, which gives the function Keras 2's globals.
- **Lookup layers** (`VOCABULARY_LAYERS`): their vocabulary is a table `.h5` cannot hold, so a folder
  holding one takes the SavedModel graph route as well (inner tensors, its tables rebuilt).
- **Subclassed models**: a Keras 2 SavedModel folder of a subclassed `tf_keras.Model` has no layer graph
  to rebuild (tf_keras itself cannot write it as `.h5`: "requires the model to be a Functional model or
  a Sequential model"). Its TensorFlow graph is complete, though, so such a folder takes the route of
  SavedModels without Keras (`sources/savedmodel_graph`): inner tensors, not layers.
"""

from __future__ import annotations

import base64
import logging
import marshal
import sys
import types
from collections.abc import Iterator
from typing import Any

from layertap.errors import UnsupportedModelError
from layertap.wire._protowire import LEN, UnhandledLayoutError, fields

__all__ = [
    "KERAS2_HARD_SIGMOID",
    "SUBCLASSED_IDENTIFIER",
    "VOCABULARY_LAYERS",
    "is_reference",
    "keras2_functions",
    "keyword_tensors_node",
    "lambda_classes",
    "literal_strings",
    "op_layer_node",
    "renamed_layers",
    "rewrite_layer",
    "root_identifier",
]

logger = logging.getLogger(__name__)

#: tf_keras layers whose vocabulary lives in a lookup table, not in variables: `.h5` cannot save them
#: ("Save or restore weights that is not an instance of `tf.Variable` is not supported in h5"), so a
#: Keras 2 folder holding one takes the SavedModel graph route, which rebuilds its tables.
VOCABULARY_LAYERS = ("TextVectorization", "StringLookup", "IntegerLookup")

#: The identifier tf_keras gives a subclassed model's node in `keras_metadata.pb` (Functional models are
#: `_tf_keras_network`, Sequential ones `_tf_keras_sequential`: `tf_keras/src/saving/legacy/saved_model/
#: constants.py`).
SUBCLASSED_IDENTIFIER = "_tf_keras_model"


def root_identifier(metadata: bytes) -> str:
    """The identifier of the first node (the saved model itself) of a `keras_metadata.pb`, read without
    tf_keras: a `SavedMetadata` message whose field 1 repeats `SavedObject`s, where field 4 is the
    identifier (`tf_keras/src/protobuf/saved_metadata.proto`). "" when the bytes do not parse so."""
    node = _first_bytes_field(metadata, 1)
    identifier = _first_bytes_field(node, 4) if node is not None else None
    return identifier.decode("utf-8", "replace") if identifier else ""


def _first_bytes_field(message: bytes, number: int) -> bytes | None:
    """The first length-delimited field `number` of a protobuf message, or None (absent, or the bytes
    stop parsing before it)."""
    try:
        for field, wire_type, start, end in fields(message, 0, len(message)):
            if field == number and wire_type == LEN:
                return message[start:end]
    except UnhandledLayoutError:
        return None
    return None


def renamed_layers(config: dict[str, Any], *, shown: str) -> dict[str, Any]:
    """The model config with every layer name holding `/` renamed (`/` -> `_`), references included.

    Raises:
        UnsupportedModelError: a new name is already another layer's.
    """
    names = {str(layer["config"]["name"]) for layer in _named_layers(config)}
    renames = {name: name.replace("/", "_") for name in names if "/" in name}
    clashes = sorted(old for old, new in renames.items() if new in names)
    if clashes:
        raise UnsupportedModelError(
            f"{shown}: layer names with '/' ({', '.join(clashes[:5])}), which Keras 3 refuses, cannot become "
            "'_' names: another layer has the new name; rename the layers in Keras 2 and save the model again"
        )
    if renames:
        logger.info(
            "Keras 2 layer names with '/' renamed for Keras 3: %s",
            ", ".join(f"{a} -> {b}" for a, b in sorted(renames.items())[:10]),
        )
    return _replace_strings(config, renames) if renames else config


def _named_layers(config: Any) -> Iterator[dict[str, Any]]:
    """The layer entries of a model config (`{"class_name", "config": {"name"...}}` in a `layers` list),
    nested models' too."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    for layer in layers if isinstance(layers, list) else ():
        if isinstance(layer, dict) and isinstance(layer.get("config"), dict) and "name" in layer["config"]:
            yield layer
            yield from _named_layers(layer)


def _replace_strings(value: Any, renames: dict[str, str]) -> Any:
    """`value` with every string equal to a key of `renames` replaced (names and node references alike)."""
    if isinstance(value, str):
        return renames.get(value, value)
    if isinstance(value, list):
        return [_replace_strings(item, renames) for item in value]
    if isinstance(value, dict):
        return {key: _replace_strings(item, renames) for key, item in value.items()}
    return value


def rewrite_layer(layer: dict[str, Any], *, shown: str) -> None:
    """Rewrite one layer config (in place) into what Keras 3 reads the same way (module docstring)."""
    config = layer.get("config")
    if not isinstance(config, dict):
        return
    for key in _inert_unknown_keys(str(layer.get("class_name")), config):
        del config[key]
    for key, value in config.items():
        if (key == "activation" or key.endswith("_activation")) and value == "hard_sigmoid":
            config[key] = KERAS2_HARD_SIGMOID
    axis = config.get("axis")
    if layer.get("class_name") == "BatchNormalization" and isinstance(axis, list) and len(axis) == 1:
        config["axis"] = axis[0]
    if "time_major" not in config:
        return
    if config["time_major"]:
        raise UnsupportedModelError(
            f"{shown}: layer {config.get('name')!r} ({layer.get('class_name')}) is time-major "
            "(time_major=True), which Keras 3's recurrent layers do not offer; rebuild it batch-major "
            "(transpose the input) and save the model again"
        )
    del config["time_major"]


def _inert_unknown_keys(class_name: str, config: dict[str, Any]) -> list[str]:
    """The keys of `config` Keras 3's layer `class_name` does not take and whose values cannot change what
    it computes (module docstring). Empty for a class Keras 3 does not have: its config is not Keras 3's."""
    import inspect

    import keras

    found = getattr(keras.layers, class_name, None)
    if not isinstance(found, type) or not issubclass(found, keras.layers.Layer):
        return []
    # Over the class's bases too: a subclass may pass a key on to its base through **kwargs.
    taken = set(_LAYER_KEYWORDS)
    for base in found.__mro__:
        if isinstance(base, type) and issubclass(base, keras.layers.Layer) and "__init__" in vars(base):
            taken |= set(inspect.signature(vars(base)["__init__"]).parameters)
    return [
        key
        for key, value in config.items()
        if key not in taken
        and (
            value is None
            or (key == "groups" and value == 1)
            or key.endswith("_initializer")
            or key in _REBUILT_KEYS
        )
    ]


# Keys Keras 2's MultiHeadAttention writes (tf_keras/src/layers/attention/multi_head_attention.py) that
# Keras 3's does not take. The shapes are those it was built with: Keras 3 builds it from the tensors it
# is called on in the rebuilt graph, the same ones. `softmax_robust_masking`: Keras 3's Softmax always
# masks the robust way (masked scores set to -1e9, keras/src/layers/activations/softmax.py); Keras 2's
# default added -1e9 to them instead, which gives the same weights unless every key of a query is masked.
_REBUILT_KEYS = frozenset({"query_shape", "key_shape", "value_shape", "softmax_robust_masking"})


# What Keras 3's Layer base takes through **kwargs (keras/src/layers/layer.py), besides its own parameters.
_LAYER_KEYWORDS = frozenset(
    {"name", "trainable", "dtype", "autocast", "activity_regularizer", "input_shape", "batch_input_shape",
     "batch_size", "input_dim", "weights"}
)  # fmt: skip


def is_reference(value: Any) -> bool:
    """A Keras 2 legacy tensor reference: `[layer name, node index, tensor index]`."""
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and all(isinstance(index, int) for index in value[1:])
    )


def keyword_tensors_node(node: Any) -> Any:
    """A legacy node (`[[layer, node, tensor, kwargs], ...]`) whose keyword arguments hold tensor references,
    in Keras 3's node format (module docstring); any other node as it is."""
    if not isinstance(node, list) or not node or not all(isinstance(entry, list) for entry in node):
        return node
    kwargs = node[-1][3] if len(node[-1]) == 4 and isinstance(node[-1][3], dict) else {}
    if not any(_holds_reference(value) for value in kwargs.values()):
        return node
    inputs = [_keras_tensor(entry[:3]) for entry in node]
    # Keras 3 calls a legacy node with one argument: the tensor, or the list of them.
    return {"args": [inputs[0] if len(inputs) == 1 else inputs], "kwargs": _revived(kwargs)}


def op_layer_node(node: Any) -> Any:
    """A Keras 2 TF-op layer's legacy node in Keras 3's node format: its first argument (one tensor,
    written as one entry, or a list of them, written as a list of entries: `tf.concat([a, b])`) as the
    one positional argument, its other arguments as keyword arguments, tensors among them included."""
    if not isinstance(node, list) or not node:
        return node  # Keras 3's own format already
    single = isinstance(node[0], str)
    entries = [node] if single else node
    kwargs = entries[-1][3] if len(entries[-1]) == 4 else {}
    first = [_keras_tensor(entry[:3]) for entry in entries]
    return {
        "args": [first[0] if single else first],
        "kwargs": _revived({key: value for key, value in kwargs.items() if key != "name"}),
    }


def _holds_reference(value: Any) -> bool:
    if is_reference(value):
        return True
    if isinstance(value, list):
        return any(_holds_reference(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_reference(item) for item in value.values())
    return False


def _revived(value: Any) -> Any:
    if is_reference(value):
        return _keras_tensor(value)
    if isinstance(value, list):
        return [_revived(item) for item in value]
    if isinstance(value, dict):
        return {key: _revived(item) for key, item in value.items()}
    return value


def _keras_tensor(reference: list[Any]) -> dict[str, Any]:
    """Keras 3's serialized KerasTensor: only its history is read, the reader swaps in the real tensor
    (shape and dtype here are placeholders)."""
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": [], "dtype": "float32", "keras_history": reference},
    }


def literal_strings(config: Any) -> dict[str, str]:
    """Custom objects that keep every string of `config` naming a function of `keras.layers` (`dot`,
    `add`...) a string when Keras 3's legacy reader reads it (module docstring)."""
    import inspect

    import keras

    functions = {name for name, value in vars(keras.layers).items() if inspect.isfunction(value)}
    return {name: name for name in _strings(config) & functions}


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return set().union(*(_strings(item) for item in items))


#: The custom object Keras 2's `hard_sigmoid` becomes (module docstring).
KERAS2_HARD_SIGMOID = "keras2_hard_sigmoid"
_FUNCTIONS: dict[str, Any] = {}


def keras2_functions() -> dict[str, Any]:
    """`{"keras2_hard_sigmoid": function}`: custom objects for the activations `rewrite_layer` renames."""
    if _FUNCTIONS:
        return _FUNCTIONS
    import keras

    def keras2_hard_sigmoid(x: Any) -> Any:
        """Keras 2's hard sigmoid: `clip(0.2 x + 0.5, 0, 1)`."""
        return keras.ops.clip(x * 0.2 + 0.5, 0.0, 1.0)

    # Registered, so a converted model's config names it and can be serialized again.
    register = keras.saving.register_keras_serializable(package="layertap", name=KERAS2_HARD_SIGMOID)
    _FUNCTIONS[KERAS2_HARD_SIGMOID] = register(keras2_hard_sigmoid)
    return _FUNCTIONS


_CLASSES: dict[str, type] = {}


def lambda_classes() -> dict[str, type]:
    """`{"Lambda": Keras2Lambda}`, custom objects for a Keras 2 file whose Lambda code may run."""
    if _CLASSES:
        return _CLASSES
    import keras

    @keras.saving.register_keras_serializable(package="layertap", name="Keras2Lambda")
    class Keras2Lambda(keras.layers.Lambda):  # type: ignore[misc]
        """A Keras 2 Lambda layer whose function runs with the globals Keras 2 gave it."""

        @classmethod
        def from_config(
            cls, config: dict[str, Any], custom_objects: Any = None, safe_mode: Any = None
        ) -> Any:
            config = dict(config)
            module = config.pop("module", None)
            output_module = config.pop("output_shape_module", None)
            config.pop("function_type", None)
            config.pop("output_shape_type", None)
            config["function"] = _function(config["function"], module)
            shape = config.get("output_shape")
            if _is_code(shape):
                config["output_shape"] = _function(shape, output_module)
            elif isinstance(shape, list):
                config["output_shape"] = tuple(shape)
            return cls(**config)

    _CLASSES["Lambda"] = Keras2Lambda
    return _CLASSES


def _is_code(value: Any) -> bool:
    """A serialized function: Keras 2's `[code, defaults, closure]`, or Keras 3's `__lambda__` dict."""
    if isinstance(value, dict):
        return value.get("class_name") == "__lambda__"
    return isinstance(value, list | tuple) and len(value) == 3 and isinstance(value[0], str)


def _function(value: Any, module: Any) -> Any:
    """The function a Lambda config holds, with Keras 2's globals (`tf`, `np`, its module's names)."""
    if not _is_code(value):
        return value  # a registered function's name: Keras resolves it
    if isinstance(value, dict):
        inner = value["config"]
        code, defaults, closure = inner["code"], inner.get("defaults"), inner.get("closure")
    else:
        code, defaults, closure = value
    import numpy as np
    import tensorflow as tf

    scope: dict[str, Any] = {"__builtins__": __builtins__, "tf": tf, "np": np}
    if isinstance(module, str) and module in sys.modules:
        scope.update(vars(sys.modules[module]))
    compiled = marshal.loads(base64.b64decode(code.encode("ascii")))
    cells = tuple(types.CellType(item) for item in closure) if closure else None
    return types.FunctionType(compiled, scope, compiled.co_name, tuple(defaults) if defaults else None, cells)
