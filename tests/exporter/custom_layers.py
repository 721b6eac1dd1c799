"""A custom layer registered with Keras, for `--custom-objects` (imported by file path in the tests)."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="layertap_tests")
class Scale(keras.layers.Layer):
    """Multiplies its input by a learned per-feature factor."""

    def __init__(self, initial: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.initial = initial

    def build(self, input_shape: Any) -> None:
        self.factor = self.add_weight(
            shape=(input_shape[-1],), initializer=keras.initializers.Constant(self.initial), name="factor"
        )

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "initial": self.initial}
