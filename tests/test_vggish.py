"""VGGish: torchvggish's checkpoint layout, a reference forward, postprocessing, framing, padding."""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from zskit.audio import LogMel, LogMelConfig, pad_batch
from zskit.data.download import ChecksumError, RemoteFile, cache_dir
from zskit.encoders import PretrainedCfg, create_audio_encoder, encoder_spec, list_audio_encoders
from zskit.encoders.audio.vggish import (
    VGGISH_PRETRAINED,
    Vggish,
    VggishConfig,
    _fetch,
    check_sha256_prefix,
    load_vggish_weights,
)
from zskit.errors import ConfigError, DataError

SR = 16000

# Facts: torchvggish (harritaylor) vggish.py / hubconf.py and Google's vggish_slim.py, vggish_params.py.
OFFICIAL_SHAPES = {
    "features.0.weight": (64, 1, 3, 3), "features.0.bias": (64,),  # conv1
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),  # conv2
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),  # conv3_1
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),  # conv3_2
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),  # conv4_1
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),  # conv4_2
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),  # fc1_1 (6 x 4 x 512 in)
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),  # fc1_2
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),  # fc2, the embedding
}
PCA_SHAPES = {"pca_eigen_vectors": (128, 128), "pca_means": (128,)}  # vggish_pca_params-970ea276
N_PARAMS = 72_141_184  # torchvggish's VGGish


@functools.cache
def meta_model(postprocess: bool = False) -> Vggish:
    """A full-size VGGish on the meta device (shapes only)."""
    return Vggish(VggishConfig(postprocess=postprocess)).to("meta").eval()


def randomised(model: Vggish, seed: int = 0) -> Vggish:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            t.copy_(torch.randn(t.shape, generator=g) * (0.3 if t.ndim > 1 else 0.1))
    return model.eval()


def test_official_layout_loads_into_full_size_model():
    model = meta_model()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == OFFICIAL_SHAPES
    assert sum(p.numel() for p in model.parameters()) == N_PARAMS
    state = {k: torch.empty(s, device="meta") for k, s in OFFICIAL_SHAPES.items()}
    load_vggish_weights(model, state)
    post = meta_model(postprocess=True)
    pca = {k: torch.empty(s, device="meta") for k, s in PCA_SHAPES.items()}
    load_vggish_weights(post, state, pca)


def test_values_land_on_their_own_parameters(tmp_path):
    """Tiny widths, torchvggish's names; the PCA file as torchvggish ships it (numpy arrays)."""
    cfg = VggishConfig.tiny(postprocess=True)
    source = randomised(Vggish(cfg), seed=1)
    weights = {k: v.clone() for k, v in source.state_dict().items() if not k.startswith("pca")}
    rng = np.random.default_rng(0)
    pca = {"pca_eigen_vectors": rng.standard_normal((16, 16)), "pca_means": rng.standard_normal(16)}
    torch.save(weights, tmp_path / "vggish.pth")
    torch.save(pca, tmp_path / "pca.pth")
    model = load_vggish_weights(Vggish(cfg), tmp_path / "vggish.pth", tmp_path / "pca.pth")
    loaded = model.state_dict()
    for key, value in weights.items():
        assert torch.equal(loaded[key], value), key
    assert torch.allclose(loaded["pca_eigen_vectors"], torch.from_numpy(pca["pca_eigen_vectors"]).float())
    assert loaded["pca_means"].shape == (16, 1)
    assert torch.allclose(loaded["pca_means"][:, 0], torch.from_numpy(pca["pca_means"]).float())


def test_loader_names_missing_extra_and_misshaped_keys():
    model = Vggish(VggishConfig.tiny())
    good = model.state_dict()
    with pytest.raises(DataError, match=r"missing keys \['features\.8\.bias'\]"):
        load_vggish_weights(model, {k: v for k, v in good.items() if k != "features.8.bias"})
    with pytest.raises(DataError, match=r"unexpected keys \['embeddings\.6\.weight'\]"):
        load_vggish_weights(model, {**good, "embeddings.6.weight": torch.zeros(2, 2)})
    with pytest.raises(DataError, match=r"embeddings\.4\.weight: checkpoint \(3, 32\)"):
        load_vggish_weights(model, {**good, "embeddings.4.weight": torch.zeros(3, 32)})
    with pytest.raises(ConfigError, match="postprocess=False"):
        load_vggish_weights(model, good, pca={"pca_eigen_vectors": torch.eye(16)})
    post = Vggish(VggishConfig.tiny(postprocess=True))
    with pytest.raises(ConfigError, match="PCA"):
        load_vggish_weights(post, good)
    with pytest.raises(DataError, match=r"missing keys \['pca_means'\]"):
        load_vggish_weights(post, good, pca={"pca_eigen_vectors": torch.eye(16)})


