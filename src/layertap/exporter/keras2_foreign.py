"""Keras 2 layer classes Keras 3 does not have, run by tf_keras inside a Keras 3 layer.

A Keras 2 file names each layer's class in its config. Keras 3 resolves the name among its own layers and
the classes registered with it; a class only tf_keras knows fails there ("Could not locate class
'LayerScale'"). Such classes are of three kinds, all found with tf_keras installed (the `keras2` extra):

- classes registered with tf_keras (`@tf_keras.saving.register_keras_serializable`), e.g. a user's Keras 2
  layers imported with `--custom-objects`;
- tf_keras built-in layers Keras 3 dropped (`tf_keras.layers.LocallyConnected2D`, `ThresholdedReLU`...);
- helper layers tf_keras's own applications define and never register: ConvNeXt's `LayerScale` and
  `StochasticDepth` (`tf_keras/src/applications/convnext.py`). tf_keras itself cannot load such an `.h5`
  ("Unknown layer: 'LayerScale'"; only a SavedModel folder revives them, from its traced functions), so they
  are looked up by name among the classes tf_keras has loaded, which `import tf_keras` brings in: a unique
  subclass of `tf_keras.layers.Layer` defined in a `tf_keras` module. No module is imported for it.

Each such layer becomes a `layertap>Keras2Layer`: a Keras 3 layer with the same name that builds the
tf_keras layer from its config and calls it, so the computation is tf_keras's own code (exact). Its weights
must be Keras 3 variables, so that Keras 3's `.h5` reader fills them and the export saves them: the tf_keras
layer is built inside a variable creator that makes each `tf.Variable` it asks for through the Keras 3
layer's `add_weight` and hands back that variable's `tf.Variable`, in tf_keras's order (the order the `.h5`
file lists them). A layer that creates weights outside `build()` (in its first call) is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from layertap.errors import UnsupportedModelError

__all__ = ["foreign_classes", "keras3_knows"]

# Classes the legacy `.h5` reader resolves by itself, or that the conversion maps (`keras2`).
_HANDLED = frozenset({"Functional", "Model", "Sequential", "TFOpLambda", "SlicingOpLambda", "Lambda"})


def keras3_knows(class_name: str) -> bool:
    """Whether Keras 3 resolves a layer config's `class_name` (its layers, or a class registered with it)."""
    import keras

    return (
        class_name in _HANDLED
        or isinstance(getattr(keras.layers, class_name, None), type)
        or keras.saving.get_registered_object(class_name) is not None
    )


def foreign_classes(config: dict[str, Any], *, shown: str) -> dict[str, Any]:
    """Custom objects for the layer classes of a model config (nested models' too) that only tf_keras
    has: class name -> a factory of `Keras2Layer`. Empty when Keras 3 knows every class (tf_keras is then
    not imported).

    Raises:
        UnsupportedModelError: a class neither Keras 3 nor tf_keras knows, or tf_keras is not installed.
    """
    missing = sorted({name for name in _class_names(config) if not keras3_knows(name)})
    if not missing:
        return {}
    return {name: _factory(name, _keras2_class(name, shown=shown)) for name in missing}


def _class_names(config: Any) -> Iterator[str]:
    """The class names of a model config's layers, and of its nested models' layers."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    for layer in layers if isinstance(layers, list) else ():
        if isinstance(layer, dict) and "class_name" in layer:
            yield str(layer["class_name"])
            yield from _class_names(layer)


def _keras2_class(name: str, *, shown: str) -> type:
    """The tf_keras class a Keras 2 config names (registered, built in, or defined by tf_keras itself)."""
    hint = (
        "pass the module or file that defines it with --custom-objects MODULE_OR_FILE.py "
        "(custom_objects=[...]), registered with @keras.saving.register_keras_serializable() or tf_keras's"
    )
    try:
        import tf_keras
    except ModuleNotFoundError:
        raise UnsupportedModelError(
            f"{shown} needs the layer class {name!r}, which Keras 3 does not have; install tf_keras (pip "
            f"install 'layertap[keras2]') if it is a tf_keras class, or {hint}"
        ) from None
    found = tf_keras.saving.get_registered_object(name) or getattr(tf_keras.layers, name, None)
    if not (isinstance(found, type) and issubclass(found, tf_keras.layers.Layer)):
        defined = {
            candidate
            for candidate in _module_classes(name)
            if issubclass(candidate, tf_keras.layers.Layer) and candidate.__module__.startswith("tf_keras.")
        }
        if len(defined) != 1:
            raise UnsupportedModelError(
                f"{shown} needs the layer class {name!r}, which neither Keras 3 nor tf_keras "
                f"{tf_keras.__version__} has"
                + (f" ({len(defined)} tf_keras classes share the name)" if defined else "")
                + f"; {hint}"
            )
        (found,) = defined
    return found


def _module_classes(name: str) -> Iterator[type]:
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("tf_keras.") and module is not None:
            candidate = getattr(module, name, None)
            if isinstance(candidate, type) and candidate.__module__ == module_name:
                yield candidate


class _Held:
    """Holds the tf_keras layer out of sight of Keras 3's and TensorFlow's object tracking: its variables
    are the Keras 3 layer's own, and a tracked tf_keras layer would be serialised a second time."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.creating = False


