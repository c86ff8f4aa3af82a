"""AST encoder: patch counts, AST's input pipeline, the Hugging Face checkpoint layout."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torchaudio
from safetensors.torch import save_file

from zskit.audio.frontends import KaldiFbankConfig
from zskit.encoders.audio.ast import (
    AST_PRETRAINED,
    ASTEncoder,
    ASTEncoderConfig,
    load_ast_pretrained,
)
from zskit.encoders.base import PretrainedCfg
from zskit.encoders.registry import config_for_weights, create_audio_encoder
from zskit.errors import ConfigError, DataError

SR = 16000
TINY_FIELDS = ("frontend", "embed_dim", "depth", "num_heads", "mlp_dim")


def official_layout(layers: int, dim: int, mlp: int, n_patches: int, classes: int,
                    patch: int = 16) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of MIT's AST checkpoints on the Hugging Face hub
    (``ASTForAudioClassification`` as uploaded, transformers 4.x naming)."""
    p = "audio_spectrogram_transformer."
    keys: dict[str, tuple[int, ...]] = {
        p + "embeddings.cls_token": (1, 1, dim),
        p + "embeddings.distillation_token": (1, 1, dim),
        p + "embeddings.position_embeddings": (1, n_patches + 2, dim),
        p + "embeddings.patch_embeddings.projection.weight": (dim, 1, patch, patch),
        p + "embeddings.patch_embeddings.projection.bias": (dim,),
    }
    for i in range(layers):
        q = f"{p}encoder.layer.{i}."
        for name in ("attention.attention.query", "attention.attention.key",
                     "attention.attention.value", "attention.output.dense"):
            keys[q + name + ".weight"] = (dim, dim)
            keys[q + name + ".bias"] = (dim,)
        keys[q + "intermediate.dense.weight"] = (mlp, dim)
        keys[q + "intermediate.dense.bias"] = (mlp,)
        keys[q + "output.dense.weight"] = (dim, mlp)
        keys[q + "output.dense.bias"] = (dim,)
        for name in ("layernorm_before", "layernorm_after"):
            keys[q + name + ".weight"] = (dim,)
            keys[q + name + ".bias"] = (dim,)
    keys.update({
        p + "layernorm.weight": (dim,), p + "layernorm.bias": (dim,),
        "classifier.layernorm.weight": (dim,), "classifier.layernorm.bias": (dim,),
        "classifier.dense.weight": (classes, dim), "classifier.dense.bias": (classes,),
    })
    return keys


def write_checkpoint(folder, cfg: ASTEncoderConfig, classes: int, drop=(), extra=None, seed=0):
    """A hub-style checkpoint directory (config.json + model.safetensors) with the official keys."""
    hf_cfg = cfg.hf_config()
    hf_cfg.num_labels = classes
    hf_cfg.architectures = ["ASTForAudioClassification"]
    hf_cfg.save_pretrained(folder)
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(s, generator=g) * 0.05
          for k, s in official_layout(cfg.depth, cfg.embed_dim, cfg.mlp_dim, cfg.num_patches,
                                      classes).items() if k not in drop}
    sd.update(extra or {})
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return sd


def paper_count(frames: int) -> int:
    """Paper 2: N = 12 * ceil((100 t - 16) / 10), with 100 t frames."""
    return 12 * math.ceil((frames - 16) / 10)


# --------------------------------------------------------------------------- patches


@pytest.mark.parametrize("stride,expected", [(16, 512), (14, 657), (12, 850), (10, 1212)])
def test_patch_counts_of_the_overlap_ablation(stride, expected):
    cfg = ASTEncoderConfig(frequency_stride=stride, time_stride=stride)
    assert cfg.num_patches == expected, f"overlap {16 - stride}: {cfg.num_patches} != {expected}"