def reference_forward(state: dict[str, torch.Tensor], wave: np.ndarray, cfg: VggishConfig) -> torch.Tensor:
    """torchvggish's VGG.forward on VGGish's framing (96-frame examples, no overlap, tail dropped)."""
    mel = LogMel(cfg.frontend)(torch.from_numpy(wave)).T.numpy()  # (frames, 64)
    n = len(mel) // 96
    x = torch.from_numpy(np.stack([mel[i * 96:(i + 1) * 96] for i in range(n)]))[:, None]
    for i in (0, 3, 6, 8, 11, 13):
        x = F.relu(F.conv2d(x, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1))
        if i in (0, 3, 8, 13):
            x = F.max_pool2d(x, 2, 2)
    x = torch.transpose(x, 1, 3)
    x = torch.transpose(x, 1, 2).contiguous().view(x.size(0), -1)
    for i in (0, 2, 4):
        x = F.linear(x, state[f"embeddings.{i}.weight"], state[f"embeddings.{i}.bias"])
        x = F.relu(x) if i < 4 else x
    return x


def test_forward_matches_reference_and_torchvggish_relu_option():
    cfg = VggishConfig.tiny()
    model = randomised(Vggish(cfg), seed=2)
    wave = (0.3 * np.random.default_rng(3).standard_normal(int(3.5 * SR))).astype(np.float32)
    ref = reference_forward(model.state_dict(), wave, cfg)
    with torch.no_grad():
        out = model.forward_features(torch.from_numpy(wave))
    assert ref.shape == (3, 16) and out.tokens.shape == (1, 3, 16)
    assert (ref < 0).any(), "Google's embedding layer has no ReLU: some values must be negative"
    assert torch.allclose(out.tokens[0], ref, atol=1e-4), (out.tokens[0] - ref).abs().max()
    assert torch.allclose(out.embedding[0], ref.mean(0), atol=1e-4)
    relu = Vggish(VggishConfig.tiny(final_relu=True)).eval()
    relu.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(relu.forward_features(torch.from_numpy(wave)).tokens[0], ref.clamp(min=0),
                              atol=1e-4)


