"""PANNs CNN10/CNN14: official checkpoint layout, front-end presets, a reference forward, padding."""

from __future__ import annotations

import functools
import hashlib

import librosa
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from zskit.audio import LogMel, LogMelConfig, mel_filterbank, pad_batch
from zskit.encoders import PretrainedCfg, create_audio_encoder, encoder_spec, list_audio_encoders
from zskit.encoders.audio.panns import (
    PANNS_PRETRAINED,
    PannsCnn,
    PannsConfig,
    load_panns_weights,
)
from zskit.errors import ConfigError, DataError

# Facts from qiuqiangkong/audioset_tagging_cnn (pytorch/models.py, README) and torchlibrosa:
# name -> (channels of the conv blocks, fc1 width, sample rate, window = n_fft, hop, fmax).
OFFICIAL = {
    "cnn14": ((64, 128, 256, 512, 1024, 2048), 2048, 32000, 1024, 320, 14000),
    "cnn14_16k": ((64, 128, 256, 512, 1024, 2048), 2048, 16000, 512, 160, 8000),
    "cnn10": ((64, 128, 256, 512), 512, 32000, 1024, 320, 14000),
}
N_KEYS = {"cnn14": 84, "cnn14_16k": 84, "cnn10": 60}  # tensors in each checkpoint's "model" dict
CONFIGS = {"cnn14": PannsConfig.cnn14, "cnn14_16k": PannsConfig.cnn14_16k, "cnn10": PannsConfig.cnn10}


