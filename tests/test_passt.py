"""PaSST encoder: patch grid, official checkpoint layout, patchout, positional cut, segmenting."""

from __future__ import annotations

import pytest
import torch

from zskit.encoders.audio.passt import (
    PASST_PRETRAINED,
    PaSST,
    PaSSTConfig,
    load_passt_checkpoint,
    load_passt_state_dict,
    passt_state_dict,
)
from zskit.encoders.base import PretrainedCfg
from zskit.encoders.registry import config_for_weights, create_audio_encoder, encoder_spec
from zskit.errors import ConfigError, DataError

SR = 32000


def official_layout(depth: int, dim: int, f: int, t: int, classes: int, mlp: int | None = None,
                    patch: int = 16) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of the released PaSST checkpoints (kkoutini/PaSST ``models/passt.py``:
    timm-style ViT with DeiT tokens, separate frequency/time embeddings, head = LayerNorm + Linear,
    plus the unused DeiT ``head_dist``). Written from the official layout, independent of zskit."""
    mlp = mlp or 4 * dim
    keys: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim),
        "dist_token": (1, 1, dim),
        "new_pos_embed": (1, 2, dim),
        "freq_new_pos_embed": (1, dim, f, 1),
        "time_new_pos_embed": (1, dim, 1, t),
        "patch_embed.proj.weight": (dim, 1, patch, patch),
        "patch_embed.proj.bias": (dim,),
    }
    for i in range(depth):
        p = f"blocks.{i}."
        keys.update({
            p + "norm1.weight": (dim,), p + "norm1.bias": (dim,),
            p + "attn.qkv.weight": (3 * dim, dim), p + "attn.qkv.bias": (3 * dim,),
            p + "attn.proj.weight": (dim, dim), p + "attn.proj.bias": (dim,),
            p + "norm2.weight": (dim,), p + "norm2.bias": (dim,),
            p + "mlp.fc1.weight": (mlp, dim), p + "mlp.fc1.bias": (mlp,),
            p + "mlp.fc2.weight": (dim, mlp), p + "mlp.fc2.bias": (dim,),
        })
    keys.update({
        "norm.weight": (dim,), "norm.bias": (dim,),
        "head.0.weight": (dim,), "head.0.bias": (dim,),
        "head.1.weight": (classes, dim), "head.1.bias": (classes,),
        "head_dist.weight": (classes, dim), "head_dist.bias": (classes,),
    })
    return keys


def synthetic(layout: dict[str, tuple[int, ...]], device: str = "cpu", seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    if device == "meta":
        return {k: torch.empty(s, device="meta") for k, s in layout.items()}
    return {k: torch.randn(s, generator=g) * 0.05 for k, s in layout.items()}


def tiny(**overrides) -> PaSSTConfig:
    return PaSSTConfig.tiny(**overrides)


def tiny_layout(cfg: PaSSTConfig, classes: int = 7) -> dict[str, tuple[int, ...]]:
    return official_layout(cfg.depth, cfg.embed_dim, cfg.freq_positions, cfg.time_positions,
                           classes, mlp=int(cfg.embed_dim * cfg.mlp_ratio))


# --------------------------------------------------------------------------- patch grid


def test_default_grids_match_the_released_models():
    s, n, light = PaSSTConfig.passt_s(), PaSSTConfig.passt_n(), PaSSTConfig.passt_l()
    assert (s.freq_positions, s.time_positions) == (12, 99), "PaSST-S embeds a 12 x 99 grid"
    assert (n.freq_positions, n.time_positions) == (8, 62), "PaSST-N embeds an 8 x 62 grid"
    assert light.depth == 7 and light.time_positions == 99, "PaSST-L is PaSST-S with 7 blocks"
    # a 10 s clip: 1000 frames -> (1000 - 16) // 10 + 1 = 99 columns, // 16 -> 62 columns
    assert s.num_patches(10 * SR) == 12 * 99, f"PaSST-S 10 s patches: {s.num_patches(10 * SR)}"
    assert n.num_patches(10 * SR) == 8 * 62, f"PaSST-N 10 s patches: {n.num_patches(10 * SR)}"
    assert s.num_patches(5 * SR) == 12 * 49, f"PaSST-S 5 s patches: {s.num_patches(5 * SR)}"


@pytest.mark.parametrize("seconds", [0.05, 0.5, 1.0, 1.37, 2.0])
def test_eval_token_count_is_the_conv_grid(seconds):
    torch.manual_seed(0)
    model = PaSST(tiny()).eval()
    x = torch.randn(1, int(seconds * SR))
    out = model.forward_features(x)
    spec = model.spectrogram(torch.nn.functional.pad(x, (0, max(0, model.cfg.min_samples
                                                                 - x.shape[-1]))))
    rows = (spec.shape[2] - 16) // 16 + 1  # brute force: conv output size of the padded input
    cols = (spec.shape[3] - 16) // 10 + 1
    assert out.tokens.shape == (1, rows * cols, 32), f"{seconds} s: tokens {out.tokens.shape}"
    assert rows * cols == model.cfg.num_patches(x.shape[-1]), "num_patches disagrees with forward"


def test_config_rejects_inconsistent_grids():
    with pytest.raises(ConfigError, match="frequency positions"):
        PaSSTConfig.tiny(frequency_stride=10)  # 32 mels: 2 conv rows but 32 // 10 = 3 positions
    with pytest.raises(ConfigError, match="time patches"):
        PaSSTConfig.tiny(segment_seconds=4.0)  # 4 s > the 200-frame time embedding


# --------------------------------------------------------------------------- official checkpoints


@pytest.mark.parametrize("name,depth,f,t", [("passt", 12, 12, 99), ("passt_n", 12, 8, 62),
                                            ("passt_l", 7, 12, 99)])
def test_official_layout_maps_every_key(name, depth, f, t):
    cfg = encoder_spec("audio", name).config
    with torch.device("meta"):
        model = PaSST(cfg)
    layout = official_layout(depth, 768, f, t, 527)
    mapped = passt_state_dict(model, synthetic(layout, "meta"))
    assert set(mapped) == set(model.state_dict()), "every model parameter must come from the file"
    assert set(layout) - set(mapped) == {"head_dist.weight", "head_dist.bias"}, (
        "only the unused distillation head may be dropped")
    n_params = sum(p.numel() for p in model.parameters())
    expected = {"passt": 85_748_495, "passt_n": 85_717_007, "passt_l": 50_309_135}[name]
    assert n_params == expected, f"{name}: {n_params} parameters (official minus head_dist)"


def test_loader_copies_every_tensor():
    cfg = tiny(num_classes=7)
    model = PaSST(cfg)
    sd = synthetic(tiny_layout(cfg), seed=1)
    load_passt_state_dict(model, {"model": sd})  # the DeiT-style wrapper is unwrapped too
    own = model.state_dict()
    for key, value in sd.items():
        if key.startswith("head_dist"):
            continue
        assert torch.equal(own[key], value), f"{key} was not loaded"


def test_loader_names_missing_unexpected_and_misshaped_keys():
    cfg = tiny(num_classes=7)
    model = PaSST(cfg)
    sd = synthetic(tiny_layout(cfg))
    del sd["blocks.1.mlp.fc2.bias"]
    sd["blocks.2.norm1.weight"] = torch.ones(32)
    sd["time_new_pos_embed"] = torch.zeros(1, 32, 1, 50)
    with pytest.raises(DataError) as err:
        load_passt_state_dict(model, sd)
    msg = str(err.value)
    for part in ("blocks.1.mlp.fc2.bias", "blocks.2.norm1.weight", "time_new_pos_embed"):
        assert part in msg, f"error should name {part}: {msg}"


def test_checkpoint_without_head_loads_into_headless_model(tmp_path):
    cfg = tiny()  # num_classes=0: the checkpoint's head is dropped explicitly
    model = PaSST(cfg)
    path = tmp_path / "ckpt.pt"
    torch.save(synthetic(tiny_layout(cfg)), path)
    load_passt_checkpoint(model, path)
    assert model.head is None and "head.1.weight" not in model.state_dict(), "no head expected"


def test_weight_sets_fix_their_fields():
    openmic = next(p for p in PASST_PRETRAINED["passt"] if p.tag == "openmic")
    cfg = config_for_weights(PaSSTConfig.passt_s(), openmic)
    assert cfg.num_classes == 20, f"OpenMIC weights have 20 classes, got {cfg.num_classes}"
    s20 = next(p for p in PASST_PRETRAINED["passt"] if p.tag == "audioset_20s")
    cfg = config_for_weights(PaSSTConfig.passt_s(), s20)
    assert (cfg.time_positions, cfg.segment_samples) == (200, 20 * SR), "20 s model: 200 columns"
    assert encoder_spec("audio", "passt").tags[0] == "audioset", "default weights are AudioSet"
    for tags in PASST_PRETRAINED.values():
        for p in tags:
            assert p.url.startswith("https://github.com/kkoutini/PaSST/releases/download/"), p.url
            assert p.verified == "keys" and p.sample_rate == SR, p.tag


def test_pretrained_download_path(http_dir, tmp_path):
    """The online path (download, torch.load weights_only, key check) against a local server;
    the weights come back in eval mode."""
    folder, base = http_dir
    cfg = tiny(num_classes=7)
    sd = synthetic(tiny_layout(cfg), seed=3)
    torch.save(sd, folder / "tiny-passt.pt")
    weights = PretrainedCfg("local", url=f"{base}/tiny-passt.pt",
                            extra={"config": {"num_classes": 7}})
    fields = {f: getattr(cfg, f) for f in ("frontend", "embed_dim", "depth", "num_heads",
                                           "mlp_ratio", "frequency_stride", "input_frames",
                                           "segment_seconds")}
    model = create_audio_encoder("passt", pretrained=weights, **fields)
    assert model.cfg.num_classes == 7, "the weight set fixes num_classes"
    assert torch.equal(model.head[1].weight, sd["head.1.weight"]), "downloaded weights not loaded"
    assert (tmp_path / "cache" / "tiny-passt.pt").is_file(), "download should land in the cache"
    assert not any(m.training for m in model.modules()), "pretrained PaSST must be in eval mode"


# --------------------------------------------------------------------------- behaviour


def test_structured_patchout_only_in_training():
    cfg = tiny()  # 2 x 19 grid for 2 s; drops 1 row and 3 columns in training
    model = PaSST(cfg)
    x = torch.randn(2, 2 * SR)
    model.train()
    train_tokens = model.forward_features(x).tokens.shape[1]
    model.eval()
    eval_tokens = model.forward_features(x).tokens.shape[1]
    assert eval_tokens == 2 * 19, f"eval keeps the full grid, got {eval_tokens}"
    assert train_tokens == (2 - 1) * (19 - 3), f"training drops rows/columns, got {train_tokens}"
    model = PaSST(tiny(s_patchout_t=0, s_patchout_f=0)).train()
    assert model.forward_features(x).tokens.shape[1] == 38, "no patchout configured: full grid"


def test_short_input_uses_the_first_time_positions():
    torch.manual_seed(0)
    model = PaSST(tiny()).eval()
    x = torch.randn(1, SR)  # 1 s: 101 frames -> 9 of the 20 time positions
    n_t = (model.cfg.frontend.num_frames(SR) - 16) // 10 + 1
    assert n_t == 9
    before = model(x)
    with torch.no_grad():
        tail = model.time_new_pos_embed[..., n_t:]
        tail += torch.randn_like(tail)  # positions beyond the input: unused
    assert torch.allclose(model(x), before), "positions past the input must not matter in eval"
    with torch.no_grad():
        last = model.time_new_pos_embed[..., n_t - 1]
        last += torch.randn_like(last)  # the last position in use (random: a shift common to
        #                                 all channels would vanish in the LayerNorms)
    assert not torch.allclose(model(x), before, atol=1e-4), "the first positions must be used"


def test_long_input_is_the_mean_of_its_segment_embeddings():
    torch.manual_seed(0)
    cfg = tiny(segment_seconds=10.0, input_frames=1000)
    model = PaSST(cfg).eval()
    x = torch.randn(1, 25 * SR) * 0.1
    seg = 10 * SR
    parts = [x[:, :seg], x[:, seg:2 * seg],
             torch.nn.functional.pad(x[:, 2 * seg:], (0, 5 * SR))]  # tail zero-padded to 10 s
    with torch.no_grad():
        expected = torch.stack([model(p) for p in parts]).mean(0)
        out = model.forward_features(x)
    torch.testing.assert_close(out.embedding, expected, atol=1e-5, rtol=1e-5)
    assert out.tokens.shape[1] == 3 * cfg.num_patches(seg), "tokens concatenate the segments"

    # an end-padded 12 s clip in the same batch averages only its two segments with samples
    y = torch.zeros(1, 25 * SR)
    y[:, :12 * SR] = x[:, :12 * SR]
    with torch.no_grad():
        both = model.forward_features(torch.cat([x, y]), lengths=torch.tensor([25 * SR, 12 * SR]))
        short = torch.stack([model(y[:, :seg]), model(y[:, seg:2 * seg])]).mean(0)
    torch.testing.assert_close(both.embedding[1:], short, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both.embedding[:1], expected, atol=1e-5, rtol=1e-5)
    n = cfg.num_patches(seg)
    assert not both.token_mask[1, 2 * n:].any(), "the empty third segment is masked out"
    assert both.token_mask[0, :2 * n].all(), "the two full segments hold real samples"
    # the 5 s tail: frames 0..499 are real, so patch columns starting before frame 500 (2 x 50)
    assert int(both.token_mask[0, 2 * n:].sum()) == 2 * 50, "tail mask marks the real half"


def test_tiny_forward_backward_and_autocast():
    torch.manual_seed(0)
    model = create_audio_encoder("passt", tiny=True).train()
    x = torch.randn(2, int(1.5 * SR))
    emb = model(x)
    assert emb.shape == (2, model.embed_dim) and torch.isfinite(emb).all(), "finite (B, D)"
    emb.pow(2).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert torch.isfinite(out.float()).all(), "autocast output must be finite"


def test_logits_come_from_the_head():
    model = PaSST(tiny(num_classes=5)).eval()
    out = model.forward_features(torch.randn(3, SR))
    assert out.logits.shape == (3, 5), f"logits {tuple(out.logits.shape)}"
    torch.testing.assert_close(out.logits, model.head(out.embedding))