_CLASS: list[type] = []


def _factory(name: str, keras2_class: type) -> Any:
    # A subclass named as the tf_keras class, so `layertap inspect` shows the kind the user knows.
    named = type(keras2_class.__name__, (_layer_class(),), {"__module__": __name__})

    def build(**config: Any) -> Any:
        return named(keras2_class=name, keras2_config=config, keras2_type=keras2_class)

    return build


def _layer_class() -> type:
    if _CLASS:
        return _CLASS[0]
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="layertap", name="Keras2Layer")
    class Keras2Layer(keras.layers.Layer):  # type: ignore[misc]
        """A Keras 2 layer (a tf_keras class) called by Keras 3 under its own name, its weights Keras 3's."""

        def __init__(
            self,
            keras2_class: str,
            keras2_config: dict[str, Any],
            keras2_type: type | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(
                name=keras2_config.get("name"), trainable=keras2_config.get("trainable", True), **kwargs
            )
            self.keras2_class = keras2_class
            self.keras2_config = dict(keras2_config)
            found: Any = keras2_type or _keras2_class(keras2_class, shown=f"layer {self.name!r}")
            self._held = _Held(found.from_config(dict(keras2_config)))

        def build(self, input_shape: Any) -> None:
            layer = self._held.layer
            with tf.variable_creator_scope(self._create):
                layer.build(_shapes(input_shape))
            layer.built = True
            super().build(input_shape)

        def _create(self, next_creator: Any, **kwargs: Any) -> Any:
            if self._held.creating:  # the Keras 3 variable's own tf.Variable
                return next_creator(**kwargs)
            initial = kwargs.get("initial_value")
            value = tf.convert_to_tensor(
                initial() if callable(initial) else initial, dtype=kwargs.get("dtype")
            )
            name = str(kwargs.get("name") or "weight").split("/")[-1].split(":")[0]
            trainable = kwargs.get("trainable")
            self._held.creating = True
            try:
                variable = self.add_weight(
                    shape=tuple(value.shape),
                    dtype=value.dtype.name,
                    initializer=lambda shape, dtype=None: value,
                    trainable=True if trainable is None else bool(trainable),
                    name=name,
                )
            finally:
                self._held.creating = False
            return variable.value

        def call(self, inputs: Any, training: Any = None) -> Any:
            with tf.variable_creator_scope(_refuse_new_weights(self.name, self.keras2_class)):
                return self._held.layer(inputs, training=bool(training))

        def get_config(self) -> dict[str, Any]:
            return {
                **super().get_config(),
                "keras2_class": self.keras2_class,
                "keras2_config": self.keras2_config,
            }

    _CLASS.append(Keras2Layer)
    return Keras2Layer


def _refuse_new_weights(name: str, keras2_class: str) -> Any:
    def creator(next_creator: Any, **kwargs: Any) -> Any:
        raise UnsupportedModelError(
            f"layer {name!r} ({keras2_class}, a tf_keras class) creates weights when it is first called, "
            "not in build(); layertap cannot give them to Keras 3"
        )

    return creator


def _shapes(shape: Any) -> Any:
    """Keras 3's build shapes (tuples, lists of tuples) as the TensorShapes tf_keras's build() expects."""
    import tensorflow as tf

    if (
        isinstance(shape, list)
        and shape
        and all(isinstance(item, list | tuple) or item is None for item in shape)
    ):
        return [_shapes(item) for item in shape]
    return tf.TensorShape(shape)
