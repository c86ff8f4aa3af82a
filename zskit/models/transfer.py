"""Transfer learning for retrieval from spectrogram images (paper 5), sized for a CPU.

Paper 5 trains a CLIP-style dual encoder whose audio side is an ImageNet model (ResNet-50, ViT-B/16)
or an AudioSet one (PANN CNN14) on linear spectrograms of clips centred in 40 s of silence, the
spectrogram stacked on the three input channels (all done by the image encoders of
:mod:`zskit.encoders.audio.image_backbones`). It compares training only the projections with also
training the last two blocks, and augments spectrograms with SpecAugment masking and time
stretching. What this module adds for that comparison:

- :func:`spectrogram_images`: each clip's normalised spectrogram image, computed once and kept
  on disk (the short-time Fourier transform of 40 s at 32 kHz is a large share of the cost on a
  CPU, and every run of a comparison needs the same images);
- :class:`ImageAugment`: paper 5's spectrogram augmentation (frequency and time masks, time
  stretch), active in training mode only;
- :class:`ImageInputEncoder`: an image encoder that takes those cached images instead of
  waveforms, with the augmentation in front, for :class:`~zskit.models.dual_encoder.DualEncoder`;
- :func:`embed_images`: the clip embeddings of a frozen image encoder from the cached images;
- :func:`calibrate_batch_norm`: batch-norm statistics estimated on the training images, for a
  randomly initialised encoder used frozen (its initial statistics describe no data);
- :func:`partial_finetune`: freeze all but the last ``k`` blocks (paper 5: two), keeping frozen
  what feeds only the ImageNet classifier;
- :func:`tied_rankings`: the share of captions whose relevant clip ties with another clip, the
  mark of an audio side that maps every clip to the same point;
- :class:`MemoEncode`: a frozen text encoder's ``encode`` that remembers every caption it has
  embedded, so paper 5's on-the-fly text noise (20% of a batch) costs one encoder call per new
  caption, not one per caption per epoch;
- :class:`EpochCost`: a ``fit`` callback measuring seconds per training epoch net of the text
  encoder's time on new captions, after a warm-up epoch, for the cost side of the comparison;
- :func:`subset_rows`: a fixed-size subset of a corpus, kept in proportion per split.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from zskit.audio.augment import SpecAugment
from zskit.audio.io import load_audio
from zskit.audio.segments import pad_batch
from zskit.cache import files_digest
from zskit.devices import module_device
from zskit.errors import ConfigError, DataError
from zskit.fileio import atomic_write, load_cache_file
from zskit.models.dual_encoder import (
    DualEncoder,
    RetrievalPairs,
    encoder_blocks,
    frozen_parts_to_eval,
    unfreeze_last_blocks,
)
from zskit.paths import data_root

__all__ = [
    "EpochCost",
    "ImageAugment",
    "ImageInputEncoder",
    "MemoEncode",
    "calibrate_batch_norm",
    "embed_images",
    "partial_finetune",
    "spectrogram_images",
    "subset_rows",
    "tied_rankings",
]


def _image_encoder(encoder: Any) -> Any:
    if not (hasattr(encoder, "image") and hasattr(encoder, "forward_image")):
        raise ConfigError(f"{type(encoder).__name__} is not a spectrogram-image encoder; use "
                          "create_audio_encoder('efficientnet_lite0' | 'resnet50' | 'vit_b16').")
    return encoder


@torch.no_grad()
def spectrogram_images(encoder: nn.Module, paths: Sequence[str | os.PathLike], *,
                       batch_size: int = 8, cache_dir: str | os.PathLike | None = None,
                       progress: bool = True) -> torch.Tensor:
    """The images ``(N, 1, H, W)`` (float16) that ``encoder`` makes of the audio files ``paths``.

    Stored in ``cache_dir`` (default ``data_root()/cache/images``) under a key made of the
    encoder's config (front end, padding, image size) and the files' paths, sizes and modification
    times; a later call with the same key loads them instead.
    """
    encoder = _image_encoder(encoder)
    files = [Path(p).resolve() for p in paths]
    if not files:
        raise DataError("no audio files given; pass at least one path.")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be >= 1.")
    key = hashlib.blake2b(f"{encoder.cfg!r}\0{files_digest(files)}".encode(),
                          digest_size=12).hexdigest()
    path = Path(cache_dir or data_root() / "cache" / "images") / f"{key}.pt"
    if path.is_file():
        return load_cache_file(path)
    rate = int(encoder.sample_rate)
    device = module_device(encoder) or torch.device("cpu")
    parts = []
    for start in tqdm(range(0, len(files), batch_size), desc="spectrogram images",
                      disable=not progress):
        waves, mask = pad_batch([load_audio(f, rate) for f in files[start:start + batch_size]])
        parts.append(encoder.image(waves.to(device), mask.sum(1).to(device)).half().cpu())
    images = torch.cat(parts)
    with atomic_write(path) as fh:
        torch.save(images, fh)
    return images


class ImageAugment(nn.Module):
    """Paper 5's spectrogram augmentation on images ``(B, 1, H, W)``, in training mode only.

    A random time stretch (each image resampled along time by a factor drawn uniformly from
    ``stretch``, then centre-cropped or padded back to ``W``: faster audio is narrower), then
    SpecAugment's frequency and time masks (widths up to ``freq_mask`` and ``time_mask`` as
    fractions of ``H`` and ``W``). Padding and masks fill with each image's minimum: the images are
    of clips centred in silence, and silence is the lowest value of a spectrogram image (about
    -0.37 after standardisation to mean 0 and std 1, not 0), so what the augmentation adds looks
    like silence.
    """

    def __init__(self, freq_mask: float = 0.15, time_mask: float = 0.15,
                 stretch: tuple[float, float] = (0.8, 1.25)) -> None:
        super().__init__()
        for name, value in (("freq_mask", freq_mask), ("time_mask", time_mask)):
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name}={value} must lie in [0, 1) (a fraction of the image).")
        low, high = stretch
        if not 0.0 < low <= high:
            raise ConfigError(f"stretch={stretch} must be (low, high) with 0 < low <= high; "
                              "(1, 1) turns it off.")
        self.freq_mask, self.time_mask, self.stretch = freq_mask, time_mask, (low, high)

    def _stretch(self, images: torch.Tensor) -> torch.Tensor:
        low, high = self.stretch
        if low == high == 1.0:
            return images
        width = images.shape[-1]
        out = []
        for image, rate in zip(images, torch.empty(len(images)).uniform_(low, high).tolist()):
            new = max(1, round(width * rate))
            x = F.interpolate(image[None], size=(image.shape[-2], new), mode="bilinear",
                              align_corners=False)[0]
            if new >= width:
                left = (new - width) // 2
                out.append(x[..., left:left + width])
                continue
            # padded with the image's minimum, kept a tensor: F.pad's value would be read from a
            # GPU, making every step wait for it
            left, fill, rows = (width - new) // 2, image.amin(), x.shape[:-1]
            out.append(torch.cat((fill.expand(*rows, left), x,
                                  fill.expand(*rows, width - new - left)), dim=-1))
        return torch.stack(out)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return images
        x = self._stretch(images)
        masks = SpecAugment(freq_mask_param=int(self.freq_mask * x.shape[-2]),
                            time_mask_param=int(self.time_mask * x.shape[-1]))
        keep = masks(torch.ones_like(x)).bool()  # SpecAugment fills with 0: where it masks
        return torch.where(keep, x, x.amin(dim=(1, 2, 3), keepdim=True))


class ImageInputEncoder(nn.Module):
    """A spectrogram-image encoder fed with cached images ``(B, 1, H, W)`` instead of waveforms.

    ``forward(images, lengths=None)`` returns clip embeddings ``(B, embed_dim)``; ``augment``
    (e.g. :class:`ImageAugment`) runs first, in training mode. The wrapped ``encoder`` is
    ``self.encoder`` (freeze or unfreeze its blocks there). In training mode, every submodule
    whose parameters are all frozen stays in eval mode: frozen layers compute what they were
    trained (or initialised) to compute, so their batch norms keep their statistics and their
    stochastic parts stay off (EfficientNet-Lite's blocks drop their residual branch at random in
    training mode: a frozen block would only add noise to what the trainable layers see).
    """

    def __init__(self, encoder: nn.Module, augment: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = _image_encoder(encoder)
        self.augment = augment if augment is not None else nn.Identity()

    @property
    def embed_dim(self) -> int:
        """The wrapped encoder's embedding size."""
        return int(self.encoder.embed_dim)

    @property
    def sample_rate(self) -> int:
        """The wrapped encoder's sample rate (of the audio the images were made from)."""
        return int(self.encoder.sample_rate)

    def train(self, mode: bool = True) -> ImageInputEncoder:
        """Set training mode; submodules whose parameters are all frozen stay in eval mode."""
        super().train(mode)
        frozen_parts_to_eval(self.encoder)
        return self

    def forward(self, images: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 1:
            raise ConfigError(f"expected spectrogram images (B, 1, H, W), got "
                              f"{tuple(images.shape)}; make them with spectrogram_images().")
        weight = next(self.encoder.parameters())
        return self.encoder.forward_image(self.augment(images.to(weight.dtype))).embedding


@torch.no_grad()
def embed_images(encoder: nn.Module, images: torch.Tensor, batch_size: int = 32,
                 progress: bool = False) -> torch.Tensor:
    """Clip embeddings ``(N, embed_dim)`` of a frozen image encoder on cached images, eval mode."""
    encoder = _image_encoder(encoder)
    device = module_device(encoder) or torch.device("cpu")
    was_training = encoder.training
    encoder.eval()
    try:
        out = [encoder.forward_image(images[a:a + batch_size].to(device, torch.float32))
               .embedding.float().cpu()
               for a in tqdm(range(0, len(images), batch_size), desc="image embeddings",
                             disable=not progress)]
    finally:
        encoder.train(was_training)
    return torch.cat(out).float()


@torch.no_grad()
def calibrate_batch_norm(encoder: nn.Module, images: torch.Tensor, batch_size: int = 32) -> int:
    """Set the running statistics of ``encoder``'s batch norms to those of ``images``; returns
    how many batch norms it set. For a randomly initialised encoder, before it is used frozen.

    Why: in eval mode a batch norm applies its running statistics, and a freshly initialised one
    holds placeholders (mean 0, variance 1) that describe no data. With them a random
    EfficientNet-Lite0 shrinks its input at every layer (PyTorch's default initialisation keeps
    about a third of the variance per convolution): its embeddings come out about 1e-7 in size and
    nearly parallel, a trained projection maps every clip to the same vector (its bias dominates),
    and the rankings are ties, which retrieval metrics break against the relevant item. Here each
    batch norm gets the plain average of its batch statistics over ``images`` (batches of
    ``batch_size``), the other layers staying in eval mode: what
    ``torch.optim.swa_utils.update_bn`` does, except that it puts the whole model in training mode,
    which would also switch on EfficientNet's stochastic depth. Pass training images only.
    """
    encoder = _image_encoder(encoder)
    if batch_size < 2:
        raise ConfigError(f"batch_size={batch_size} must be >= 2 (batch statistics of one image "
                          "are degenerate).")
    if len(images) < 2:
        raise DataError(f"{len(images)} image(s) given; batch statistics need at least 2.")
    layers = [m for m in encoder.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    modes = {m: m.training for m in encoder.modules()}
    momenta = {m: m.momentum for m in layers}
    device = module_device(encoder) or torch.device("cpu")
    encoder.eval()
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches
            m.train()
        for a in range(0, len(images), batch_size):
            # a last batch of one image is taken with the image before it
            chunk = images[a:a + batch_size] if len(images) - a > 1 else images[a - 1:]
            encoder.forward_image(chunk.to(device, torch.float32))
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        for m, mode in modes.items():
            m.training = mode
    return len(layers)


def tied_rankings(model: DualEncoder, pairs: RetrievalPairs) -> float:
    """The share of ``pairs``' captions whose relevant clip scores exactly as an irrelevant one.

    Retrieval metrics rank an irrelevant item tied with the relevant one above it
    (:func:`zskit.metrics.retrieval_per_query`), so an audio side that gives every clip the same
    embedding scores *below* a random ranking instead of at it. A share above a few percent means
    the rankings, and the metrics, say more about ties than about the model.
    """
    audio = model.embed_audio(pairs.audio, max_seconds=pairs.max_seconds).numpy()
    scores = model.embed_text(pairs.caption_inputs()).numpy() @ audio.T
    relevant = pairs.relevance()
    best = np.max(scores, axis=1, where=relevant, initial=-np.inf)
    return float(((scores == best[:, None]) & ~relevant).any(axis=1).mean())


def partial_finetune(encoder: nn.Module, k: int) -> list[str]:
    """Freeze ``encoder`` except the last ``k`` blocks that feed its embedding and what follows
    them (paper 5: k = 2). Returns the trainable names.

    Call it on an encoder as created: parameters it froze itself (those that feed only the ImageNet
    classifier's logits, which get no gradient from the embedding) stay frozen, and blocks made
    only of those are not counted (a 4-layer ViT embedding layer 1 trains layers 0 and 1, not the
    logit-only 2 and 3). Raises :class:`ConfigError` if ``k > 0`` would train nothing.
    """
    fixed_ids = {id(p) for p in encoder.parameters() if not p.requires_grad}
    blocks = encoder_blocks(encoder)
    logit_only = 0  # trailing blocks that feed only the logits
    while logit_only < len(blocks) and all(id(p) in fixed_ids
                                           for p in blocks[-1 - logit_only].parameters()):
        logit_only += 1
    names = set(unfreeze_last_blocks(encoder, k + logit_only if k > 0 else k))
    trainable = []
    for n, p in encoder.named_parameters():
        if id(p) in fixed_ids:
            p.requires_grad_(False)
        elif n in names:
            trainable.append(n)
    if k > 0 and not trainable:
        raise ConfigError(f"partial_finetune(k={k}) leaves nothing to train: every parameter of "
                          f"{type(encoder).__name__} feeds only its logits. Train the "
                          "projections only (k=0) or use another encoder.")
    return trainable


class MemoEncode:
    """A frozen text encoder's ``encode`` that remembers each caption's embedding.

    ``MemoEncode(text.encode)(captions)`` returns ``(len(captions), D)`` float32 on the CPU,
    computing only the captions it has not seen (``misses`` counts them, ``seconds`` adds up the
    time spent in the encoder). With paper 5's text noise most captions of a batch are unchanged,
    so after the first epoch few calls reach the encoder.
    """

    def __init__(self, encode: Callable[[list[str]], Any], batch_size: int = 256) -> None:
        self.encode, self.batch_size = encode, batch_size
        self.memory: dict[str, torch.Tensor] = {}
        self.misses = 0
        self.seconds = 0.0

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        texts = list(texts)
        new = list(dict.fromkeys(t for t in texts if t not in self.memory))
        for a in range(0, len(new), self.batch_size):
            chunk = new[a:a + self.batch_size]
            start = time.perf_counter()
            emb = torch.as_tensor(self.encode(chunk)).float().cpu()
            self.seconds += time.perf_counter() - start
            self.memory.update(zip(chunk, emb))
            self.misses += len(chunk)
        if not texts:
            raise ConfigError("no texts to encode; pass at least one caption.")
        return torch.stack([self.memory[t] for t in texts])


class EpochCost:
    """A ``fit`` callback: seconds per training epoch, net of the time ``memo`` (a
    :class:`MemoEncode`) spent embedding captions it had not seen, the first epoch left out.

    The first epoch of a run pays one-off costs (allocator and thread-pool warm-up, lazy loading)
    that depend on which run comes first, not on what it trains; new noisy captions are remembered
    across runs, so whichever run meets one first would pay for it. Neither says what a run costs.
    Pass one per ``fit`` call; read :attr:`seconds_per_epoch` afterwards.
    """

    def __init__(self, memo: MemoEncode | None = None) -> None:
        self.memo = memo
        self.net: list[float] = []  # per epoch: seconds minus the text encoder's seconds
        self._text_seconds = 0.0

    def _text_now(self) -> float:
        return self.memo.seconds if self.memo is not None else 0.0

    def on_train_start(self, state: Any) -> None:
        self._text_seconds = self._text_now()

    def on_epoch_end(self, state: Any, row: dict[str, float]) -> None:
        now = self._text_now()
        self.net.append(max(float(row["seconds"]) - (now - self._text_seconds), 0.0))
        self._text_seconds = now

    @property
    def seconds_per_epoch(self) -> float:
        """Mean net seconds of the epochs after the first (of the only epoch, if just one ran)."""
        if not self.net:
            raise ConfigError("no epoch has ended yet; pass EpochCost to fit(callbacks=[...]).")
        timed = self.net[1:] or self.net
        return max(sum(timed) / len(timed), 1e-6)


def subset_rows(splits: Sequence[str], n_clips: int | None, seed: int = 0
                ) -> dict[str, np.ndarray]:
    """Row indices per split of a subset of about ``n_clips`` clips (None: all), drawn at random
    within each split in proportion to its size (at least 2 per split), sorted."""
    labels = np.asarray(splits)
    names = list(dict.fromkeys(labels.tolist()))
    if n_clips is not None and n_clips < 2 * len(names):
        raise ConfigError(f"n_clips={n_clips} is too small for {len(names)} splits; use at "
                          f"least {2 * len(names)} or None for every clip.")
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        rows = np.flatnonzero(labels == name)
        if n_clips is not None:
            take = max(2, round(n_clips * len(rows) / len(labels)))
            rows = np.sort(rng.choice(rows, size=min(take, len(rows)), replace=False))
        out[name] = rows
    return out