@pytest.mark.parametrize("shape,expected", [((128, 2), 512), ((16, 16), 512), ((32, 32), 128)])
def test_patch_counts_of_the_shape_ablation(shape, expected):
    """Paper 2, Table 6: patches of equal area without overlap (strides = patch sides)."""
    cfg = ASTEncoderConfig(patch_size=shape[0] if shape[0] == shape[1] else 16,
                           patch_shape=None if shape[0] == shape[1] else shape,
                           frequency_stride=shape[0], time_stride=shape[1])
    assert cfg.num_patches == expected, f"{shape}: {cfg.num_patches} != {expected}"


def test_rectangular_patches_run_in_temporal_order():
    cfg = ASTEncoderConfig.tiny(patch_shape=(32, 2), frequency_stride=32, time_stride=2)
    model = ASTEncoder(cfg).eval()
    kernel = model.audio_spectrogram_transformer.embeddings.patch_embeddings.projection.weight
    assert tuple(kernel.shape[2:]) == (32, 2) and cfg.grid == (1, 64), f"{kernel.shape} {cfg.grid}"
    fbank = torch.randn(1, 128, 32)
    changed = fbank.clone()
    changed[:, 126:] += 1.0  # the last two frames: only the last patch sees them
    with torch.no_grad():
        emb = model.audio_spectrogram_transformer.embeddings.patch_embeddings
        diff = (emb(changed) - emb(fbank)).abs().sum(-1)[0]
    assert diff.nonzero().flatten().tolist() == [63], f"patches touched: {diff.nonzero()}"
    with pytest.raises(ConfigError, match="patch_shape"):
        ASTEncoderConfig.tiny(patch_shape=(32, 0))


@pytest.mark.parametrize("frames", [128, 512, 998, 1000, 1016, 1024])
def test_patch_count_matches_astmodel_and_the_paper(frames):
    from transformers import ASTConfig, ASTModel

    hf = ASTModel(ASTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                            intermediate_size=8, max_length=frames)).eval()
    with torch.no_grad():
        n = hf.embeddings(torch.zeros(1, frames, 128)).shape[1] - 2  # minus [CLS], [DIST]
    cfg = ASTEncoderConfig(frontend=KaldiFbankConfig.ast(frames))
    assert cfg.num_patches == n, f"{frames} frames: config {cfg.num_patches}, ASTModel {n}"
    if (frames - 16) % 10:
        assert paper_count(frames) == n, f"{frames} frames: paper formula {paper_count(frames)}"
    else:  # the paper's ceil counts one column less when 100 t - 16 is a multiple of 10
        assert paper_count(frames) == n - 12, f"{frames} frames: {paper_count(frames)} vs {n}"


# --------------------------------------------------------------------------- input pipeline


def reference_fbank(wave: torch.Tensor, cfg: ASTEncoderConfig) -> torch.Tensor:
    """AST's own recipe written out: kaldi fbank, zero-pad/cut to max_length, (x - m) / (2 s)."""
    fe = cfg.frontend
    fb = torchaudio.compliance.kaldi.fbank(
        wave[None], htk_compat=True, sample_frequency=SR, use_energy=False,
        window_type="hanning", num_mel_bins=fe.num_mel_bins, dither=0.0, frame_shift=10)
    fb = torch.nn.functional.pad(fb, (0, 0, 0, max(0, cfg.max_length - fb.shape[0])))
    return (fb[:cfg.max_length] - fe.norm_mean) / (2 * fe.norm_std)


@pytest.mark.parametrize("seconds", [0.5, 3.0])
def test_inputs_are_padded_or_cut_as_ast_does(seconds):
    model = ASTEncoder(ASTEncoderConfig.tiny())
    wave = torch.randn(int(seconds * SR)) * 0.1
    feats = model.features(wave[None])
    assert feats.shape == (1, 128, 32), f"features {tuple(feats.shape)}"
    torch.testing.assert_close(feats[0], reference_fbank(wave, model.cfg), atol=1e-4, rtol=1e-4)


