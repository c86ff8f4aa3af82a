"""VGGish (Hershey et al. 2017; AudioSet's embedding model) as a zskit audio encoder, ``"vggish"``.

Input: log-mel patches of 96 frames x 64 mel bands (0.96 s) from ``LogMelConfig.vggish()`` (16 kHz,
25 ms window, 10 ms hop, 125-7500 Hz, ``ln(mel + 0.01)``), cut every 96 frames without overlap. As
in VGGish's ``waveform_to_examples``, a trailing part shorter than a patch is dropped; a clip
shorter than one patch (15,600 samples) is zero-padded to one.

Network: four groups of 3x3 convolutions + ReLU, each followed by 2x2 max pooling (64, 128,
256x2, 512x2 channels), the ``(6, 4, 512)`` map flattened in TensorFlow's (height, width, channel)
order, then three fully connected layers (4096, 4096, 128). Parameter names are torchvggish's
(``features.{0,3,6,8,11,13}.*``, ``embeddings.{0,2,4}.*``), so harritaylor/torchvggish's
``vggish-10086976.pth`` loads 1:1 (:func:`load_vggish_weights`).

Two choices, documented because they differ between the releases:

- ``final_relu`` (default False): Google's VGGish has no activation on the 128-d embedding layer
  (``vggish_slim.py``, ``activation_fn=None``); torchvggish applies a ReLU there. False reproduces
  Google's embeddings (torchvggish issue #24 reports near-equality once the ReLU is removed); True
  reproduces torchvggish.
- ``postprocess`` (default False): the AudioSet release's PCA whitening (``pca_eigen_vectors``,
  ``pca_means`` from ``vggish_pca_params-970ea276.pth``), clipping to [-2, 2] and 8-bit quantisation
  to 0..255 (truncation, as Google's ``astype(np.uint8)``; torchvggish rounds instead). The values
  are returned as floats; quantisation has no gradient.

The clip embedding is the mean of the patch embeddings (after postprocessing, if on); the patch
embeddings are the ``tokens``. Patches are independent, so with ``lengths`` a padded clip gives
exactly the patch embeddings of the clip alone: patches that reach into the padding are masked.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from zskit.audio import LogMel, LogMelConfig
from zskit.data.download import ChecksumError, RemoteFile, discard, download
from zskit.encoders.base import (
    AudioEncoder,
    EncoderOutput,
    PretrainedCfg,
    check_lengths,
    check_waveforms,
)
from zskit.encoders.registry import register_audio_encoder
from zskit.encoders.weights import check_state_dict, load_state_file
from zskit.errors import ConfigError, DataError
from zskit.fileio import file_sha256

log = logging.getLogger(__name__)

__all__ = [
    "VGGISH_PCA",
    "VGGISH_PRETRAINED",
    "VGGISH_WEIGHTS",
    "Vggish",
    "VggishConfig",
    "check_sha256_prefix",
    "load_vggish_weights",
]

_RELEASE = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
#: torchvggish's port of Google's VGGish checkpoint (Apache-2.0). The file name carries the first
#: 8 hex digits of its SHA-256 (torch.hub's convention); no full digest is published.
VGGISH_WEIGHTS = RemoteFile(_RELEASE + "vggish-10086976.pth", licence="Apache-2.0")
#: The AudioSet release's PCA parameters in torchvggish's format (Apache-2.0).
VGGISH_PCA = RemoteFile(_RELEASE + "vggish_pca_params-970ea276.pth", licence="Apache-2.0")

_PCA_KEYS = ("pca_eigen_vectors", "pca_means")
_QUANTIZE_RANGE = (-2.0, 2.0)  # vggish_params.QUANTIZE_MIN_VAL / MAX_VAL
_CONVS_PER_GROUP = (1, 1, 2, 2)  # then a 2x2 max pooling after each group


@dataclass(frozen=True)
class VggishConfig:
    """VGGish's framing, widths and output options; see the module docstring."""

    sample_rate: int = 16000
    frontend: LogMelConfig = field(default_factory=LogMelConfig.vggish)
    patch_frames: int = 96  # 0.96 s
    patch_hop_frames: int = 96  # no overlap (EXAMPLE_HOP_SECONDS = 0.96)
    conv_channels: tuple[int, ...] = (64, 128, 256, 256, 512, 512)  # conv1, 2, 3_1, 3_2, 4_1, 4_2
    fc_dims: tuple[int, ...] = (4096, 4096, 128)  # fc1_1, fc1_2, fc2 (the embedding)
    embed_dim: int = 128  # = fc_dims[-1]
    final_relu: bool = False  # True: torchvggish's ReLU on the embedding (not in Google's model)
    postprocess: bool = False  # PCA whitening + 8-bit quantisation of the AudioSet release

    def __post_init__(self) -> None:
        if self.frontend.sample_rate != self.sample_rate:
            raise ConfigError(
                f"frontend sample rate {self.frontend.sample_rate} != sample_rate "
                f"{self.sample_rate}; use LogMelConfig.vggish() or change both."
            )
        if len(self.conv_channels) != sum(_CONVS_PER_GROUP) or len(self.fc_dims) != 3:
            raise ConfigError(
                f"conv_channels {self.conv_channels} needs {sum(_CONVS_PER_GROUP)} entries and "
                f"fc_dims {self.fc_dims} 3 (VGGish's layer layout); change only the widths."
            )
        if any(c < 1 for c in (*self.conv_channels, *self.fc_dims)):
            raise ConfigError(f"widths {self.conv_channels} / {self.fc_dims} must be positive.")
        if self.embed_dim != self.fc_dims[-1]:
            raise ConfigError(f"embed_dim={self.embed_dim} must equal fc_dims[-1]="
                              f"{self.fc_dims[-1]}; set both.")
        pooled = len(_CONVS_PER_GROUP)
        if min(self.patch_frames, self.frontend.n_mels) < 2**pooled:
            raise ConfigError(
                f"a {self.patch_frames} x {self.frontend.n_mels} patch is too small for "
                f"{pooled} 2x2 poolings; use at least {2**pooled} frames and mel bands."
            )
        if not 1 <= self.patch_hop_frames:
            raise ConfigError(f"patch_hop_frames={self.patch_hop_frames} must be >= 1.")

    @property
    def flat_dim(self) -> int:
        """Inputs of the first fully connected layer (12,288 = 6 x 4 x 512 for VGGish)."""
        k = 2 ** len(_CONVS_PER_GROUP)
        return (self.patch_frames // k) * (self.frontend.n_mels // k) * self.conv_channels[-1]

    @property
    def min_samples(self) -> int:
        """Samples of one patch (15,600 at 16 kHz); shorter clips are zero-padded to it."""
        fe = self.frontend
        return (self.patch_frames - 1) * fe.hop_length + fe.win

    def num_patches(self, num_samples: int) -> int:
        """Whole patches in a clip of ``num_samples`` samples (at least one)."""
        frames = self.frontend.num_frames(max(num_samples, self.min_samples))
        return 1 + (frames - self.patch_frames) // self.patch_hop_frames

    @classmethod
    def tiny(cls, **overrides: Any) -> VggishConfig:
        """A random-init VGGish-shaped toy (channels 4..16, fc 32/32/16, ~19k parameters)."""
        base = cls(conv_channels=(4, 8, 8, 8, 16, 16), fc_dims=(32, 32, 16), embed_dim=16)
        return dataclasses.replace(base, **overrides)


class Vggish(AudioEncoder):
    """VGGish: waveforms ``(B, T)`` at ``cfg.sample_rate`` -> :class:`EncoderOutput`.

    ``forward_patches`` runs log-mel patches ``(N, 1, 96, 64)`` directly (frames, then mel bands).
    """

    def __init__(self, cfg: VggishConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or VggishConfig()
        cfg = self.cfg
        self.frontend = LogMel(cfg.frontend)  # buffers only, none saved in the state dict
        layers: list[nn.Module] = []
        in_ch, widths = 1, iter(cfg.conv_channels)
        for n_convs in _CONVS_PER_GROUP:
            for _ in range(n_convs):
                out_ch = next(widths)
                layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU()]
                in_ch = out_ch
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        fc: list[nn.Module] = []
        in_dim = cfg.flat_dim
        for i, out_dim in enumerate(cfg.fc_dims):
            fc.append(nn.Linear(in_dim, out_dim))
            if i < len(cfg.fc_dims) - 1 or cfg.final_relu:
                fc.append(nn.ReLU())
            in_dim = out_dim
        self.embeddings = nn.Sequential(*fc)
        if cfg.postprocess:  # identity PCA until the release's parameters are loaded
            self.register_buffer("pca_eigen_vectors", torch.eye(cfg.embed_dim))
            self.register_buffer("pca_means", torch.zeros(cfg.embed_dim, 1))

    def patches(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log-mel patches ``(B, P, frames, mels)`` of waveforms ``(B, T)`` (see module doc)."""
        cfg = self.cfg
        n = waveforms.shape[-1]
        mel = self.frontend(F.pad(waveforms, (0, max(0, cfg.min_samples - n))))
        patches = mel.transpose(-1, -2).unfold(-2, cfg.patch_frames, cfg.patch_hop_frames)
        return patches.transpose(-1, -2)

    def forward_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, embed_dim)`` of log-mel patches ``(N, 1, F, M)`` or ``(N, F, M)``."""
        if patches.ndim == 3:
            patches = patches.unsqueeze(1)
        size = (self.cfg.patch_frames, self.cfg.frontend.n_mels)
        if patches.ndim != 4 or patches.shape[1] != 1 or tuple(patches.shape[-2:]) != size:
            raise ConfigError(
                f"patches must be (N, 1, {size[0]}, {size[1]}) or (N, {size[0]}, {size[1]}) "
                f"(frames, mels), got {tuple(patches.shape)}; build them with "
                "Vggish.patches(waveforms).flatten(0, 1) (clips x patches)."
            )
        x = self.features(patches.to(self.features[0].weight.dtype))  # the model may be bf16
        x = x.permute(0, 2, 3, 1).flatten(1)  # TensorFlow's NHWC flattening order
        x = self.embeddings(x)
        return self.quantize(x) if self.cfg.postprocess else x

    def quantize(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The AudioSet release's PCA whitening, clipping and 8-bit quantisation (floats 0..255)."""
        low, high = _QUANTIZE_RANGE
        pca = (embeddings - self.pca_means.T) @ self.pca_eigen_vectors.T
        return torch.floor((pca.clamp(low, high) - low) * (255.0 / (high - low)))

    def forward_features(self, waveforms: torch.Tensor,
                         lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Clip embedding (mean over real patches) and the patch embeddings as tokens."""
        x = check_waveforms(waveforms, self.cfg.sample_rate)
        lengths = check_lengths(lengths, x)
        patches = self.patches(x)  # (B, P, F, M)
        b, p = patches.shape[:2]
        tokens = self.forward_patches(patches.reshape(b * p, 1, *patches.shape[-2:]))
        tokens = tokens.reshape(b, p, -1)
        mask = self._patch_mask(lengths, x)
        weight = (mask.to(tokens.dtype) / mask.sum(1, keepdim=True)).unsqueeze(-1)
        return EncoderOutput(embedding=(tokens * weight).sum(1), tokens=tokens, token_mask=mask)

    def _patch_mask(self, lengths: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape
        p = self.cfg.num_patches(n)
        if lengths is None:
            return torch.ones(b, p, dtype=torch.bool, device=x.device)
        counts = torch.tensor([self.cfg.num_patches(int(k)) for k in lengths], device=x.device)
        return torch.arange(p, device=x.device)[None, :] < counts[:, None]


# ---------------------------------------------------------------------------------------------
# Weights


def _as_state(source: str | os.PathLike | Mapping[str, Any],
              what: str) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        return dict(source), f"the given {what}"
    path = Path(source).expanduser()
    if not path.is_file():
        raise ConfigError(f"VGGish {what} {str(source)!r} is not a file; pass the path of "
                          f"torchvggish's .pth or a state dict.")
    return load_state_file(path), str(path)


def load_vggish_weights(model: Vggish, weights: str | os.PathLike | Mapping[str, Any],
                        pca: str | os.PathLike | Mapping[str, Any] | None = None) -> Vggish:
    """Load torchvggish's weights (and, for ``cfg.postprocess``, its PCA file) into ``model``.

    ``weights``: ``vggish-10086976.pth`` or its state dict (``features.*``, ``embeddings.*``).
    ``pca``: ``vggish_pca_params-970ea276.pth`` or its dict (``pca_eigen_vectors`` (128, 128),
    ``pca_means`` (128,) or (128, 1)); required exactly when ``model.cfg.postprocess``. Every key
    must be mapped; missing, unexpected or mis-shaped keys raise a :class:`DataError` naming them.
    """
    state, where = _as_state(weights, "weights")
    if model.cfg.postprocess and pca is None:
        raise ConfigError("this VGGish has postprocess=True, so it needs the PCA parameters too: "
                          "pass pca=<vggish_pca_params-970ea276.pth> (VGGISH_PCA).")
    if pca is not None:
        if not model.cfg.postprocess:
            raise ConfigError("pca was given but the model has postprocess=False; create it with "
                              "postprocess=True or leave pca out.")
        pca_state, pca_where = _as_state(pca, "PCA parameters")
        clash = sorted(set(pca_state) & set(state))
        if clash:
            raise DataError(f"{pca_where} and {where} both hold {clash}; pass the weights and the "
                            "PCA parameters as two separate files.")
        where = f"{where} + {pca_where}"
        if "pca_means" in pca_state:  # torchvggish stores (128,); the model keeps a column
            pca_state["pca_means"] = torch.as_tensor(pca_state["pca_means"]).reshape(-1, 1)
        state.update(pca_state)
    state = {k: torch.as_tensor(v) for k, v in state.items()}
    own = model.state_dict()
    c = model.cfg
    check_state_dict(own, state, where,
                     f"The model is Vggish(conv_channels={c.conv_channels}, fc_dims={c.fc_dims}, "
                     f"postprocess={c.postprocess}): use VggishConfig() with torchvggish's files.")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model


def check_sha256_prefix(path: str | os.PathLike, prefix: str) -> Path:
    """Check that the SHA-256 of ``path`` starts with ``prefix`` (torch.hub's file-name hash)."""
    path = Path(path)
    digest = file_sha256(path)
    if not digest.startswith(prefix.lower()):
        raise ChecksumError(
            f"{path} has sha256 {digest}, which does not start with {prefix} as its name "
            f"promises; delete {path} and download it again."
        )
    return path


def _fetch(remote: RemoteFile, prefix: str) -> Path:
    """Download ``remote`` and check its sha256 prefix; a cached file that fails the check is
    deleted and fetched once more, so a bad copy never stays in the cache."""
    for _ in range(2):
        path = download(remote)
        digest = file_sha256(path)
        if digest.startswith(prefix.lower()):
            return path
        discard(path)
        log.warning("%s has sha256 %s, which does not start with %s; deleted it", path, digest,
                    prefix)
    raise ChecksumError(
        f"{remote.url} delivered a file whose sha256 does not start with {prefix} twice (the "
        f"last one {digest}); it was deleted. Retry later (a proxy may have served a corrupt "
        f"copy), or put a good copy at {path}."
    )


#: The torchvggish release (Google's VGGish weights, Apache-2.0).
VGGISH_PRETRAINED = PretrainedCfg(
    tag="audioset",
    url=VGGISH_WEIGHTS.url,
    filename=VGGISH_WEIGHTS.name,
    licence="Apache-2.0",
    verified="keys",
    sample_rate=16000,
    notes="Google's VGGish (YouTube-8M-style training), ported by harritaylor/torchvggish v0.1; "
          "the PCA file is fetched only for postprocess=True.",
    extra={"sha256_prefix": "10086976", "pca_url": VGGISH_PCA.url, "pca_sha256_prefix": "970ea276"},
)


@register_audio_encoder("vggish", config=VggishConfig(), tiny=VggishConfig.tiny(),
                        pretrained=[VGGISH_PRETRAINED],
                        description="VGGish: VGG on 0.96 s log-mel patches, 128-d (AudioSet)")
def _build(cfg: VggishConfig, pretrained: PretrainedCfg | None) -> Vggish:
    """VGGish, random init or with ``pretrained`` weights (the registry sets eval mode)."""
    model = Vggish(cfg)
    if pretrained is None:
        return model
    extra = pretrained.extra
    if pretrained.url is None or "sha256_prefix" not in extra:
        raise ConfigError(f"VGGish weights {pretrained.tag!r} need a url and "
                          "extra['sha256_prefix']; or load a local file with load_vggish_weights.")
    weights = RemoteFile(pretrained.url, sha256=pretrained.sha256, filename=pretrained.filename,
                         licence=pretrained.licence)
    path = _fetch(weights, extra["sha256_prefix"])
    pca = None
    if cfg.postprocess:
        pca = _fetch(RemoteFile(extra["pca_url"], licence=pretrained.licence),
                     extra["pca_sha256_prefix"])
    log.info("loading VGGish weights %s", path)
    return load_vggish_weights(model, path, pca)
