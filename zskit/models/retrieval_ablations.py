"""Audio sides for paper 4's ablations that a CPU can afford: partial fine-tuning of YAMNet, a
small PaSST trained from scratch on cached spectrograms, and segment length at inference.

A dual encoder whose audio encoder trains re-runs that encoder on every clip of every epoch. On a
CPU that is affordable only when the expensive part is computed once:

- **YAMNet, last block(s) trained** (:func:`yamnet_stems`, :class:`YamnetTop`): the frozen layers
  of YAMNet run once per 0.96 s patch and their output (the input of the last ``k`` layers) is kept
  on disk; :class:`YamnetTop` holds a copy of the last ``k`` layers and finishes the network
  exactly as YAMNet does (spatial mean, then the mean over the clip's patches), so gradients reach
  those layers while the rest stays frozen. Training uses short crops (a few patches per clip),
  evaluation every patch of the clip.
- **A small PaSST from scratch** (:func:`small_passt_config`, :func:`spectrogram_features`,
  :class:`SpectrogramPaSST`): log-mel spectrograms of whole clips are computed once; the
  transformer trains on random crops of them and embeds a clip at evaluation as the mean of its
  segments' embeddings, paper 4's answer to PaSST's fixed input length. ``segment_seconds`` can be
  changed after training, which is the segment-length ablation.

:func:`run_retrieval` trains one configuration with :func:`~zskit.models.dual_encoder.fit_dual_encoder`
and returns its test metrics with the cost (seconds, trained parameters) beside them.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zskit.audio.features import clip_features
from zskit.audio.frontends import LogMel, LogMelConfig
from zskit.audio.io import audio_info, load_audio
from zskit.audio.segments import segment
from zskit.cache import files_digest, state_dict_digest
from zskit.devices import module_device
from zskit.encoders.audio.passt import PaSST, PaSSTConfig
from zskit.errors import ConfigError, DataError
from zskit.fileio import atomic_write, load_cache_file
from zskit.models.dual_encoder import (
    DualEncoder,
    RetrievalPairs,
    count_parameters,
    evaluate_retrieval,
    fit_dual_encoder,
)
from zskit.paths import data_root
from zskit.train.config import TrainConfig

__all__ = [
    "SpectrogramPaSST",
    "YamnetTop",
    "run_retrieval",
    "small_passt_config",
    "spectrogram_features",
    "yamnet_stems",
]

_STEM_VERSION = 1  # bump when the stored layout or the computation of yamnet_stems changes


# ---------------------------------------------------------------------------------------------
# YAMNet: frozen stem computed once, last layers trained


def _split_layers(encoder: nn.Module, keep_last: int) -> tuple[list[str], list[str]]:
    names = list(getattr(encoder, "layer_names", []) or [])
    if not names or not hasattr(encoder, "patches"):
        raise ConfigError(f"{type(encoder).__name__} is not YAMNet; build it with "
                          "create_audio_encoder('yamnet', pretrained='audioset').")
    if not 1 <= keep_last < len(names):
        raise ConfigError(f"keep_last={keep_last} must lie in [1, {len(names) - 1}] (YAMNet has "
                          f"{len(names)} layers; 1 trains its last depthwise-separable block).")
    return names[:-keep_last], names[-keep_last:]


def _stem_key(encoder: nn.Module, files: Sequence[Path], keep_last: int,
              crop_patches: int | None, seed: int) -> str:
    text = (f"{_STEM_VERSION}\0{encoder.cfg!r}\0{state_dict_digest(encoder)}\0{keep_last}\0"
            f"{crop_patches}\0{seed}\0{files_digest(list(files))}")
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


@torch.no_grad()
def yamnet_stems(encoder: nn.Module, paths: Sequence[str | Path], keep_last: int = 1,
                 crop_patches: int | None = None, seed: int = 0, batch_size: int = 16,
                 cache_dir: str | Path | None = None, progress: bool = False) -> torch.Tensor:
    """YAMNet's activations before its last ``keep_last`` layers, per patch: ``(N, P, C, H, W)``
    float16 (``(N, 20, 1024, 3, 2)`` for 10 s clips and ``keep_last=1``).

    ``crop_patches``: keep only that many consecutive patches of each clip (a crop of
    ``0.96 + 0.48 * (crop_patches - 1)`` s) at a start drawn once per clip from ``seed``; only the
    crop is computed, and a clip shorter than the crop is zero-padded to it (every clip gets
    ``crop_patches`` patches, whatever else is in its batch). None: every patch (all clips must
    then give the same number of patches).
    Stored in ``cache_dir`` (default ``data_root()/cache/yamnet_stems``) under a key made of the
    encoder's config and weights, the settings and the files' paths, sizes and times.
    """
    from tqdm.auto import tqdm

    frozen, _ = _split_layers(encoder, keep_last)
    files = [Path(p).resolve() for p in paths]
    if not files:
        raise DataError("yamnet_stems got no files; pass at least one audio path.")
    if crop_patches is not None and crop_patches < 1:
        raise ConfigError(f"crop_patches={crop_patches} must be >= 1 or None (whole clips).")
    path = (Path(cache_dir or data_root() / "cache" / "yamnet_stems")
            / f"{_stem_key(encoder, files, keep_last, crop_patches, seed)}.pt")
    if path.is_file():
        return load_cache_file(path)
    cfg = encoder.cfg
    rate = int(cfg.sample_rate)
    counts = [cfg.num_patches(round(audio_info(f).duration * rate)) for f in files]
    if crop_patches is None and len(set(counts)) > 1:
        raise DataError(f"the clips give {min(counts)} to {max(counts)} YAMNet patches; pass "
                        "crop_patches (a fixed crop per clip) or clips of one length.")
    rng = np.random.default_rng(seed)
    device = module_device(encoder) or torch.device("cpu")  # where the encoder is (a GPU, say)
    was_training = encoder.training
    encoder.eval()
    parts = []
    try:
        for a in tqdm(range(0, len(files), batch_size), desc="YAMNet stems", disable=not progress):
            waves = []
            for f, n in zip(files[a:a + batch_size], counts[a:a + batch_size]):
                wave = load_audio(f, rate)
                if crop_patches is not None:
                    start = int(rng.integers(0, max(n - crop_patches, 0) + 1)) * cfg.hop_samples
                    crop = cfg.min_samples + (crop_patches - 1) * cfg.hop_samples
                    wave = nn.functional.pad(wave[start:start + crop],
                                             (0, max(crop - (wave.shape[-1] - start), 0)))
                waves.append(wave)
            longest = max(w.shape[-1] for w in waves)
            batch = torch.stack([nn.functional.pad(w, (0, longest - w.shape[-1])) for w in waves])
            patches = encoder.patches(batch.to(device))  # (B, P, frames, mels)
            b, p = patches.shape[:2]
            x = encoder.run_layers(patches.reshape(b * p, 1, *patches.shape[-2:]),
                                   stop=len(frozen))
            parts.append(x.reshape(b, p, *x.shape[1:]).half().cpu())
    finally:
        encoder.train(was_training)
    stems = torch.cat(parts)
    with atomic_write(path) as fh:
        torch.save(stems, fh)
    return stems


class YamnetTop(nn.Module):
    """The last ``keep_last`` layers of a YAMNet (a copy), over :func:`yamnet_stems` outputs.

    ``forward(stems, lengths=None)``: ``(B, P, C, H, W)`` -> clip embeddings ``(B, 1024)``, the mean
    over the P patches of YAMNet's patch embeddings (:meth:`Yamnet.pool`). With the copied weights
    unchanged the result equals YAMNet's clip embedding. Only the last ``keep_last`` layers of the
    copy can train; ``trainable=False`` freezes them too (the control of the same crops without
    fine-tuning).
    """

    def __init__(self, encoder: nn.Module, keep_last: int = 1, trainable: bool = True) -> None:
        super().__init__()
        frozen, _ = _split_layers(encoder, keep_last)
        self.yamnet = copy.deepcopy(encoder)
        self.start = len(frozen)
        for p in self.yamnet.parameters():
            p.requires_grad_(False)
        for name in self.yamnet.layer_names[self.start:]:
            for p in getattr(self.yamnet, name).parameters():
                p.requires_grad_(trainable)

    @property
    def embed_dim(self) -> int:
        """YAMNet's embedding size (1024)."""
        return int(self.yamnet.cfg.embed_dim)

    @property
    def sample_rate(self) -> int:
        """The sample rate of the audio the stems were computed from."""
        return int(self.yamnet.cfg.sample_rate)

    def forward(self, stems: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if stems.ndim != 5:
            raise ConfigError(f"expected YAMNet stems (B, P, C, H, W), got {tuple(stems.shape)}; "
                              "make them with yamnet_stems().")
        b, p = stems.shape[:2]
        weight = next(self.yamnet.parameters())
        x = self.yamnet.run_layers(stems.reshape(b * p, *stems.shape[2:]).to(weight.dtype),
                                   start=self.start)
        return self.yamnet.pool(x).reshape(b, p, -1).mean(1)


# ---------------------------------------------------------------------------------------------
# A small PaSST from scratch on cached spectrograms


def small_passt_config(clip_seconds: float = 10.0, n_mels: int = 64, hop_ms: float = 20.0,
                       embed_dim: int = 64, depth: int = 2, num_heads: int = 4,
                       patchout: tuple[int, int] = (1, 1)) -> PaSSTConfig:
    """A CPU-sized PaSST-N (16x16 patches, no overlap) whose time embedding covers
    ``clip_seconds``: PaSST's log-mel at 32 kHz with ``n_mels`` bins and a ``hop_ms`` hop, a
    ``embed_dim``-wide transformer of ``depth`` blocks, no classifier, ``patchout`` =
    (frequency rows, time columns) dropped in training."""
    hop = round(32000 * hop_ms / 1000)
    frontend = dataclasses.replace(LogMelConfig.passt(), n_mels=n_mels, hop_length=hop)
    frames = frontend.num_frames(round(clip_seconds * frontend.sample_rate))
    return PaSSTConfig(frontend=frontend, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                       frequency_stride=16, time_stride=16, input_frames=frames, num_classes=0,
                       s_patchout_f=patchout[0], s_patchout_t=patchout[1],
                       segment_seconds=clip_seconds)


def spectrogram_features(cfg: PaSSTConfig, paths: Sequence[str | Path],
                         clip_seconds: float = 10.0, cache_dir: str | Path | None = None,
                         progress: bool = False) -> torch.Tensor:
    """Log-mel spectrograms ``(N, n_mels, frames)`` float16 of the middle ``clip_seconds`` of each
    file (zero-padded when shorter), with ``cfg``'s front end; computed once and kept in
    ``cache_dir`` (default ``data_root()/cache/features``, see
    :func:`zskit.audio.features.clip_features`)."""
    feats = clip_features(list(paths), LogMel(cfg.frontend), cfg.sample_rate, clip_seconds,
                          progress=progress,
                          cache_dir=cache_dir or data_root() / "cache" / "features")
    return feats.half()


class SpectrogramPaSST(nn.Module):
    """A :class:`~zskit.encoders.audio.passt.PaSST` fed with cached spectrograms ``(B, M, T)``.

    In training each clip is cut to a random crop of ``train_seconds`` (the transformer also picks
    a random window of its time positions, as PaSST does for short inputs). In eval mode a clip is
    cut into segments of ``segment_seconds`` (the last one shorter; a tail shorter than one patch
    is dropped) and its embedding is the mean of the segments' embeddings, as paper 4 does for
    clips longer than PaSST's input. Set ``segment_seconds`` after training to compare lengths.
    """

    def __init__(self, cfg: PaSSTConfig, train_seconds: float = 2.0,
                 segment_seconds: float | None = None) -> None:
        super().__init__()
        self.encoder = PaSST(cfg)
        self.train_seconds = train_seconds
        self.segment_seconds = segment_seconds if segment_seconds is not None else train_seconds
        self.frames(train_seconds)  # validates

    @property
    def embed_dim(self) -> int:
        """The transformer's width."""
        return int(self.encoder.cfg.embed_dim)

    @property
    def sample_rate(self) -> int:
        """The sample rate of the audio the spectrograms were computed from."""
        return int(self.encoder.cfg.sample_rate)

    def frames(self, seconds: float) -> int:
        """Spectrogram frames of ``seconds`` of audio (at least one patch, at most the time
        embedding's span)."""
        cfg = self.encoder.cfg
        frames = round(seconds * cfg.sample_rate / cfg.frontend.hop_length)
        if not cfg.patch_size <= frames <= cfg.input_frames:
            raise ConfigError(f"{seconds} s is {frames} frames; this PaSST takes "
                              f"{cfg.patch_size} to {cfg.input_frames} frames (about "
                              f"{cfg.input_frames * cfg.frontend.hop_length / cfg.sample_rate:.1f}"
                              " s): choose a length in that range.")
        return frames

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        length = min(self.frames(self.train_seconds), x.shape[-1])
        starts = torch.randint(0, x.shape[-1] - length + 1, (x.shape[0],))
        return torch.stack([clip[..., s:s + length] for clip, s in zip(x, starts.tolist())])

    def forward(self, spec: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if spec.ndim != 3 or spec.shape[1] != self.encoder.cfg.frontend.n_mels:
            raise ConfigError(f"expected spectrograms (B, {self.encoder.cfg.frontend.n_mels}, "
                              f"frames), got {tuple(spec.shape)}; make them with "
                              "spectrogram_features().")
        x = spec.float()
        if self.training:
            return self.encoder.forward_spectrogram(self._crop(x)).embedding
        length = self.frames(self.segment_seconds)
        segs, valid = segment(x, length)  # (B, M, S, L), (S,)
        keep = [i for i, v in enumerate(valid.tolist()) if v >= self.encoder.cfg.patch_size or
                i == 0]
        emb = [self.encoder.forward_spectrogram(segs[:, :, i, :int(valid[i])]).embedding
               for i in keep]
        return torch.stack(emb).mean(0)


# ---------------------------------------------------------------------------------------------
# One configuration: train, evaluate, cost


def run_retrieval(model: DualEncoder, train: RetrievalPairs, val: RetrievalPairs | None,
                  test: RetrievalPairs, config: TrainConfig, *, items_per_epoch: int | None = None,
                  **fit_kwargs: Any) -> dict[str, Any]:
    """Train ``model`` (:func:`~zskit.models.dual_encoder.fit_dual_encoder`) and score it on
    ``test`` in both directions.

    Returns ``metrics`` (as :func:`~zskit.models.dual_encoder.evaluate_retrieval`), ``best_epoch``,
    ``seconds`` (training, validation included), ``trained_parameters`` (trainable when the run
    started), ``epochs`` and ``history`` (fit's table). ``fit_kwargs`` go to ``fit`` (e.g.
    ``param_groups``).
    """
    trained = count_parameters(model)
    t0 = time.perf_counter()
    result = fit_dual_encoder(model, train, val, config, items_per_epoch=items_per_epoch,
                              **fit_kwargs)
    seconds = time.perf_counter() - t0
    return {"metrics": evaluate_retrieval(model, test), "best_epoch": result.best_epoch,
            "seconds": seconds, "trained_parameters": trained, "epochs": config.max_epochs,
            "history": result.history}