def test_lengths_use_only_real_samples():
    model = ASTEncoder(ASTEncoderConfig.tiny()).eval()
    short = torch.randn(8000) * 0.1
    padded = torch.nn.functional.pad(short, (0, 16000))
    batch = torch.stack([padded, torch.randn(24000) * 0.1])
    with torch.no_grad():
        out = model.forward_features(batch, lengths=torch.tensor([8000, 24000]))
        alone = model.forward_features(short[None])
    torch.testing.assert_close(out.embedding[:1], alone.embedding, atol=1e-5, rtol=1e-5)
    # 8000 samples -> 48 frames -> patch columns starting at 0..40 (5 of 12), 2 rows each
    assert int(out.token_mask[0].sum()) == 2 * 5, f"mask {out.token_mask[0].sum()}"
    assert int(out.token_mask[1].sum()) == model.cfg.num_patches, "a full clip is all real"


def test_tiny_forward_backward():
    torch.manual_seed(0)
    model = create_audio_encoder("ast", tiny=True).train()
    x = torch.randn(2, int(1.5 * SR))
    out = model.forward_features(x)
    assert out.embedding.shape == (2, 32) and torch.isfinite(out.embedding).all(), "finite (B, D)"
    assert out.tokens.shape == (2, model.cfg.num_patches, 32), f"tokens {tuple(out.tokens.shape)}"
    out.embedding.pow(2).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model(x).float()).all(), "autocast output must be finite"


# --------------------------------------------------------------------------- checkpoints


def test_full_size_model_has_the_official_shapes():
    for cfg, classes in ((ASTEncoderConfig(), 527), (ASTEncoderConfig.speechcommands(), 35)):
        with torch.device("meta"):
            model = ASTEncoder(cfg)
        ours = Counter(tuple(v.shape) for v in model.state_dict().values())
        official = Counter(official_layout(12, 768, 3072, cfg.num_patches, classes).values())
        assert ours == official, f"shape multiset differs: {ours - official} / {official - ours}"
    assert ASTEncoderConfig().num_patches + 2 == 1214, "AudioSet model: 1212 patches + 2 tokens"


def test_hub_layout_loads_every_parameter(tmp_path):
    cfg = ASTEncoderConfig.tiny(num_classes=5)
    sd = write_checkpoint(tmp_path, cfg, classes=5, seed=1)
    model = load_ast_pretrained(ASTEncoder(cfg), str(tmp_path))
    own = model.state_dict()
    assert len(own) == len(sd), f"{len(own)} parameters in the model, {len(sd)} in the file"
    # transformers renames the hub's keys (v5: layers.i.attention.q_proj, mlp.fc2; v4: as on the hub)
    p = "audio_spectrogram_transformer."
    for hub_key, new_suffix in (("encoder.layer.1.attention.attention.query.weight",
                                 "layers.1.attention.q_proj.weight"),
                                ("encoder.layer.0.output.dense.weight", "layers.0.mlp.fc2.weight")):
        ours = next(k for k in own if k in (p + hub_key, p + new_suffix))
        assert torch.equal(own[ours], sd[p + hub_key]), f"{hub_key} was not loaded into {ours}"
    assert torch.equal(own["classifier.dense.weight"], sd["classifier.dense.weight"])
    assert torch.equal(own["audio_spectrogram_transformer.embeddings.position_embeddings"],
                       sd["audio_spectrogram_transformer.embeddings.position_embeddings"])
    total = sum(v.numel() for v in sd.values())
    assert sum(v.numel() for v in own.values()) == total, "every value must come from the file"
    assert sorted(float(v.sum()) for v in own.values()) == pytest.approx(
        sorted(float(v.sum()) for v in sd.values())), "tensor contents differ from the file"


