"""KerasHub preset directories: a backbone, and its preprocessor (text or image) in front of it when asked.

A preset is what `save_to_preset(DIR)` writes and `from_preset(DIR)` reads offline: `config.json` (the
backbone), `metadata.json` (with `keras_hub_version`), `model.weights.h5`, and for text models
`tokenizer.json` plus its vocabulary under `assets/` (and `preprocessor.json` for a task's preset).

With the preprocessor, the model layertap cuts is `text (string[batch]) -> preprocessor -> backbone`,
so every signature takes raw text and the tokenizer runs in the graph (TF Text ops: the model server
links them, `layertap.tftext`). An image task's preset (`ResNetImageClassifier.save_to_preset`) saves an
`image_converter.json` instead: the model is then `images (float32[batch, height, width, C]) -> image
converter -> backbone`, the converter resizing to the preset's image size and rescaling the pixels.
Layer specs name the backbone's layers through it
(`bert_backbone/transformer_layer_0`; `layertap inspect DIR --with-preprocessor` lists them), and a
head's `mean=padding_mask` reads the mask the preprocessor feeds the backbone.

The same composition saved as one `.keras` file does not reload in Keras: the tokenizer's vocabulary is
an asset restored only after the Functional graph is rebuilt, and rebuilding calls the tokenizer
("No vocabulary has been set"). `keras_file_error` names that cause and points to the preset route.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any

from layertap.errors import UnsupportedModelError, UsageError
from layertap.exporter.keras2 import layer_configs

__all__ = ["IMAGE_INPUT", "SEQ2SEQ_INPUTS", "TEXT_INPUT", "is_preset", "keras_file_error", "load_preset"]

logger = logging.getLogger(__name__)

#: The input name of a preset exported with its preprocessor: one string per example.
TEXT_INPUT = "text"
#: The inputs of an encoder-decoder preset (BART, T5) exported with its preprocessor, as KerasHub names them.
SEQ2SEQ_INPUTS = ("encoder_text", "decoder_text")
#: The input name of an image preset exported with its image converter: float32[batch, height, width, C].
IMAGE_INPUT = "images"
_IMAGE_CONVERTER = "image_converter.json"

# Text task preprocessors, tried in this order: KerasHub picks the subclass that fits the preset's
# backbone (`BertTextClassifierPreprocessor`, `GPT2CausalLMPreprocessor`...) or reads preprocessor.json.
_TEXT_TASKS = (
    "TextEmbedderPreprocessor",
    "TextClassifierPreprocessor",
    "CausalLMPreprocessor",
    "Seq2SeqLMPreprocessor",
)


def is_preset(path: Path) -> bool:
    """A directory holding a KerasHub preset (config.json, and metadata.json naming keras_hub)."""
    metadata = path / "metadata.json"
    if not (path.is_dir() and (path / "config.json").is_file() and metadata.is_file()):
        return False
    try:
        fields = json.loads(metadata.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(fields, dict) and any(key.startswith("keras_hub") for key in fields)


def load_preset(path: Path, *, with_preprocessor: bool, sequence_length: int | None = None) -> Any:
    """The preset's backbone, or (`with_preprocessor`) a model `text -> preprocessor -> backbone`
    (`images -> image converter -> backbone` for a preset that saved an image converter).

    Args:
        path: the preset directory.
        with_preprocessor: put the preset's text preprocessor (tokenizer and packer), or its image
            converter (resizing, rescaling), in front.
        sequence_length: tokens per example after packing; default the preprocessor's own, capped at
            the backbone's `max_sequence_length`.

    Raises:
        UsageError: keras-hub is not installed, the preset does not load, or it has no text
            preprocessor.
    """
    keras_hub = _import_keras_hub()
    import keras

    backbone = _load_part(keras_hub.models.Backbone, path, f"{path} is a KerasHub preset, but its backbone")
    logger.info("loaded the KerasHub backbone %s from %s", type(backbone).__name__, path)
    if not with_preprocessor:
        if sequence_length is not None:
            raise UsageError("--sequence-length applies to the preprocessor: add --with-preprocessor")
        return backbone
    converter = _image_converter(keras_hub, path)
    if converter is not None:
        if sequence_length is not None:
            raise UsageError(
                f"--sequence-length applies to a text preprocessor; {path} holds an image converter "
                f"({type(converter).__name__}), whose image size is the preset's"
            )
        return _with_image_converter(keras, backbone, converter, path)
    preprocessor = _text_preprocessor(keras_hub, path, backbone)
    if isinstance(preprocessor, keras_hub.models.Seq2SeqLMPreprocessor):
        # An encoder-decoder model reads two texts: the preprocessor takes a dict of both.
        for attribute in ("encoder_sequence_length", "decoder_sequence_length"):
            default = getattr(preprocessor, attribute)
            setattr(preprocessor, attribute, _length(backbone, sequence_length, default))
        texts = {name: keras.Input(shape=(), dtype="string", name=name) for name in SEQ2SEQ_INPUTS}
        logger.info("encoder-decoder preset: signatures take %s", " and ".join(SEQ2SEQ_INPUTS))
        outputs = backbone(preprocessor(texts)[0])
        return keras.Model(texts, outputs, name=f"{backbone.name}_with_preprocessor")
    preprocessor.sequence_length = _length(backbone, sequence_length, preprocessor.sequence_length)
    text = keras.Input(shape=(), dtype="string", name=TEXT_INPUT)
    features = preprocessor(text)
    if isinstance(features, tuple):  # (x, y, sample_weight) from a language model's preprocessor
        features = features[0]
    outputs = backbone(features)
    return keras.Model(text, outputs, name=f"{backbone.name}_with_preprocessor")


def _length(backbone: Any, wanted: int | None, default: int) -> int:
    """Tokens per text: `--sequence-length`, else the preprocessor's own, at most the backbone's
    `max_sequence_length` (a backbone without one, as T5's, takes any length).

    Raises:
        UsageError: `wanted` is longer than the backbone's limit.
    """
    limit = getattr(backbone, "max_sequence_length", None)
    if wanted is not None:
        if isinstance(limit, int) and wanted > limit:
            raise UsageError(
                f"--sequence-length {wanted} is longer than the backbone's "
                f"max_sequence_length {limit}; accepted: 1..{limit}"
            )
        return wanted
    return min(default, limit) if isinstance(limit, int) else default


def _image_converter(keras_hub: Any, path: Path) -> Any:
    """The preset's image converter (`image_converter.json`, saved by an image task's preset), or None."""
    if not (path / _IMAGE_CONVERTER).is_file():
        return None
    return _load_part(
        keras_hub.layers.ImageConverter,
        path,
        f"{path} holds a KerasHub {_IMAGE_CONVERTER}, but it",
        "; export the backbone alone (without --with-preprocessor)",
    )


def _with_image_converter(keras: Any, backbone: Any, converter: Any, path: Path) -> Any:
    """`images -> converter -> backbone`: images of any height and width, the converter resizes them
    (and rescales the pixel values) as KerasHub's own image tasks do before the backbone.

    Raises:
        UsageError: the backbone takes more than the images (CLIP, SigLIP: images and token ids), which
            a converter alone cannot feed.
    """
    names = _input_names(backbone)
    if len(names) > 1:
        raise UsageError(
            f"{path}: --with-preprocessor puts the image converter in front of a backbone that takes images "
            f"alone, and {type(backbone).__name__} takes {names}; export the backbone without "
            "--with-preprocessor and send those inputs (images already resized and rescaled)"
        )
    shape = getattr(backbone, "image_shape", None)
    channels = shape[-1] if isinstance(shape, list | tuple) and shape and shape[-1] else 3
    images = keras.Input(shape=(None, None, channels), name=IMAGE_INPUT)
    logger.info("image converter %s in front of %s", type(converter).__name__, backbone.name)
    return keras.Model(images, backbone(converter(images)), name=f"{backbone.name}_with_preprocessor")


def _text_preprocessor(keras_hub: Any, path: Path, backbone: Any) -> Any:
    tried: list[str] = []
    for task in _task_order(path):
        base = getattr(keras_hub.models, task, None)
        if base is None:
            continue
        try:
            preprocessor = base.from_preset(str(path))
        except ValueError as error:  # "Unable to find a subclass of ... compatible with ..."
            tried.append(f"{task}: {_one_line(error, 120)}")
            continue
        logger.info("text preprocessor %s from %s", type(preprocessor).__name__, path)
        return preprocessor
    if (path / "tokenizer.json").is_file():
        return _generic_preprocessor(keras_hub, path, backbone)
    raise UsageError(
        f"{path} holds a {type(backbone).__name__} preset with no text preprocessor KerasHub can build "
        "(it has no tokenizer.json: save the tokenizer with it, tokenizer.save_to_preset(DIR)) "
        f"({'; '.join(tried) or 'no text task in this keras-hub'}); export the backbone alone "
        "(without --with-preprocessor), whose signatures take token ids"
    )


def _generic_preprocessor(keras_hub: Any, path: Path, backbone: Any) -> Any:
    """KerasHub's generic `TextClassifierPreprocessor` over the preset's tokenizer, for a backbone KerasHub
    has no preprocessor class for (ELECTRA in keras-hub 0.32): `start tokens... end [pad...]` packed by
    `MultiSegmentPacker` with the tokenizer's own start, end and pad tokens, which is what every
    encoder's own preprocessor subclass does (`BertTextClassifierPreprocessor` adds nothing to it).

    Raises:
        UsageError: the tokenizer does not load, lacks a start, end or pad token (packing would be
            guesswork), or the backbone takes inputs the packer does not make.
    """
    tokenizer = _load_part(
        keras_hub.tokenizers.Tokenizer,
        path,
        f"{path} holds a {type(backbone).__name__} preset whose tokenizer.json",
        "; export the backbone alone (without --with-preprocessor), whose signatures take token ids",
    )
    kind = type(tokenizer).__name__
    missing = [
        role for role in ("start", "end", "pad") if getattr(tokenizer, f"{role}_token_id", None) is None
    ]
    if missing:
        raise UsageError(
            f"{path}: KerasHub has no preprocessor for {type(backbone).__name__}, and its {kind} has no "
            f"{'/'.join(missing)} token to pack sequences with, so no generic one can be right; export the "
            "backbone alone (without --with-preprocessor) and feed it token ids"
        )
    preprocessor = keras_hub.models.TextClassifierPreprocessor(tokenizer=tokenizer)
    wanted = set(_input_names(backbone))
    made = {"token_ids", "padding_mask", "segment_ids"}
    if not wanted or not wanted <= made:
        raise UsageError(
            f"{path}: KerasHub has no preprocessor for {type(backbone).__name__}, and the generic one makes "
            f"{sorted(made)} while the backbone takes {sorted(wanted)}; export the backbone alone (without "
            "--with-preprocessor) and feed it its inputs"
        )
    logger.warning(
        "KerasHub has no preprocessor for %s: packing with the generic TextClassifierPreprocessor over "
        "its %s (start %r, end %r, pad %r)",
        type(backbone).__name__,
        kind,
        *(getattr(tokenizer, f"{role}_token", None) for role in ("start", "end", "pad")),
    )
    return _Selected(preprocessor, sorted(wanted))


def _input_names(backbone: Any) -> list[str]:
    inputs = backbone.input
    return [str(name) for name in inputs] if isinstance(inputs, dict) else []


class _Selected:
    """A preprocessor whose output dict is cut to the inputs the backbone takes (the generic packer also
    makes segment ids, which a backbone without a segment embedding does not accept)."""

    def __init__(self, preprocessor: Any, names: list[str]) -> None:
        self.preprocessor = preprocessor
        self.names = names

    @property
    def sequence_length(self) -> int:
        return int(self.preprocessor.sequence_length)

    @sequence_length.setter
    def sequence_length(self, value: int) -> None:
        self.preprocessor.sequence_length = value

    def __call__(self, text: Any) -> Any:
        features = self.preprocessor(text)
        return {name: features[name] for name in self.names}


def _task_order(path: Path) -> list[str]:
    """_TEXT_TASKS, the task of the preset's own preprocessor.json first (a task preset saves one)."""
    try:
        saved = json.loads((path / "preprocessor.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return list(_TEXT_TASKS)
    class_name = str(saved.get("class_name", "")) if isinstance(saved, dict) else ""
    return sorted(_TEXT_TASKS, key=lambda task: not class_name.endswith(task))


def _import_keras_hub() -> Any:
    try:
        import keras_hub
    except ImportError as error:
        raise UsageError(
            f"loading a KerasHub preset needs keras-hub ({error}); install it: pip install "
            "'layertap[kerashub]' (it brings the tensorflow-text matching TensorFlow)"
        ) from None
    return keras_hub


def keras_file_error(path: Path, error: BaseException) -> UsageError | None:
    """The error for a `.keras` file that calls a KerasHub tokenizer or preprocessor on its input and
    so cannot be reloaded (see the module docstring); None when the file is not such a case."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    text_layers = sorted(
        {
            str(entry.get("class_name"))
            for entry in layer_configs(config)
            if str(entry.get("module", "")).startswith("keras_hub")
            and str(entry.get("class_name", "")).endswith(("Preprocessor", "Tokenizer"))
        }
    )
    if not text_layers:
        return None
    return UnsupportedModelError(
        f"{path} calls the KerasHub {', '.join(text_layers)} on its input, and Keras cannot reload such a "
        "file: the tokenizer's vocabulary is restored only after the model graph is rebuilt, and "
        f"rebuilding it runs the tokenizer (Keras: {_one_line(error, 160)}). The file is not damaged. "
        "Save the backbone and its preprocessor as a preset instead (task.save_to_preset(DIR), or "
        "backbone.save_to_preset(DIR) and tokenizer.save_to_preset(DIR)) and export that directory: "
        "layertap export DIR --with-preprocessor --layer ..."
    )


def _load_part(kind: Any, path: Path, what: str, fix: str = "") -> Any:
    """`kind.from_preset(path)`, or a UsageError: "`what` does not load: the cause`fix`"."""
    try:
        return kind.from_preset(str(path))
    except Exception as error:
        raise UsageError(f"{what} does not load: {type(error).__name__}: {_one_line(error)}{fix}") from error


def _one_line(error: BaseException, limit: int = 300) -> str:
    from layertap._text import strip_escapes

    lines = [line.strip() for line in strip_escapes(str(error)).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    for line in lines:  # Keras wraps the cause: prefer the line that names it
        if "vocabulary" in line.lower():
            text = line
            break
    return text if len(text) <= limit else text[: limit - 3] + "..."
