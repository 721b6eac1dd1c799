"""Small, randomly initialised KerasHub text presets for the exporter tests (from configs, no downloads).

Two tokenizer families: BERT (WordPiece, `BertTextClassifierPreprocessor` with segment ids) saved as a
task's preset (preprocessor.json inside), and GPT-2 (byte-level BPE, `GPT2CausalLMPreprocessor`) saved as
backbone + tokenizer. ELECTRA (WordPiece) saved as backbone + tokenizer has no preprocessor class in
KerasHub: its reference is packed here by hand (`[CLS] words [SEP] [PAD]...`), apart from the product.
One image family: ViT, an image classifier's preset with its image converter
(`image_converter.json`: resize to 32x32, pixels scaled to [-1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SENTENCES = ["the cat sat on the mat", "a dog", "the unknownword cat sat"]

BERT_VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "a", "dog", "mat", "on"]
GPT2_MERGES = ["Ġ t", "t h", "Ġt h", "Ġth e", "Ġ c", "Ġc a", "Ġca t", "Ġ s", "Ġs a", "Ġsa t", "Ġ m"]
GPT2_MERGES += ["Ġm a", "Ġma t"]


def gpt2_vocabulary() -> dict[str, int]:
    """Every byte's symbol (so no text is out of vocabulary, as in GPT-2's own), then the merges' tokens."""
    from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

    _, symbols = bytes_to_unicode()
    tokens = ["<|endoftext|>", *symbols]
    tokens += ["".join(merge.split()) for merge in GPT2_MERGES]
    return {token: index for index, token in enumerate(dict.fromkeys(tokens))}


@dataclass(frozen=True)
class Preset:
    """A preset on disk: its family, the backbone's name (the prefix of layer specs), sequence length."""

    family: str
    path: Path
    backbone: str
    sequence_length: int


def build_preset(family: str, directory: Path) -> Preset:
    """Write a small `family` ("bert", "gpt2" or "electra") preset into `directory`."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(5)
    if family == "electra":
        backbone = keras_hub.models.ElectraBackbone(
            vocab_size=len(BERT_VOCABULARY),
            num_layers=2,
            num_heads=2,
            hidden_dim=16,
            embedding_dim=8,
            intermediate_dim=32,
            max_sequence_length=8,
        )
        backbone.save_to_preset(str(directory))
        keras_hub.models.ElectraTokenizer(vocabulary=BERT_VOCABULARY, lowercase=True).save_to_preset(
            str(directory)
        )
        return Preset(family, directory, backbone.name, 8)
    if family == "bert":
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=BERT_VOCABULARY, lowercase=True)
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=len(BERT_VOCABULARY),
            num_layers=2,
            num_heads=2,
            hidden_dim=16,
            intermediate_dim=32,
            max_sequence_length=8,
        )
        preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=8)
        task = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=preprocessor)
        task.save_to_preset(str(directory))
        return Preset(family, directory, backbone.name, 8)
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=gpt2_vocabulary(), merges=GPT2_MERGES)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(gpt2_vocabulary()),
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=10,
    )
    backbone.save_to_preset(str(directory))
    tokenizer.save_to_preset(str(directory))
    return Preset(family, directory, backbone.name, 10)


def reference_features(preset: Preset, sentences: list[str], layers: list[str]) -> dict[str, np.ndarray]:
    """In-process KerasHub: the preset's own preprocessor on `sentences`, then the backbone cut at
    `layers` (names inside the backbone); also the preprocessor's `padding_mask`."""
    import keras
    import keras_hub
    import tensorflow as tf

    backbone = keras_hub.models.Backbone.from_preset(str(preset.path))
    if preset.family == "electra":
        features = packed_by_hand(sentences, preset.sequence_length)
    else:
        base = (
            keras_hub.models.TextClassifierPreprocessor
            if preset.family == "bert"
            else keras_hub.models.CausalLMPreprocessor
        )
        preprocessor = base.from_preset(str(preset.path), sequence_length=preset.sequence_length)
        features = preprocessor(tf.constant(sentences))
        if isinstance(features, tuple):
            features = features[0]
    cut = keras.Model(backbone.inputs, [backbone.get_layer(name).output for name in layers])
    values = cut(features)
    values = values if isinstance(values, list | tuple) else [values]
    result = {name: np.asarray(value) for name, value in zip(layers, values, strict=True)}
    result["padding_mask"] = np.asarray(features["padding_mask"])
    return result


def packed_by_hand(sentences: list[str], length: int) -> dict[str, np.ndarray]:
    """BERT's packing of whole-word sentences: `[CLS] ids [SEP]`, padded with `[PAD]`, one segment."""
    ids = {token: index for index, token in enumerate(BERT_VOCABULARY)}
    rows = []
    for sentence in sentences:
        words = [ids.get(word, ids["[UNK]"]) for word in sentence.lower().split()][: length - 2]
        row = [ids["[CLS]"], *words, ids["[SEP]"]]
        rows.append(row + [ids["[PAD]"]] * (length - len(row)))
    token_ids = np.array(rows, dtype=np.int32)
    return {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids),
        "padding_mask": token_ids != ids["[PAD]"],
    }


#: the ViT preset's image size (its converter resizes every image to it)
VIT_IMAGE = 32


def build_vit_preset(directory: Path) -> Preset:
    """Write a small ViT image classifier preset (backbone, image converter) into `directory`."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(5)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(VIT_IMAGE, VIT_IMAGE, 3),
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=32,
    )
    converter = keras_hub.layers.ViTImageConverter(
        image_size=(VIT_IMAGE, VIT_IMAGE), scale=1 / 127.5, offset=-1.0
    )
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(converter)
    keras_hub.models.ViTImageClassifier(backbone, num_classes=3, preprocessor=preprocessor).save_to_preset(
        str(directory)
    )
    return Preset("vit", directory, backbone.name, 0)


def reference_image_features(preset: Preset, images: np.ndarray, layer: str) -> np.ndarray:
    """In-process KerasHub: the preset's image converter on `images`, then the backbone cut at `layer`."""
    import keras
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(str(preset.path))
    converter = keras_hub.layers.ImageConverter.from_preset(str(preset.path))
    cut = keras.Model(backbone.inputs, backbone.get_layer(layer).output)
    return np.asarray(cut(converter(images)))
