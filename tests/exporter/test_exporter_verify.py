"""The verification catches what `tf.saved_model.load` alone would not: a SavedModel that loads in
Python and fails in TF Serving's session loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layertap.errors import VerificationError
from layertap.exporter.specs import resolve
from layertap.exporter.truncate import plan_signatures
from layertap.exporter.verify import relative_error, tolerance_for, verify_savedmodel


def _runner(model: Any, aliases: Any) -> Any:
    def run(*inputs: Any) -> Any:
        outputs = model(list(inputs), training=False)
        return dict(zip(aliases, outputs if isinstance(outputs, list) else [outputs], strict=True))

    return run


def _functions_only_savedmodel(signatures: Any, path: Path) -> None:
    """The trap: a module holding the signature functions and the Keras sub-models, not the variables."""
    import tensorflow as tf

    holder = tf.Module()
    holder.models = [signature.model for signature in signatures]
    concrete = {}
    for signature in signatures:
        specs = [tf.TensorSpec(shape, dtype, name=alias) for alias, shape, dtype in signature.input_specs]

        function = tf.function(
            _runner(signature.model, signature.output_aliases), input_signature=specs, autograph=False
        )
        setattr(holder, f"f{len(concrete)}", function)
        concrete[signature.key] = function.get_concrete_function()
    tf.saved_model.save(holder, str(path), signatures=concrete)


def test_functions_only_export_loads_in_tf2_but_fails_verification(
    trained_tutorial_cnn: Any, digits: np.ndarray, tmp_path: Path
) -> None:
    import tensorflow as tf

    signatures = plan_signatures(trained_tutorial_cnn, [resolve(trained_tutorial_cnn, "conv_2")], {})
    _functions_only_savedmodel(signatures, tmp_path / "trap")
    # tf.saved_model.load is happy with it ...
    loaded = tf.saved_model.load(str(tmp_path / "trap"))
    assert loaded.signatures["conv_2"](image=tf.constant(digits))["conv_2"].shape == (8, 11, 11, 64)
    # ... TF Serving's session loader path is not.
    with pytest.raises(VerificationError, match="session loader") as caught:
        verify_savedmodel(tmp_path / "trap", signatures, seed=0, progress=lambda _: None)
    assert "Could not find variable" in str(caught.value)


def test_relative_error_rules() -> None:
    expected = np.array([[2.0, -4.0]], dtype=np.float32)
    assert relative_error(expected + np.float32(4e-5), expected) == pytest.approx(1e-5, rel=1e-2)
    assert relative_error(np.zeros((1, 3), np.float32), expected) == float("inf")  # shape differs
    assert relative_error(np.array([1, 2]), np.array([1, 2])) == 0.0
    assert relative_error(np.array([1, 3]), np.array([1, 2])) == float("inf")  # integers: exact
    assert tolerance_for(np.dtype(np.float32)) == 1e-5
    assert tolerance_for(np.dtype(np.float16)) == 1e-2