def official_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official checkpoint's ``model`` state dict (64 mels, 527 classes)."""
    channels, width, _, n_fft, _, _ = OFFICIAL[name]
    shapes: dict[str, tuple[int, ...]] = {
        "spectrogram_extractor.stft.conv_real.weight": (n_fft // 2 + 1, 1, n_fft),
        "spectrogram_extractor.stft.conv_imag.weight": (n_fft // 2 + 1, 1, n_fft),
        "logmel_extractor.melW": (n_fft // 2 + 1, 64),
    }

    def bn(prefix: str, c: int) -> None:
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{p}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn0", 64)
    c_in = 1
    for i, c in enumerate(channels, 1):
        shapes[f"conv_block{i}.conv1.weight"] = (c, c_in, 3, 3)
        shapes[f"conv_block{i}.conv2.weight"] = (c, c, 3, 3)
        bn(f"conv_block{i}.bn1", c)
        bn(f"conv_block{i}.bn2", c)
        c_in = c
    shapes.update({"fc1.weight": (width, c_in), "fc1.bias": (width,),
                   "fc_audioset.weight": (527, width), "fc_audioset.bias": (527,)})
    return shapes


def librosa_melw(name: str) -> torch.Tensor:
    """torchlibrosa's ``melW``: librosa's Slaney mel matrix, transposed."""
    _, _, sr, n_fft, _, fmax = OFFICIAL[name]
    return torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=64, fmin=50, fmax=fmax).T)


def synthetic_checkpoint(name: str, device: str = "cpu") -> dict[str, torch.Tensor]:
    """An official-layout state dict; tensor ``i`` is filled with the value ``i`` (meta: no data)."""
    state = {}
    for i, (key, shape) in enumerate(official_shapes(name).items()):
        if key == "logmel_extractor.melW":
            state[key] = librosa_melw(name)
        elif key.startswith("spectrogram_extractor"):
            state[key] = torch.zeros(shape)
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(i, dtype=torch.int64, device=device)
        else:
            state[key] = torch.full(shape, float(i), device=device)
    return state


@functools.cache
def meta_model(name: str) -> PannsCnn:
    """A full-size model on the meta device (shapes only; built once per name)."""
    return PannsCnn(CONFIGS[name]()).to("meta").eval()


def randomised(model: PannsCnn, seed: int = 0) -> PannsCnn:
    """Random weights and batch-norm statistics, so eval-mode tests exercise every term."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                if name.endswith("running_var"):
                    t.copy_(0.5 + torch.rand(t.shape, generator=g))
                else:
                    t.copy_(0.3 * torch.randn(t.shape, generator=g))
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Front end presets


@pytest.mark.parametrize("name", ["cnn14", "cnn14_16k"])
def test_logmel_presets_match_panns_frontend(name):
    """zskit's presets against librosa with PANNs' settings (torchlibrosa reproduces librosa)."""
    _, _, sr, n_fft, hop, fmax = OFFICIAL[name]
    cfg = CONFIGS[name]().frontend
    fb_err = (mel_filterbank(cfg) - librosa_melw(name)).abs().max().item()
    assert fb_err < 1e-6, f"{name}: mel matrix differs from librosa's by {fb_err}"
    y = (0.1 * np.random.default_rng(0).standard_normal(sr)).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, win_length=n_fft,
                                         window="hann", center=True, pad_mode="reflect", power=2.0,
                                         n_mels=64, fmin=50, fmax=fmax)
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    ours = LogMel(cfg)(torch.from_numpy(y)).numpy()
    assert ours.shape == ref.shape == (64, 1 + sr // hop)
    err = np.abs(ours - ref).max()
    assert err < 1e-3, f"{name}: log-mel differs from librosa by {err} dB (measured ~6e-5)"


# ---------------------------------------------------------------------------------------------
# Official checkpoints


@pytest.mark.parametrize("name", ["cnn14", "cnn14_16k", "cnn10"])
def test_official_layout_loads_into_full_size_model(name):
    """Every official key is mapped or deliberately dropped; shapes match (meta tensors: no data)."""
    shapes = official_shapes(name)
    assert len(shapes) == N_KEYS[name]
    model = meta_model(name)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    frontend_keys = {k for k in shapes if k.startswith(("spectrogram_extractor", "logmel_extractor"))}
    assert own == {k: v for k, v in shapes.items() if k not in frontend_keys}
    load_panns_weights(model, synthetic_checkpoint(name, device="meta"))  # raises on any mismatch


def test_parameter_counts_match_the_paper():
    """CNN14 has 80.8M parameters (PANNs paper); CNN10's count is that of its official tensors."""
    n14 = sum(p.numel() for p in meta_model("cnn14").parameters())
    assert round(n14 / 1e6, 1) == 80.8, n14
    n10 = sum(p.numel() for p in PannsCnn(PannsConfig.cnn10()).parameters())
    assert n10 == sum(int(np.prod(s)) for k, s in official_shapes("cnn10").items()
                      if not k.startswith(("spectrogram", "logmel")) and "running" not in k
                      and "num_batches" not in k)


def test_values_land_on_their_own_parameters(tmp_path):
    """CNN10 at full size from an official-format file ({iteration, model, sampler} with numpy)."""
    state = synthetic_checkpoint("cnn10")
    path = tmp_path / "Cnn10_mAP=0.380.pth"
    sampler = {"indexes_per_class": [np.arange(5), np.arange(3)], "queue": [np.int64(4), 7],
               "pointers_of_classes": [0, 1]}
    torch.save({"iteration": 660000, "model": state, "sampler": sampler}, path)
    model = load_panns_weights(PannsCnn(PannsConfig.cnn10()), path)
    loaded = model.state_dict()
    for key, value in state.items():
        if key.startswith(("spectrogram_extractor", "logmel_extractor")):
            assert key not in loaded, f"{key} should be dropped (zskit's LogMel replaces it)"
        else:
            assert torch.equal(loaded[key], value), f"{key} did not receive its own tensor"


def test_loader_names_missing_extra_and_misshaped_keys():
    model = PannsCnn(PannsConfig.tiny())
    good = model.state_dict()
    missing = {k: v for k, v in good.items() if k != "conv_block2.bn1.running_var"}
    with pytest.raises(DataError, match=r"missing keys \['conv_block2\.bn1\.running_var'\]"):
        load_panns_weights(model, missing)
    extra = {**good, "fc_extra.weight": torch.zeros(3)}
    with pytest.raises(DataError, match=r"unexpected keys \['fc_extra\.weight'\]"):
        load_panns_weights(model, extra)
    misshaped = {**good, "fc1.weight": torch.zeros(16, 8)}
    with pytest.raises(DataError, match=r"fc1\.weight: checkpoint \(16, 8\)"):
        load_panns_weights(model, misshaped)
    load_panns_weights(model, {"model": good})  # the official wrapping is accepted


def test_loader_refuses_weights_of_another_front_end():
    """16 kHz CNN14 weights into the 32 kHz model: the mel matrix gives it away."""
    model = meta_model("cnn14")
    state = synthetic_checkpoint("cnn14", device="meta")
    state["logmel_extractor.melW"] = librosa_melw("cnn14_16k")
    with pytest.raises(DataError, match="logmel_extractor.melW"):
        load_panns_weights(model, state)
    bad_stft = synthetic_checkpoint("cnn14", device="meta")
    bad_stft["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(257, 1, 512)
    with pytest.raises(DataError, match="n_fft=1024"):
        load_panns_weights(model, bad_stft)


def test_unreadable_file_raises_data_error(tmp_path):
    path = tmp_path / "Cnn14_mAP=0.431.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="Cnn14_mAP=0.431.pth"):
        load_panns_weights(PannsCnn(PannsConfig.tiny()), path)
    with pytest.raises(ConfigError, match="is not a file"):
        load_panns_weights(PannsCnn(PannsConfig.tiny()), tmp_path / "absent.pth")


# ---------------------------------------------------------------------------------------------
# Forward


def reference_forward(state: dict[str, torch.Tensor], wave: np.ndarray, cfg: PannsConfig):
    """PANNs' eval-mode forward written out with librosa and torch.nn.functional."""
    fe = cfg.frontend
    mel = librosa.feature.melspectrogram(y=wave, sr=fe.sample_rate, n_fft=fe.n_fft,
                                         hop_length=fe.hop_length, window="hann", center=True,
                                         pad_mode="reflect", power=2.0, n_mels=fe.n_mels,
                                         fmin=fe.f_min, fmax=fe.fmax)
    x = torch.from_numpy(librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T)[None, None]

    def bn(t, p):
        return F.batch_norm(t, state[f"{p}.running_mean"], state[f"{p}.running_var"],
                            state[f"{p}.weight"], state[f"{p}.bias"], False, 0.0, 1e-5)

    x = bn(x.transpose(1, 3), "bn0").transpose(1, 3)
    for i, pool in enumerate(cfg.pools, 1):
        x = F.relu(bn(F.conv2d(x, state[f"conv_block{i}.conv1.weight"], padding=1), f"conv_block{i}.bn1"))
        x = F.relu(bn(F.conv2d(x, state[f"conv_block{i}.conv2.weight"], padding=1), f"conv_block{i}.bn2"))
        x = F.avg_pool2d(x, kernel_size=(pool, pool))
    x = x.mean(dim=3)
    x = x.max(dim=2).values + x.mean(dim=2)
    emb = F.relu(F.linear(x, state["fc1.weight"], state["fc1.bias"]))
    return emb, F.linear(emb, state["fc_audioset.weight"], state["fc_audioset.bias"])


def test_forward_matches_reference():
    cfg = PannsConfig.tiny()
    model = randomised(PannsCnn(cfg))
    wave = (0.2 * np.random.default_rng(1).standard_normal(int(1.3 * cfg.sample_rate))).astype(np.float32)
    ref_emb, ref_logits = reference_forward(model.state_dict(), wave, cfg)
    with torch.no_grad():
        out = model.forward_features(torch.from_numpy(wave))
    scale = ref_emb.abs().max().item()
    assert scale > 0.1, "degenerate reference embedding"
    assert torch.allclose(out.embedding, ref_emb, atol=1e-4 * scale, rtol=1e-4), \
        f"embedding differs by {(out.embedding - ref_emb).abs().max():.2e}"
    assert torch.allclose(out.logits, ref_logits, atol=1e-4 * scale, rtol=1e-4)


@pytest.mark.parametrize("seconds", [1, 10, 12])
@pytest.mark.parametrize("name", ["cnn14", "cnn10"])
def test_full_size_shapes(name, seconds):
    """PANNs' frame count: 1 + T // hop frames, halved by each pooling (10 s CNN14 -> 31)."""
    cfg = CONFIGS[name]()
    model = meta_model(name)
    n = seconds * cfg.sample_rate
    out = model.forward_features(torch.zeros(2, n, device="meta"))
    frames = (1 + n // cfg.frontend.hop_length) // cfg.reduction
    assert out.embedding.shape == (2, cfg.embed_dim)
    assert out.tokens.shape == (2, frames, cfg.channels[-1])
    assert out.token_mask.shape == (2, frames)
    assert out.logits.shape == (2, 527)
    if name == "cnn14" and seconds == 10:
        assert frames == 31


@pytest.mark.parametrize("seconds", [1, 10, 12])
def test_tiny_shapes(seconds):
    cfg = PannsConfig.tiny()
    model = create_audio_encoder("cnn14", tiny=True).eval()
    with torch.no_grad():
        out = model.forward_features(torch.randn(3, seconds * cfg.sample_rate))
        assert model(torch.randn(3, seconds * cfg.sample_rate)).shape == (3, cfg.embed_dim)
    frames = (1 + seconds * cfg.sample_rate // cfg.frontend.hop_length) // cfg.reduction
    assert out.tokens.shape == (3, frames, cfg.channels[-1]) and bool(out.token_mask.all())
    assert out.logits.shape == (3, cfg.num_classes)


def test_padding_with_lengths_matches_each_clip_alone():
    cfg = PannsConfig.tiny()
    model = randomised(PannsCnn(cfg), seed=3)
    g = torch.Generator().manual_seed(0)
    clips = [0.2 * torch.randn(int(s * cfg.sample_rate), generator=g) for s in (0.7, 2.0, 1.3, 0.02)]
    batch, mask = pad_batch(clips)
    with torch.no_grad():
        padded = model.forward_features(batch, mask.sum(1))
        naive = model.forward_features(batch)
        for i, clip in enumerate(clips):
            alone = model.forward_features(clip)
            t = alone.tokens.shape[1]
            assert int(padded.token_mask[i].sum()) == t
            assert torch.allclose(padded.tokens[i, :t], alone.tokens[0], atol=1e-5), f"clip {i}"
            assert torch.allclose(padded.embedding[i], alone.embedding[0], atol=1e-5), f"clip {i}"
            assert torch.allclose(padded.logits[i], alone.logits[0], atol=1e-5), f"clip {i}"
            if i == 0:  # without lengths the padding leaks in: the masking is what makes it exact
                assert not torch.allclose(naive.embedding[i], alone.embedding[0], atol=1e-3)
    with pytest.raises(ConfigError, match="lengths"):
        model.forward_features(batch, torch.tensor([1, 2]))


def test_forward_backward_finite_with_gradients_everywhere():
    model = create_audio_encoder("cnn10", tiny=True).train()
    wave = torch.randn(2, int(1.5 * model.sample_rate))
    out = model.forward_features(wave)
    loss = out.embedding.square().mean() + out.logits.mean()
    loss.backward()
    assert torch.isfinite(out.embedding).all() and torch.isfinite(out.logits).all()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"parameters without a finite gradient: {no_grad}"
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        emb = model(wave)
    assert emb.shape == (2, model.embed_dim) and torch.isfinite(emb.float()).all()


# ---------------------------------------------------------------------------------------------
# Registry and download


def test_registered_names_and_pretrained_facts():
    names = set(list_audio_encoders(pretrained=True))
    assert {"cnn14.audioset", "cnn14_16k.audioset", "cnn10.audioset"} <= names
    for name, md5 in (("cnn14", "541141fa2ee191a88f24a3219fff024e"),
                      ("cnn14_16k", "362fc5ff18f1d6ad2f6d464b45893f2c"),
                      ("cnn10", "bfb1f1f9968938fa8ef4012b8471f5f6")):
        spec = encoder_spec("audio", name)
        p = spec.pretrained[0]
        assert p is PANNS_PRETRAINED[name] and p.extra["md5"] == md5
        assert p.url.startswith("https://zenodo.org/record/3987831/files/") and "%3D" in p.url
        assert p.licence == "CC-BY-4.0" and p.verified == "keys" and p.num_classes == 527
        assert p.sample_rate == spec.config.sample_rate
    assert encoder_spec("audio", "cnn14_16k").config.frontend == LogMelConfig.cnn14_16k()
    with pytest.raises(ConfigError, match="tiny"):
        create_audio_encoder("cnn14", tiny=True, pretrained=True)
    with pytest.raises(ConfigError, match="sample rate"):
        PannsConfig(sample_rate=16000)


def test_pretrained_build_downloads_verifies_and_loads(http_dir):
    """The registry builder fetches an official-format file (md5-checked) and loads it."""
    root, base = http_dir
    source = randomised(PannsCnn(PannsConfig.tiny()), seed=5)
    path = root / "Tiny_mAP=0.1.pth"
    torch.save({"iteration": 1, "model": source.state_dict()}, path)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    pcfg = PretrainedCfg("audioset", url=f"{base}/Tiny_mAP%3D0.1.pth", filename=path.name,
                         extra={"md5": md5})
    model = create_audio_encoder("cnn14", pretrained=pcfg, tiny=False, **_tiny_fields())
    assert not model.training and model.pretrained_cfg is pcfg
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    bad = PretrainedCfg("audioset", url=pcfg.url, filename="other.pth", extra={"md5": "0" * 32})
    with pytest.raises(DataError, match="md5"):
        create_audio_encoder("cnn14", pretrained=bad, **_tiny_fields())


def _tiny_fields() -> dict:
    tiny = PannsConfig.tiny()
    return {f: getattr(tiny, f) for f in ("sample_rate", "frontend", "channels", "pools",
                                          "embed_dim", "num_classes")}
