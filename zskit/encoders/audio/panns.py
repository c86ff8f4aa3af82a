"""PANNs CNN10 and CNN14 (Kong et al. 2020, AudioSet, 527 classes) as zskit audio encoders.

Registered names, one per official checkpoint (each has the weight set ``"audioset"``):

- ``"cnn14"``: 32 kHz, six conv blocks (64..2048 channels), 2048-d embedding, mAP 0.431.
- ``"cnn14_16k"``: the same network on a 16 kHz front end (window 512, hop 160, 64 mels
  50-8000 Hz), mAP 0.438 (trained by a later code version than the paper's).
- ``"cnn10"``: 32 kHz, four conv blocks (64..512 channels), 512-d embedding, mAP 0.380.

Architecture (``pytorch/models.py`` of qiuqiangkong/audioset_tagging_cnn): log-mel ``(B, 1, T, 64)``
-> ``bn0`` (batch norm over the 64 mel bins) -> conv blocks (two 3x3 convolutions without bias, each
followed by batch norm and ReLU; then 2x2 average pooling, none after CNN14's sixth block; dropout
0.2) -> mean over frequency -> max + mean over time -> dropout 0.5 -> ``fc1`` + ReLU (PANNs'
"embedding") -> ``fc_audioset``. ``forward_features`` returns that embedding, the frame features
before time pooling as ``tokens`` ``(B, T', C)`` and the ``fc_audioset`` logits (apply a sigmoid
for PANNs' ``clipwise_output``). SpecAugment and mixup of PANNs' training are not part of the
encoder (see ``zskit.audio.augment``).

Parameter names are the official ones (``bn0.*``, ``conv_block1.conv1.weight``,
``conv_block1.bn1.*``, ..., ``fc1.*``, ``fc_audioset.*``), so an official checkpoint loads 1:1
(:func:`load_panns_weights`). The checkpoints also hold torchlibrosa's STFT kernels and mel matrix;
zskit's ``LogMelConfig.cnn14()`` / ``.cnn14_16k()`` replace them (same settings: periodic Hann,
reflect-centred, power spectrum, librosa's Slaney mel filters, ``power_to_db`` with ref 1,
amin 1e-10, no top_db), and the loader checks the checkpoint's mel matrix against zskit's before dropping it.

Padding: with ``lengths``, each clip's log-mel is computed on its own real samples, every
convolution input is zeroed beyond the clip's valid frames (as the convolution's own zero padding
would be for the clip alone), and time pooling covers valid frames only. In eval mode a padded
clip therefore gives the same outputs as the clip alone (up to float rounding). In training mode the
batch norms use batch statistics, which padded frames do change. Clips shorter than
``cfg.min_samples`` are zero-padded to it (five 2x time poolings need 32 frames, 0.31 s).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from zskit.audio import LogMel, LogMelConfig, mel_filterbank
from zskit.data.download import RemoteFile, download
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

log = logging.getLogger(__name__)

__all__ = [
    "PANNS_PRETRAINED",
    "PannsCnn",
    "PannsConfig",
    "load_panns_weights",
    "remote_file",
]

# torchlibrosa's front-end tensors inside the official checkpoints. They are dropped on purpose:
# zskit's LogMel (LogMelConfig.cnn14 / cnn14_16k) computes the same log-mel; the loader checks the
# mel matrix against zskit's filter bank and the STFT kernels' shape against the window size.
_STFT_KEYS = ("spectrogram_extractor.stft.conv_real.weight",
              "spectrogram_extractor.stft.conv_imag.weight")
_MEL_KEY = "logmel_extractor.melW"
_ZENODO = "https://zenodo.org/record/3987831/files/"
_LICENCE = "CC-BY-4.0"  # Zenodo record 3987831


@dataclass(frozen=True)
class PannsConfig:
    """A PANNs CNN: front end, conv block widths and pooling, sizes; see the module docstring."""

    sample_rate: int = 32000
    frontend: LogMelConfig = field(default_factory=LogMelConfig.cnn14)
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)  # output channels of each block
    pools: tuple[int, ...] = (2, 2, 2, 2, 2, 1)  # average pooling (time and mel) after each block
    embed_dim: int = 2048  # width of fc1, PANNs' "embedding"
    num_classes: int = 527  # fc_audioset outputs (AudioSet)
    conv_dropout: float = 0.2  # after each block (training only)
    fc_dropout: float = 0.5  # before fc1 and on the embedding (training only)

    def __post_init__(self) -> None:
        if self.frontend.sample_rate != self.sample_rate:
            raise ConfigError(
                f"frontend sample rate {self.frontend.sample_rate} != sample_rate "
                f"{self.sample_rate}; use LogMelConfig.cnn14() (32 kHz) or .cnn14_16k() (16 kHz)."
            )
        if not self.channels or len(self.channels) != len(self.pools):
            raise ConfigError(
                f"channels {self.channels} and pools {self.pools} must be non-empty and of equal "
                "length (one entry per conv block)."
            )
        for name, values in (("channels", self.channels), ("pools", self.pools)):
            if any(int(v) < 1 for v in values):
                raise ConfigError(f"{name}={values} must hold positive integers.")
        if self.frontend.n_mels < self.reduction:
            raise ConfigError(
                f"{self.frontend.n_mels} mel bins cannot be pooled {len(self.pools)} times by "
                f"{self.pools}; use fewer/smaller pools or more mel bins."
            )
        for name in ("embed_dim", "num_classes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1.")
        for name in ("conv_dropout", "fc_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name}={getattr(self, name)} must lie in [0, 1).")

    @property
    def reduction(self) -> int:
        """Total pooling factor along time (and mel bins)."""
        return math.prod(self.pools)

    @property
    def min_samples(self) -> int:
        """Shortest input: samples for ``reduction`` frames (shorter clips are zero-padded)."""
        fe = self.frontend
        return max((self.reduction - 1) * fe.hop_length, fe.n_fft // 2 + 1)

    @classmethod
    def cnn14(cls) -> PannsConfig:
        """CNN14 at 32 kHz (``Cnn14_mAP=0.431.pth``)."""
        return cls()

    @classmethod
    def cnn14_16k(cls) -> PannsConfig:
        """CNN14 at 16 kHz (``Cnn14_16k_mAP=0.438.pth``)."""
        return cls(sample_rate=16000, frontend=LogMelConfig.cnn14_16k())

    @classmethod
    def cnn10(cls) -> PannsConfig:
        """CNN10 at 32 kHz (``Cnn10_mAP=0.380.pth``)."""
        return cls(channels=(64, 128, 256, 512), pools=(2, 2, 2, 2), embed_dim=512)

    @classmethod
    def tiny(cls, **overrides: Any) -> PannsConfig:
        """A random-init CNN14-shaped toy (16 kHz, blocks of 4/8/16 channels, ~5k parameters)."""
        base = cls(sample_rate=16000, frontend=LogMelConfig.cnn14_16k(), channels=(4, 8, 16),
                   pools=(2, 2, 1), embed_dim=16, num_classes=5)
        return dataclasses.replace(base, **overrides)


class ConvBlock(nn.Module):
    """Two 3x3 convolutions (no bias), each with batch norm and ReLU (PANNs' ``ConvBlock``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, C, T, M)``; ``mask`` ``(B, 1, T, 1)`` zeroes frames beyond each clip."""
        if mask is not None:
            x = x * mask
        x = F.relu(self.bn1(self.conv1(x)))
        if mask is not None:
            x = x * mask
        return F.relu(self.bn2(self.conv2(x)))


class PannsCnn(AudioEncoder):
    """PANNs CNN10/CNN14: waveforms ``(B, T)`` at ``cfg.sample_rate`` -> :class:`EncoderOutput`."""

    def __init__(self, cfg: PannsConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or PannsConfig()
        self.frontend = LogMel(self.cfg.frontend)  # buffers only, none saved in the state dict
        self.bn0 = nn.BatchNorm2d(self.cfg.frontend.n_mels)
        in_ch = 1
        for i, out_ch in enumerate(self.cfg.channels):
            self.add_module(f"conv_block{i + 1}", ConvBlock(in_ch, out_ch))
            in_ch = out_ch
        self.fc1 = nn.Linear(in_ch, self.cfg.embed_dim)
        self.fc_audioset = nn.Linear(self.cfg.embed_dim, self.cfg.num_classes)
        self.reset_parameters()

    @property
    def blocks(self) -> list[ConvBlock]:
        """The conv blocks in order."""
        return [getattr(self, f"conv_block{i + 1}") for i in range(len(self.cfg.channels))]

    def reset_parameters(self) -> None:
        """PANNs' initialisation: Xavier-uniform weights, zero biases, unit batch norms."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()

    def logmel(self, waveforms: torch.Tensor,
               lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-mel ``(B, T, n_mels)`` and, with ``lengths``, each clip's frame count ``(B,)``."""
        min_n = self.cfg.min_samples
        if lengths is None:
            n = waveforms.shape[-1]
            return self.frontend(F.pad(waveforms, (0, max(0, min_n - n)))).transpose(1, 2), None
        # each clip on its own, so the reflect padding at its end is that of the clip alone
        mels = [self.frontend(F.pad(clip[:k], (0, max(0, min_n - k)))).transpose(0, 1)
                for clip, k in zip(waveforms, lengths.tolist())]
        frames = torch.tensor([m.shape[0] for m in mels], device=waveforms.device)
        return nn.utils.rnn.pad_sequence(mels, batch_first=True), frames

    def forward_features(self, waveforms: torch.Tensor,
                         lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Embedding ``(B, embed_dim)``, frame tokens ``(B, T', C)`` with their mask, and logits."""
        cfg = self.cfg
        x = check_waveforms(waveforms, cfg.sample_rate)
        lengths = check_lengths(lengths, x)
        if lengths is not None and bool((lengths == x.shape[-1]).all()):
            lengths = None  # nothing is padded: the faster batched path gives the same result
        mel, frames = self.logmel(x, lengths)
        mel = mel.to(self.bn0.weight.dtype)  # float32 front end, model maybe bfloat16 / half
        x = self.bn0(mel.unsqueeze(1).transpose(1, 3)).transpose(1, 3)  # bn0 over mel bins
        for block, pool in zip(self.blocks, cfg.pools):
            mask = _frame_mask(frames, x)
            x = block(x, mask)
            if pool > 1:
                x = F.avg_pool2d(x, pool)
                frames = None if frames is None else frames // pool
            x = F.dropout(x, cfg.conv_dropout, self.training)
        tokens = x.mean(dim=3).transpose(1, 2)  # (B, T', C)
        if frames is None:
            token_mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
            pooled = tokens.amax(dim=1) + tokens.mean(dim=1)
        else:
            token_mask = torch.arange(tokens.shape[1], device=tokens.device) < frames[:, None]
            valid = token_mask.unsqueeze(-1)
            peak = tokens.masked_fill(~valid, float("-inf")).amax(dim=1)
            mean = (tokens * valid).sum(dim=1) / frames[:, None].to(tokens.dtype)
            pooled = peak + mean
        hidden = F.relu(self.fc1(F.dropout(pooled, cfg.fc_dropout, self.training)))
        return EncoderOutput(
            embedding=F.dropout(hidden, cfg.fc_dropout, self.training),
            tokens=tokens,
            token_mask=token_mask,
            logits=self.fc_audioset(hidden),
        )


def _frame_mask(frames: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """``(B, 1, T, 1)`` mask of each clip's valid frames, in ``x``'s dtype (None: all valid)."""
    if frames is None:
        return None
    t = torch.arange(x.shape[2], device=x.device)
    return (t[None, :] < frames[:, None].to(x.device)).to(x.dtype)[:, None, :, None]


# ---------------------------------------------------------------------------------------------
# Official checkpoints


def _state_dict_of(source: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        obj, where = source, "the given state dict"
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(f"PANNs checkpoint {str(source)!r} is not a file; pass the path of "
                              "an official .pth (e.g. Cnn14_mAP=0.431.pth) or a state dict.")
        obj, where = load_state_file(path), str(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]  # official: {"iteration", "model", "sampler"}
    if not isinstance(obj, Mapping):
        raise DataError(f"{where} holds a {type(obj).__name__}, not a state dict; pass an official "
                        "PANNs checkpoint or torch.save(model.state_dict(), path).")
    return dict(obj), where


def _check_frontend(state: dict[str, Any], cfg: PannsConfig, where: str) -> None:
    """Check the checkpoint's torchlibrosa tensors against ``cfg.frontend`` (before dropping them)."""
    fe = cfg.frontend
    n_freqs = fe.n_fft // 2 + 1
    for key in _STFT_KEYS:
        if key in state and tuple(state[key].shape) != (n_freqs, 1, fe.n_fft):
            raise DataError(
                f"{where}: {key} has shape {tuple(state[key].shape)}, i.e. a window of "
                f"{state[key].shape[-1]} samples, but cfg.frontend uses n_fft={fe.n_fft}; these "
                "weights belong to another front end (cnn14 is 32 kHz, cnn14_16k 16 kHz)."
            )
    if _MEL_KEY in state:
        theirs = torch.as_tensor(state[_MEL_KEY], dtype=torch.float32)
        ours = mel_filterbank(fe)
        if theirs.shape != ours.shape or not torch.allclose(theirs, ours, rtol=1e-3,
                                                            atol=1e-4 * float(ours.max())):
            raise DataError(
                f"{where}: the checkpoint's mel matrix {_MEL_KEY} {tuple(theirs.shape)} differs "
                f"from zskit's filter bank for cfg.frontend ({fe.sample_rate} Hz, n_fft {fe.n_fft}, "
                f"{fe.n_mels} mels {fe.f_min}-{fe.fmax} Hz); use the registered config of these "
                "weights (cnn14, cnn14_16k or cnn10)."
            )


def load_panns_weights(model: PannsCnn,
                       source: str | os.PathLike | Mapping[str, Any]) -> PannsCnn:
    """Load an official PANNs checkpoint (path, or its dict) into ``model`` in place; return it.

    Every parameter and buffer must be mapped: missing, unexpected or mis-shaped keys raise a
    :class:`DataError` listing them. torchlibrosa's ``spectrogram_extractor.*`` and
    ``logmel_extractor.melW`` are checked against ``model.cfg.frontend`` and dropped.
    """
    state, where = _state_dict_of(source)
    _check_frontend(state, model.cfg, where)
    for key in (*_STFT_KEYS, _MEL_KEY):
        state.pop(key, None)  # replaced by zskit's LogMel (checked just above)
    state = {k: torch.as_tensor(v) for k, v in state.items()}
    own = model.state_dict()
    c = model.cfg
    check_state_dict(own, state, where,
                     f"The model is PannsCnn(channels={c.channels}, embed_dim={c.embed_dim}, "
                     f"num_classes={c.num_classes}): create the encoder whose checkpoint this is "
                     "(cnn10, cnn14 or cnn14_16k).")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model


def remote_file(pretrained: PretrainedCfg) -> RemoteFile:
    """The verified download of a PANNs weight set (md5 from the Zenodo record)."""
    if pretrained.url is None:
        raise ConfigError(f"pretrained weights {pretrained.tag!r} have no URL; pass a local "
                          "checkpoint to load_panns_weights instead.")
    return RemoteFile(pretrained.url, sha256=pretrained.sha256, md5=pretrained.extra.get("md5"),
                      filename=pretrained.filename, size=pretrained.extra.get("size"),
                      licence=pretrained.licence)


def _pretrained(filename: str, md5: str, size: int | None, sample_rate: int,
                notes: str) -> PretrainedCfg:
    return PretrainedCfg(
        tag="audioset",
        url=_ZENODO + filename.replace("=", "%3D") + "?download=1",
        filename=filename,
        licence=_LICENCE,
        verified="keys",
        sample_rate=sample_rate,
        num_classes=527,
        notes=notes,
        extra={"md5": md5, "size": size, "record": "https://zenodo.org/record/3987831"},
    )


#: The official checkpoints (Zenodo record 3987831; md5 as listed there).
PANNS_PRETRAINED: dict[str, PretrainedCfg] = {
    "cnn14": _pretrained("Cnn14_mAP=0.431.pth", "541141fa2ee191a88f24a3219fff024e", 327_428_481,
                         32000, "AudioSet mAP 0.431 (PANNs paper)."),
    "cnn14_16k": _pretrained("Cnn14_16k_mAP=0.438.pth", "362fc5ff18f1d6ad2f6d464b45893f2c", None,
                             16000, "AudioSet mAP 0.438; trained by a later code version than the "
                                    "paper's (audioset_tagging_cnn README)."),
    "cnn10": _pretrained("Cnn10_mAP=0.380.pth", "bfb1f1f9968938fa8ef4012b8471f5f6", 25_237_595,
                         32000, "AudioSet mAP 0.380 (PANNs paper)."),
}


def _build(cfg: PannsConfig, pretrained: PretrainedCfg | None) -> PannsCnn:
    model = PannsCnn(cfg)
    if pretrained is not None:
        path = download(remote_file(pretrained))
        log.info("loading PANNs weights %s", path)
        load_panns_weights(model, path)
    return model


for _name, _cfg, _what in (
    ("cnn14", PannsConfig.cnn14(), "PANNs CNN14 (32 kHz, 2048-d, AudioSet mAP 0.431)"),
    ("cnn14_16k", PannsConfig.cnn14_16k(), "PANNs CNN14 at 16 kHz (2048-d, AudioSet mAP 0.438)"),
    ("cnn10", PannsConfig.cnn10(), "PANNs CNN10 (32 kHz, 512-d, AudioSet mAP 0.380)"),
):
    register_audio_encoder(_name, config=_cfg, tiny=PannsConfig.tiny(),
                           pretrained=[PANNS_PRETRAINED[_name]], description=_what)(_build)