def test_loader_names_missing_and_unexpected_keys(tmp_path):
    cfg = ASTEncoderConfig.tiny(num_classes=5)
    write_checkpoint(tmp_path, cfg, classes=5, drop={"classifier.dense.bias"},
                     extra={"bogus.weight": torch.zeros(3)})
    with pytest.raises(DataError) as err:
        load_ast_pretrained(ASTEncoder(cfg), str(tmp_path))
    assert "classifier.dense.bias" in str(err.value) and "bogus.weight" in str(err.value), (
        f"error should name both keys: {err.value}")


def test_loader_names_mis_shaped_keys_in_a_data_error(tmp_path):
    """A tensor of the wrong shape under a right name (a foreign or damaged file) is a DataError
    naming the key and both shapes, not transformers' bare RuntimeError."""
    cfg = ASTEncoderConfig.tiny(num_classes=5)
    p = "audio_spectrogram_transformer.encoder.layer.0.intermediate.dense.bias"
    write_checkpoint(tmp_path, cfg, classes=5, extra={p: torch.zeros(cfg.mlp_dim + 1)})
    shapes = rf"(intermediate\.dense|mlp\.fc1)\.bias: checkpoint \({cfg.mlp_dim + 1},\)"
    with pytest.raises(DataError, match=shapes):
        load_ast_pretrained(ASTEncoder(cfg), str(tmp_path))


def test_loader_rejects_another_architecture(tmp_path):
    write_checkpoint(tmp_path, ASTEncoderConfig.tiny(num_classes=5, time_stride=12), classes=5)
    with pytest.raises(ConfigError, match="time_stride"):
        load_ast_pretrained(ASTEncoder(ASTEncoderConfig.tiny(num_classes=5)), str(tmp_path))


def test_registry_builds_from_a_weight_set(tmp_path):
    tiny = ASTEncoderConfig.tiny()
    sd = write_checkpoint(tmp_path, tiny, classes=3, seed=2)
    weights = PretrainedCfg("local", extra={"hf_id": str(tmp_path), "config": {"num_classes": 3}})
    model = create_audio_encoder("ast", pretrained=weights,
                                 **{f: getattr(tiny, f) for f in TINY_FIELDS})
    assert model.cfg.num_classes == 3 and model.pretrained_cfg is weights
    assert torch.equal(model.classifier.dense.weight, sd["classifier.dense.weight"])
    assert not any(m.training for m in model.modules()), "pretrained AST must be in eval mode"
    out = model.forward_features(torch.randn(1, SR))
    assert out.logits.shape == (1, 3), f"logits {tuple(out.logits.shape)}"


def test_registry_passes_the_weight_set_revision(monkeypatch):
    import transformers

    seen = {}

    def offline(source, **kwargs):
        seen.update(kwargs, source=source)
        raise OSError("offline")

    monkeypatch.setattr(transformers.ASTForAudioClassification, "from_pretrained", offline)
    weights = PretrainedCfg("pinned", extra={"hf_id": "org/ast", "revision": "abc123"})
    with pytest.raises(DataError, match="offline"):
        tiny = ASTEncoderConfig.tiny()
        create_audio_encoder("ast", pretrained=weights, **{f: getattr(tiny, f) for f in TINY_FIELDS})
    assert seen["source"] == "org/ast" and seen["revision"] == "abc123"
    assert all("revision" in p.extra for p in AST_PRETRAINED)


def test_weight_sets():
    tags = {p.tag: p for p in AST_PRETRAINED}
    assert list(tags) == ["audioset", "speechcommands"], list(tags)
    assert tags["audioset"].extra["hf_id"] == "MIT/ast-finetuned-audioset-10-10-0.4593"
    assert tags["speechcommands"].extra["hf_id"] == "MIT/ast-finetuned-speech-commands-v2"
    cfg = config_for_weights(ASTEncoderConfig(), tags["speechcommands"])
    assert (cfg.max_length, cfg.num_classes, cfg.num_patches) == (128, 35, 144), (
        "Speech Commands model: 128 frames, 35 classes, 12 x 12 patches")
    assert cfg.frontend.norm_mean == pytest.approx(-6.845978), "its own normalisation statistics"
