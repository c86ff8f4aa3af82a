"""ImageNet ViT/DeiT -> AST adaptation, on small random ViT/DeiT models built from their configs."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from transformers import DeiTConfig, DeiTModel, ViTConfig, ViTModel

from zskit.adapt import (
    adapt_position_grid,
    adapt_vision_transformer,
    position_grid,
    timm_to_transformers,
    vision_state_dict,
)
from zskit.audio.frontends import KaldiFbankConfig
from zskit.encoders.audio.ast import ASTEncoder, ASTEncoderConfig
from zskit.errors import ConfigError, DataError

SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64}
AST_SIZES = {"embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_dim": 64}


def vision(kind: str, image: int = 64, seed: int = 0):
    """A random ViT or DeiT with a (image / 16)^2 grid and non-trivial embeddings."""
    torch.manual_seed(seed)
    if kind == "vit":
        model = ViTModel(ViTConfig(image_size=image, patch_size=16, **SIZES), add_pooling_layer=False)
    else:
        model = DeiTModel(DeiTConfig(image_size=image, patch_size=16, **SIZES), add_pooling_layer=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("embeddings.") and "patch_embeddings" not in name:
                p.normal_(0, 0.5)
    return model.eval()


def ast(bins: int = 32, frames: int = 128, stride: int = 10, **kw) -> ASTEncoder:
    cfg = ASTEncoderConfig(frontend=KaldiFbankConfig(num_mel_bins=bins, target_length=frames),
                           frequency_stride=stride, time_stride=stride, num_classes=3,
                           **AST_SIZES, **kw)
    return ASTEncoder(cfg).eval()


def vision_grid(model) -> torch.Tensor:
    pos = model.embeddings.position_embeddings.detach()
    tokens = 2 if hasattr(model.embeddings, "distillation_token") else 1
    side = int((pos.shape[1] - tokens) ** 0.5)
    return pos[0, tokens:].T.reshape(-1, side, side)


@pytest.mark.parametrize("reduction,divisor", [("sum", 1.0), ("mean", 3.0)])
def test_channel_reduction_is_the_three_channel_response(reduction, divisor):
    vit = vision("vit")
    model = adapt_vision_transformer(ast(), vit, channel_reduction=reduction)
    proj = model.audio_spectrogram_transformer.embeddings.patch_embeddings.projection
    x = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        three = vit.embeddings.patch_embeddings.projection(x.expand(-1, 3, -1, -1))
        one = F.conv2d(x, proj.weight, proj.bias, stride=16)
    bias = proj.bias[None, :, None, None]
    torch.testing.assert_close(one - bias, (three - bias) / divisor, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_matching_sizes_reproduce_the_grid(mode):
    grid = torch.randn(8, 5, 7)
    assert torch.equal(adapt_position_grid(grid, (5, 7), mode), grid), f"{mode} changed the grid"
    deit = vision("deit")  # 4 x 4 grid; an AST on 64 bins x 64 frames with stride 16 has 4 x 4
    model = adapt_vision_transformer(ast(64, 64, 16), deit, positions=mode)
    assert model.cfg.grid == (4, 4)
    assert torch.equal(position_grid(model), vision_grid(deit)), "grid must be copied unchanged"


def test_adapted_deit_equals_deit_on_a_three_channel_spectrogram():
    """Grid sizes equal and channels summed: the AST is the DeiT seeing the spectrogram in 3
    identical channels, token for token (both [CLS] and [DIST] and every patch)."""
    deit = vision("deit")
    model = adapt_vision_transformer(ast(64, 64, 16), deit, channel_reduction="sum")
    fbank = torch.randn(2, 64, 64)  # (B, frames, bins): AST's layout
    image = fbank.transpose(1, 2)[:, None].expand(-1, 3, -1, -1)  # rows = frequency
    with torch.no_grad():
        ours = model.audio_spectrogram_transformer(input_values=fbank).last_hidden_state
        theirs = deit(pixel_values=image).last_hidden_state
        out = model.forward_fbank(fbank)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.embedding, (theirs[:, 0] + theirs[:, 1]) / 2,
                               atol=1e-4, rtol=1e-4, msg="clip embedding = mean of DeiT's tokens")


def test_grid_is_cut_in_frequency_and_interpolated_in_time():
    vit = vision("vit")  # 4 x 4
    with torch.no_grad():  # rows differ by row index, columns rise linearly with the column
        rows = torch.arange(4.0)[:, None].expand(4, 4)
        cols = torch.arange(4.0)[None, :].expand(4, 4)
        grid = torch.stack([rows, cols] + [torch.zeros(4, 4)] * 30)
        vit.embeddings.position_embeddings[0, 1:] = grid.flatten(1).T
    model = adapt_vision_transformer(ast(), vit)  # AST grid 2 x 12
    got = position_grid(model)
    assert got.shape == (32, 2, 12), f"grid {tuple(got.shape)}"
    assert torch.equal(got[0], torch.tensor([[1.0] * 12, [2.0] * 12])), "middle rows 1 and 2 kept"
    ramp = got[1, 0]
    assert ramp[0] == 0 and ramp[-1] == 3, f"time axis spans the source's columns: {ramp}"
    assert bool((ramp.diff() >= 0).all()) and len(set(ramp.tolist())) > 4, "bilinear ramp"
    nearest = position_grid(adapt_vision_transformer(ast(), vit, positions="nearest"))[1, 0]
    assert set(nearest.tolist()) == {0.0, 1.0, 2.0, 3.0}, f"nearest copies columns: {nearest}"


def test_vit_cls_token_is_reused_for_both_tokens():
    vit = vision("vit")
    model = adapt_vision_transformer(ast(), vit)
    emb = model.audio_spectrogram_transformer.embeddings
    assert torch.equal(emb.cls_token, vit.embeddings.cls_token)
    assert torch.equal(emb.distillation_token, vit.embeddings.cls_token)
    pos = emb.position_embeddings[0]
    assert torch.equal(pos[0], pos[1]) and torch.equal(pos[0], vit.embeddings.position_embeddings[0, 0])
    with torch.no_grad():
        hidden = model.audio_spectrogram_transformer(input_values=torch.randn(2, 128, 32))
    tokens = hidden.last_hidden_state
    torch.testing.assert_close(tokens[:, 0], tokens[:, 1], msg="identical tokens, one [CLS]")


def test_deit_tokens_and_blocks_are_copied():
    deit = vision("deit")
    model = adapt_vision_transformer(ast(), deit)
    emb = model.audio_spectrogram_transformer.embeddings
    assert torch.equal(emb.distillation_token, deit.embeddings.distillation_token)
    assert torch.equal(emb.position_embeddings[:, :2], deit.embeddings.position_embeddings[:, :2])
    own = model.state_dict()
    body = {k: v for k, v in deit.state_dict().items() if not k.startswith("embeddings.")}
    assert body, "the DeiT has blocks"
    for key, value in body.items():
        assert torch.equal(own["audio_spectrogram_transformer." + key], value), f"{key} not copied"


def test_reinit_keeps_the_ast_positions():
    model = ast()
    before = position_grid(model)
    adapt_vision_transformer(model, vision("deit"), positions="reinit")
    assert torch.equal(position_grid(model), before), "reinit must keep the AST's own positions"


def test_timm_checkpoint_gives_the_same_ast():
    deit = vision("deit", seed=3)
    sd = deit.state_dict()
    timm = {"cls_token": sd["embeddings.cls_token"], "dist_token": sd["embeddings.distillation_token"],
            "pos_embed": sd["embeddings.position_embeddings"],
            "patch_embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
            "patch_embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
            "norm.weight": sd["layernorm.weight"], "norm.bias": sd["layernorm.bias"],
            "head.weight": torch.zeros(5, 32), "head.bias": torch.zeros(5)}
    for i in range(2):
        p = f"layers.{i}."
        for kind in ("weight", "bias"):
            timm[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat(
                [sd[f"{p}attention.{n}_proj.{kind}"] for n in "qkv"])
            for t, h in (("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                         ("attn.proj", "attention.o_proj"), ("mlp.fc1", "mlp.fc1"),
                         ("mlp.fc2", "mlp.fc2")):
                timm[f"blocks.{i}.{t}.{kind}"] = sd[f"{p}{h}.{kind}"]
    assert timm_to_transformers(timm).keys() == sd.keys(), "every key maps, heads dropped"
    a = adapt_vision_transformer(ast(), deit).state_dict()
    b = adapt_vision_transformer(ast(), {"model": timm}).state_dict()
    differ = [k for k in a if not k.startswith("classifier") and not torch.equal(a[k], b[k])]
    assert not differ, f"timm and transformers sources differ in {differ}"


def test_mismatches_are_config_errors():
    with pytest.raises(ConfigError, match="width and patch size"):
        adapt_vision_transformer(ast(patch_shape=(32, 2)), vision("vit"))
    with pytest.raises(ConfigError, match="depth"):
        adapt_vision_transformer(ASTEncoder(ASTEncoderConfig.tiny(depth=1)), vision("vit"))
    with pytest.raises(ConfigError, match="positions"):
        adapt_vision_transformer(ast(), vision("vit"), positions="bicubic")
    for bad in ({}, {"classifier.weight": torch.zeros(2, 2)}):
        with pytest.raises(DataError, match="patch"):
            vision_state_dict(bad)
