"""An encoder-decoder KerasHub preset (BART, byte-level BPE) with its `Seq2SeqLMPreprocessor`: loaded with
--with-preprocessor, the model takes `encoder_text` and `decoder_text` (its preprocessor reads a dict of both)
and its layers equal KerasHub's own preprocessor and backbone in process.

In process only: the same preset's CLI export, `layertap validate`, `layertap serve` and the client were
checked by hand (exact), but tracing two byte-level BPE tokenizers into every signature takes minutes of
CPU; the export route for a preprocessor is the one tests/exporter/test_exporter_kerashub.py serves.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.exporter.kerashub_presets import GPT2_MERGES, SENTENCES, gpt2_vocabulary

pytest.importorskip("keras_hub", reason="the kerashub extra is not installed")

OUTPUTS = ["encoder_sequence_output", "decoder_sequence_output"]
FEED = {"encoder_text": np.array(SENTENCES), "decoder_text": np.array(SENTENCES[::-1])}
LENGTH = 8


@pytest.fixture(scope="module")
def bart(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A small BART preset (backbone, tokenizer, seq2seq preprocessor) and KerasHub's backbone outputs."""
    import keras
    import keras_hub
    import tensorflow as tf

    keras.utils.set_random_seed(5)
    vocabulary = gpt2_vocabulary()
    for token in ("<s>", "<pad>", "</s>", "<mask>"):
        vocabulary.setdefault(token, len(vocabulary))
    tokenizer = keras_hub.models.BartTokenizer(vocabulary=vocabulary, merges=GPT2_MERGES)
    backbone = keras_hub.models.BartBackbone(
        vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=LENGTH,
    )  # fmt: skip
    preprocessor = keras_hub.models.BartSeq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=LENGTH, decoder_sequence_length=LENGTH
    )
    path = tmp_path_factory.mktemp("bart_preset")
    keras_hub.models.BartSeq2SeqLM(backbone, preprocessor=preprocessor).save_to_preset(str(path))
    values = backbone(preprocessor({name: tf.constant(texts) for name, texts in FEED.items()})[0])
    return SimpleNamespace(path=path, want={name: np.asarray(values[name]) for name in OUTPUTS})


def test_an_encoder_decoder_preset_takes_both_texts_equal_to_kerashub(bart: SimpleNamespace) -> None:
    from layertap.exporter.loading import load_model
    from layertap.exporter.sources.kerashub import SEQ2SEQ_INPUTS

    model = load_model(bart.path, with_preprocessor=True)
    assert sorted(tensor.name for tensor in model.inputs) == sorted(SEQ2SEQ_INPUTS)
    preprocessor = model.get_layer("bart_seq2_seq_lm_preprocessor")
    assert preprocessor.encoder_sequence_length == preprocessor.decoder_sequence_length == LENGTH
    got = model(FEED)
    for name in OUTPUTS:
        np.testing.assert_allclose(np.asarray(got[name]), bart.want[name], rtol=1e-5, atol=1e-6, err_msg=name)