def test_postprocess_matches_googles_formula():
    """PCA, clip to [-2, 2], scale to 0..255 and truncate (vggish_postprocess.py)."""
    cfg = VggishConfig.tiny(postprocess=True)
    model = randomised(Vggish(cfg), seed=4)
    rng = np.random.default_rng(5)
    eig = rng.standard_normal((16, 16)).astype(np.float32)
    means = rng.standard_normal((16, 1)).astype(np.float32)
    with torch.no_grad():
        model.pca_eigen_vectors.copy_(torch.from_numpy(eig))
        model.pca_means.copy_(torch.from_numpy(means))
        raw = rng.standard_normal((200, 16)).astype(np.float32)
        ours = model.quantize(torch.from_numpy(raw)).numpy()
    pca = np.dot(eig, raw.T - means).T
    ref = ((np.clip(pca, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)
    assert ours.min() >= 0 and ours.max() <= 255 and (ours == ours.round()).all()
    diff = np.abs(ours - ref)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99, f"{(diff > 0).sum()} of {diff.size} differ"
    assert (ref == 0).any() and (ref == 255).any(), "the test should reach both clipping bounds"


@pytest.mark.parametrize("seconds,patches", [(1, 1), (10, 10), (12, 12), (0.5, 1), (2.8, 2), (2.9, 3)])
def test_patch_counts(seconds, patches):
    """VGGish frames a clip into whole 0.96 s patches; shorter clips are padded to one."""
    cfg = VggishConfig()
    n = int(seconds * SR)
    assert cfg.num_patches(n) == patches
    out = meta_model().forward_features(torch.zeros(2, n, device="meta"))
    assert out.embedding.shape == (2, 128) and out.tokens.shape == (2, patches, 128)
    tiny = create_audio_encoder("vggish", tiny=True).eval()
    with torch.no_grad():
        emb = tiny(torch.randn(2, n))
    assert emb.shape == (2, 16) and torch.isfinite(emb).all()


def test_patches_follow_the_frontend():
    model = Vggish(VggishConfig.tiny())
    wave = torch.randn(1, int(2.5 * SR))
    mel = LogMel(LogMelConfig.vggish())(wave)[0].T  # (frames, 64)
    patches = model.patches(wave)
    assert patches.shape == (1, 2, 96, 64)
    assert torch.equal(patches[0, 1], mel[96:192])


def test_padding_with_lengths_matches_each_clip_alone():
    model = randomised(Vggish(VggishConfig.tiny()), seed=6)
    g = torch.Generator().manual_seed(0)
    clips = [0.3 * torch.randn(int(s * SR), generator=g) for s in (1.0, 3.1, 2.5, 0.4)]
    batch, mask = pad_batch(clips)
    with torch.no_grad():
        padded = model.forward_features(batch, mask.sum(1))
        naive = model.forward_features(batch)
        for i, clip in enumerate(clips):
            alone = model.forward_features(clip)
            p = alone.tokens.shape[1]
            assert padded.token_mask[i].sum() == p, f"clip {i}: {padded.token_mask[i]}"
            assert torch.allclose(padded.tokens[i, :p], alone.tokens[0], atol=1e-6), f"clip {i}"
            assert torch.allclose(padded.embedding[i], alone.embedding[0], atol=1e-6), f"clip {i}"
        assert not torch.allclose(naive.embedding[0], padded.embedding[0], atol=1e-3)
    with pytest.raises(ConfigError, match="lengths"):
        model.forward_features(batch, torch.tensor([0, 5, 5, 5]))


def test_forward_backward_finite_with_gradients_everywhere():
    model = create_audio_encoder("vggish", tiny=True).train()
    out = model.forward_features(torch.randn(2, int(1.5 * SR)))
    out.embedding.square().mean().backward()
    assert torch.isfinite(out.embedding).all()
    bad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not bad, f"parameters without a finite gradient: {bad}"
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        emb = model.eval()(torch.randn(2, SR))
    assert torch.isfinite(emb.float()).all()


def test_registered_with_pretrained_facts():
    assert "vggish.audioset" in list_audio_encoders(pretrained=True)
    spec = encoder_spec("audio", "vggish")
    p = spec.pretrained[0]
    assert p is VGGISH_PRETRAINED and p.licence == "Apache-2.0" and p.verified == "keys"
    assert p.url.endswith("/v0.1/vggish-10086976.pth") and p.extra["sha256_prefix"] == "10086976"
    assert p.extra["pca_url"].endswith("/v0.1/vggish_pca_params-970ea276.pth")
    assert p.extra["pca_sha256_prefix"] == "970ea276"
    assert spec.config.frontend == LogMelConfig.vggish() and spec.config.embed_dim == 128


def test_pretrained_build_downloads_checks_hash_prefix_and_loads(http_dir):
    root, base = http_dir
    cfg = VggishConfig.tiny(postprocess=True)
    source = randomised(Vggish(cfg), seed=7)
    weights = {k: v for k, v in source.state_dict().items() if not k.startswith("pca")}
    torch.save(weights, root / "w.pth")
    torch.save({"pca_eigen_vectors": np.eye(16), "pca_means": np.zeros(16)}, root / "p.pth")

    def prefix(name: str) -> str:
        return hashlib.sha256((root / name).read_bytes()).hexdigest()[:8]

    pcfg = PretrainedCfg("audioset", url=f"{base}/w.pth",
                         extra={"sha256_prefix": prefix("w.pth"), "pca_url": f"{base}/p.pth",
                                "pca_sha256_prefix": prefix("p.pth")})
    fields = {f: getattr(cfg, f) for f in ("conv_channels", "fc_dims", "embed_dim", "postprocess")}
    model = create_audio_encoder("vggish", pretrained=pcfg, **fields)
    assert not model.training
    assert torch.equal(model.state_dict()["embeddings.4.weight"], weights["embeddings.4.weight"])
    bad = PretrainedCfg("audioset", url=f"{base}/w.pth", extra={**pcfg.extra, "sha256_prefix": "00000000"})
    with pytest.raises(ChecksumError, match="00000000"):
        create_audio_encoder("vggish", pretrained=bad, **fields)
    with pytest.raises(ChecksumError, match="delete"):
        check_sha256_prefix(root / "p.pth", "ffffffff")


def test_a_cached_file_failing_its_hash_prefix_is_replaced_or_deleted(http_dir):
    """A bad copy in the cache (a truncated download, a broken proxy) is deleted and fetched once
    more; if the server still sends a bad one, that is deleted too, so a later call starts over."""
    root, base = http_dir
    good = b"pretend weights " * 1000
    prefix = hashlib.sha256(good).hexdigest()[:8]
    (root / "vggish.pth").write_bytes(good[:5000])
    remote = RemoteFile(f"{base}/vggish.pth")
    with pytest.raises(ChecksumError, match="deleted"):
        _fetch(remote, prefix)
    assert sorted(p.name for p in cache_dir().iterdir()) == ["vggish.pth.lock"], "bad copy kept"

    (cache_dir() / "vggish.pth").write_bytes(good[:5000])  # left there by an older zskit
    (root / "vggish.pth").write_bytes(good)  # the server is fixed
    assert _fetch(remote, prefix).read_bytes() == good
