"""The dual encoder of language-based audio retrieval (papers 4 and 5), CLIP style.

An audio encoder and a text encoder, each followed by a projection (linear, as in paper 4, or a
small MLP) into one shared space; a learnable ``logit_scale`` (open_clip's initialisation,
``log(1 / 0.07)``); symmetric InfoNCE (NT-Xent) in which several captions of one clip in a batch are
not negatives of each other (:func:`zskit.losses.info_nce` with ``clip_ids``).

>>> model = DualEncoder(create_audio_encoder("passt_n", pretrained=True),
...                     create_text_encoder("roberta-large", pretrained=True))
>>> a = model.encode_audio(waveforms, lengths)     # (B, 1024), L2-normalised
>>> t = model.encode_text(["a dog barks"])           # (1, 1024)

Either encoder may be frozen, or replaced by :class:`Precomputed` when its outputs were computed
beforehand (audio embeddings from :mod:`zskit.cache`, text embeddings of a frozen sentence
encoder): then only the projections (and ``logit_scale``) train, the cheapest CPU path
(``DualEncoder.from_embeddings``). Any registered audio encoder works, including the image
backbones of paper 5 on spectrograms.

Long audio (paper 4): training crops clips longer than ``max_seconds`` (30 s) at random and pads a
batch to its longest clip, passing ``lengths`` (:class:`RetrievalPairs`); encoders with a length
limit are run on segments whose embeddings are averaged (``segment_seconds``; PaSST already does
this itself, see :class:`zskit.encoders.audio.passt.PaSSTConfig`).

Training helpers: :class:`RetrievalPairs` (one item per caption, caption swap with rewrites, text
noise; :func:`corpus_pairs` builds them from a corpus split), :func:`contrastive_loss` for
:func:`zskit.train.fit`, :func:`fit_dual_encoder`, the papers' recipes
(:func:`paper4_pretrain_config`, :func:`paper4_finetune_config`, :func:`paper5_config`), partial
fine-tuning (:func:`unfreeze_last_blocks`, :func:`layerwise_lr_groups`; paper 5's spectrogram-image
pieces are in :mod:`zskit.models.transfer`). Evaluation: :func:`evaluate_retrieval`,
:func:`chance_retrieval_metrics`, :func:`informative_k`. Zero-shot classification with prompt
templates: :func:`prompt_classifier`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from zskit.audio.io import load_audio
from zskit.audio.segments import pad_batch, random_crop, segment, segment_count
from zskit.data.manifest import split_list
from zskit.errors import ConfigError, DataError
from zskit.fileio import load_cache_file
from zskit.losses import info_nce
from zskit.metrics import retrieval_metrics_both
from zskit.text_augment import CaptionSwap, TextNoise
from zskit.train.config import TrainConfig

__all__ = [
    "DEFAULT_TEMPLATES",
    "PROJECTIONS",
    "DualEncoder",
    "DualEncoderConfig",
    "Precomputed",
    "RetrievalPairs",
    "chance_retrieval_metrics",
    "clip_recordings",
    "contrastive_loss",
    "corpus_keywords",
    "corpus_pairs",
    "count_parameters",
    "encoder_blocks",
    "evaluate_retrieval",
    "fit_dual_encoder",
    "freeze",
    "frozen_parts_to_eval",
    "informative_k",
    "layerwise_lr_groups",
    "paper4_finetune_config",
    "paper4_pretrain_config",
    "paper5_config",
    "pretraining_corpora",
    "prompt_classifier",
    "relevance_matrix",
    "retrieval_metric_fn",
    "segment_average",
    "unfreeze_last_blocks",
    "zero_shot_scores",
]

log = logging.getLogger(__name__)

PROJECTIONS = ("linear", "mlp")
#: The prompt the issue names for CLAP-style zero-shot classification.
DEFAULT_TEMPLATES: tuple[str, ...] = ("the sound of a {}",)


# ---------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class DualEncoderConfig:
    """Shared space, projections, temperature and segmenting of a :class:`DualEncoder`."""

    dim: int = 1024  # size of the shared space (paper 4: 1024)
    projection: str = "linear"  # "linear" (paper 4) or "mlp" (Linear, GELU, dropout, Linear)
    hidden: int | None = None  # width of the MLP's hidden layer (None: dim)
    dropout: float = 0.0  # dropout inside the MLP projection
    init_temperature: float = 0.07  # logit_scale starts at log(1 / init_temperature) (open_clip)
    learn_scale: bool = True  # learn logit_scale (False: fixed temperature)
    max_logit_scale: float = 100.0  # exp(logit_scale) is clamped here, as in open_clip
    segment_seconds: float | None = None  # embed audio in segments of this length and average
    segment_hop_seconds: float | None = None  # hop between segments (None: no overlap)

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ConfigError(f"dim={self.dim} must be >= 1 (paper 4 uses 1024).")
        if self.projection not in PROJECTIONS:
            raise ConfigError(f"projection={self.projection!r} is unknown; use one of "
                              f"{PROJECTIONS}.")
        if self.hidden is not None and self.hidden < 1:
            raise ConfigError(f"hidden={self.hidden} must be >= 1 or None.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must lie in [0, 1).")
        if not 0.0 < self.init_temperature:
            raise ConfigError(f"init_temperature={self.init_temperature} must be > 0 (0.07).")
        if self.max_logit_scale < 1.0 / self.init_temperature:
            raise ConfigError(f"max_logit_scale={self.max_logit_scale} is below the initial "
                              f"scale 1/{self.init_temperature}; raise it (open_clip: 100).")
        if self.segment_seconds is not None and self.segment_seconds <= 0:
            raise ConfigError(f"segment_seconds={self.segment_seconds} must be > 0 or None.")
        hop = self.segment_hop_seconds
        if hop is not None and (self.segment_seconds is None or not 0 < hop <= self.segment_seconds):
            raise ConfigError(f"segment_hop_seconds={hop} needs segment_seconds and must lie in "
                              f"(0, segment_seconds={self.segment_seconds}].")


class Precomputed(nn.Module):
    """Stands in for a frozen encoder whose outputs were computed beforehand.

    Tensors ``(B, embed_dim)`` pass through unchanged. With ``encode`` (e.g. a frozen sentence
    encoder's ``encode``), texts can still be embedded, so a model trained on cached text
    embeddings can answer new queries.
    """

    def __init__(self, embed_dim: int, encode: Callable[[list[str]], torch.Tensor] | None = None
                 ) -> None:
        super().__init__()
        if embed_dim < 1:
            raise ConfigError(f"embed_dim={embed_dim} must be >= 1.")
        self._embed_dim = int(embed_dim)
        self.encode = encode

    @property
    def embed_dim(self) -> int:
        """Size of the precomputed embeddings."""
        return self._embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self._embed_dim:
            raise ConfigError(f"expected precomputed embeddings (B, {self._embed_dim}), got "
                              f"{tuple(x.shape)}; pass the cached embeddings of this encoder.")
        return x


def _projection(in_dim: int, cfg: DualEncoderConfig) -> nn.Module:
    if cfg.projection == "linear":
        return nn.Linear(in_dim, cfg.dim)
    hidden = cfg.hidden or cfg.dim
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                         nn.Linear(hidden, cfg.dim))


def _embed_dim(encoder: Any, side: str) -> int:
    dim = getattr(encoder, "embed_dim", None)
    if not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"the {side} encoder {type(encoder).__name__} has no embed_dim; pass a "
                          f"zskit encoder (create_{side}_encoder) or Precomputed(dim).")
    return dim


def _project(projection: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """``projection(features)`` with the features cast to the projection's dtype (fp32, or the
    bf16/fp16 a whole model was cast to; autocast still picks its own)."""
    return projection(features.to(next(projection.parameters()).dtype))


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; float64 (e.g. waveforms from numpy) becomes float32 first for MPS,
    which has no float64 and refuses to take it."""
    if x.dtype == torch.float64 and device.type == "mps":
        x = x.float()
    return x.to(device)


def _trainable(module: Any) -> bool:
    return isinstance(module, nn.Module) and any(p.requires_grad for p in module.parameters())


def frozen_parts_to_eval(module: nn.Module) -> None:
    """Put every submodule of ``module`` whose parameters are all frozen in eval mode.

    Frozen layers should compute what they were trained to compute: in training mode their
    dropout would be on and their batch norms would keep updating running statistics (the
    weights stay fixed, the statistics drift), e.g. the frozen blocks of a partly fine-tuned
    encoder. Parameter-free layers inside trainable blocks keep the mode they were given.
    """
    for m in module.modules():
        params = list(m.parameters())
        if params and not any(p.requires_grad for p in params):
            m.eval()


def segment_average(encoder: nn.Module, waveforms: torch.Tensor, lengths: torch.Tensor | None,
                    segment_samples: int, hop_samples: int | None = None) -> torch.Tensor:
    """Clip embeddings ``(B, D)``: the mean of ``encoder``'s embeddings of the segments of each
    clip that hold real samples (paper 4's answer to PaSST's 10 s limit).

    ``waveforms`` ``(B, T)`` end-padded, ``lengths`` ``(B,)`` real samples (None: all real).
    Segments are ``segment_samples`` long, ``hop_samples`` apart (default: no overlap); the last
    one is zero-padded and its real length passed to the encoder. Each clip gets the segments
    :func:`zskit.audio.segments.segment` would cut from it alone, so its embedding does not depend
    on how long the other clips of the batch are (with overlap, a segment that starts inside the
    clip may still only repeat samples the previous one already covered).
    """
    b, n = waveforms.shape
    device = waveforms.device
    # The bookkeeping runs on the host, where the encoders want the counts anyway: on a GPU a
    # boolean mask or a bincount of device tensors would wait for the GPU at every batch.
    if lengths is None:
        lengths = torch.full((b,), n, dtype=torch.long)
    lengths = torch.as_tensor(lengths).detach().cpu().long().clamp(0, n)
    hop = hop_samples or segment_samples
    segs, _ = segment(waveforms, segment_samples, hop)  # (B, S, L)
    starts = torch.arange(segs.shape[1]) * hop
    real = (lengths[:, None] - starts[None, :]).clamp(0, segment_samples)  # (B, S)
    # each clip uses the segments segment() would cut from it alone (its first one at least)
    counts = torch.tensor([segment_count(k, segment_samples, hop) for k in lengths.tolist()])
    used = torch.arange(segs.shape[1])[None, :] < counts[:, None]
    owner = torch.arange(b)[:, None].expand_as(used)[used]
    rows = used.reshape(-1).nonzero().squeeze(1)  # the used segments, clip by clip
    emb = encoder(segs.reshape(-1, segs.shape[-1]).index_select(0, rows.to(device)),
                  real[used].clamp_min(1))
    counts = torch.bincount(owner, minlength=b).unsqueeze(1).to(device, emb.dtype)
    return emb.new_zeros(b, emb.shape[1]).index_add_(0, owner.to(device), emb) / counts


def _stack(parts: list[torch.Tensor], dim: int) -> torch.Tensor:
    """Batches of embeddings as one float32 CPU tensor; ``(0, dim)`` for no batch."""
    if not parts:
        return torch.zeros(0, dim)
    return torch.cat([p.float().cpu() for p in parts])


class DualEncoder(nn.Module):
    """Audio and text encoders with projections into one space and a learnable ``logit_scale``.

    ``audio_encoder``: a zskit audio encoder (waveforms ``(B, T)`` at its ``sample_rate``) or
    :class:`Precomputed`. ``text_encoder``: a sentence encoder (trainable), a word-vector encoder
    (frozen) or :class:`Precomputed`. ``dim`` and ``projection`` as in the issue; ``settings`` are
    the other fields of :class:`DualEncoderConfig`. A frozen encoder (no trainable parameter) is
    kept in eval mode and run without autograd.

    ``forward(audio, text, lengths=None)`` returns ``(audio_emb, text_emb, scale)`` with
    normalised embeddings and ``scale = exp(logit_scale)`` (clamped), as open_clip does, so
    ``fit``'s DDP wrapper serves the loss (:func:`contrastive_loss`).
    """

    def __init__(self, audio_encoder: nn.Module, text_encoder: Any, dim: int = 1024,
                 projection: str = "linear", **settings: Any) -> None:
        super().__init__()
        self.cfg = DualEncoderConfig(dim=dim, projection=projection, **settings)
        self.audio_encoder = audio_encoder
        self.text_encoder = text_encoder  # a plain attribute if it is not an nn.Module
        self.audio_projection = _projection(_embed_dim(audio_encoder, "audio"), self.cfg)
        self.text_projection = _projection(_embed_dim(text_encoder, "text"), self.cfg)
        scale = torch.tensor(math.log(1.0 / self.cfg.init_temperature))
        self.logit_scale = nn.Parameter(scale, requires_grad=self.cfg.learn_scale)

    @classmethod
    def from_embeddings(cls, audio_dim: int, text_dim: int, *,
                        encode_text: Callable[[list[str]], torch.Tensor] | None = None,
                        **kwargs: Any) -> DualEncoder:
        """Projections only, over precomputed audio and text embeddings (both encoders frozen).

        ``encode_text`` (the frozen text encoder's ``encode``) lets the model embed new queries.
        """
        return cls(Precomputed(audio_dim), Precomputed(text_dim, encode=encode_text), **kwargs)

    @property
    def device(self) -> torch.device:
        """Where the projections live."""
        return self.logit_scale.device

    @property
    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)``, at most ``cfg.max_logit_scale``.

        Clamped in log space, where a value at the cap still passes its gradient (``exp`` of
        the stored ``log(100)`` rounds above 100, so a clamp after ``exp`` would pass none)."""
        return self.logit_scale.clamp(max=math.log(self.cfg.max_logit_scale)).exp()

    def _training_scale(self) -> torch.Tensor:
        """:attr:`scale` for the loss, with a learned ``logit_scale`` first pulled back to the cap
        in place, as open_clip does after each step: a value over the cap would get no gradient
        from the clamp and could never come down again (nor stop drifting up on the optimiser's
        momentum). The clamp is then left out of the graph, whose ``exp`` keeps only its output,
        so that several forwards before one backward still work."""
        if not self.logit_scale.requires_grad:
            return self.scale
        with torch.no_grad():
            self.logit_scale.clamp_(max=math.log(self.cfg.max_logit_scale))
        return self.logit_scale.exp()

    def train(self, mode: bool = True) -> DualEncoder:
        """Set training mode; frozen encoders, and the frozen parts of partly trained ones, stay
        in eval mode (dropout off, batch-norm statistics fixed): :func:`frozen_parts_to_eval`."""
        super().train(mode)
        for encoder in (self.audio_encoder, self.text_encoder):
            if isinstance(encoder, nn.Module):
                frozen_parts_to_eval(encoder)
        return self

    # -- audio -----------------------------------------------------------------------------------
    def audio_features(self, audio: torch.Tensor, lengths: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """The audio encoder's embeddings ``(B, D_audio)`` before the projection."""
        encoder = self.audio_encoder
        if isinstance(encoder, Precomputed):
            return encoder(audio.float().to(self.device))  # cast first: MPS has no float64
        audio = _to_device(audio, self.device)
        # lengths stay where they are (the CPU, from collate): the encoders need the counts on
        # the host, and copying them back from a GPU would wait for it at every batch.
        lengths = None if lengths is None else torch.as_tensor(lengths)
        with torch.set_grad_enabled(torch.is_grad_enabled() and _trainable(encoder)):
            if self.cfg.segment_seconds is None:
                return encoder(audio, lengths)
            rate = int(encoder.sample_rate)
            hop = self.cfg.segment_hop_seconds
            return segment_average(encoder, audio, lengths, round(self.cfg.segment_seconds * rate),
                                   None if hop is None else round(hop * rate))

    def encode_audio(self, audio: torch.Tensor, lengths: torch.Tensor | None = None,
                     normalize: bool = True) -> torch.Tensor:
        """Audio in the shared space ``(B, dim)``: waveforms ``(B, T)`` (with ``lengths``) or
        precomputed embeddings; L2-normalised rows by default."""
        z = _project(self.audio_projection, self.audio_features(audio, lengths))
        return F.normalize(z, dim=-1) if normalize else z

    # -- text ------------------------------------------------------------------------------------
    def text_features(self, text: Any) -> torch.Tensor:
        """The text encoder's embeddings ``(B, D_text)`` of strings, tokens or precomputed rows."""
        encoder = self.text_encoder
        if isinstance(text, str):
            text = [text]
        if isinstance(text, torch.Tensor):
            if not isinstance(encoder, Precomputed):
                raise ConfigError("encode_text got a tensor but the text encoder is not "
                                  "Precomputed; pass the captions as strings.")
            return encoder(text.float().to(self.device))
        if isinstance(encoder, Precomputed):
            if encoder.encode is None:
                raise ConfigError("this model was trained on precomputed text embeddings and "
                                  "has no text encoder; pass embeddings, or build it with "
                                  "DualEncoder.from_embeddings(..., encode_text=encoder.encode).")
            with torch.no_grad():
                return torch.as_tensor(encoder.encode(list(text))).float().to(self.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and _trainable(encoder)):
            if isinstance(text, Mapping):
                return encoder(**text)
            if hasattr(encoder, "tokenize"):
                return encoder(**encoder.tokenize(list(text)))
            return torch.as_tensor(encoder.encode(list(text))).float().to(self.device)

    def encode_text(self, text: Any, normalize: bool = True) -> torch.Tensor:
        """Text in the shared space ``(B, dim)``: a string, a list of strings, tokens (a dict from
        the encoder's ``tokenize``) or precomputed embeddings; L2-normalised rows by default."""
        z = _project(self.text_projection, self.text_features(text))
        return F.normalize(z, dim=-1) if normalize else z

    def forward(self, audio: torch.Tensor, text: Any, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(audio_emb, text_emb, exp(logit_scale))``, embeddings normalised."""
        return self.encode_audio(audio, lengths), self.encode_text(text), self._training_scale()

    # -- inference over collections --------------------------------------------------------------
    @torch.no_grad()
    def embed_audio(self, audio: torch.Tensor | Sequence[str | Path], batch_size: int = 64,
                    max_seconds: float | None = None) -> torch.Tensor:
        """Normalised float32 audio embeddings ``(N, dim)`` on the CPU, in eval mode (also under
        autocast or in a bf16/fp16 model, so that they can be compared and turned into numpy).

        ``audio``: precomputed embeddings ``(N, D)`` or audio files (loaded at the encoder's
        sample rate, the first ``max_seconds`` kept when given).
        """
        was_training = self.training
        self.eval()
        try:
            if isinstance(audio, (torch.Tensor, np.ndarray)):
                x = torch.as_tensor(audio)
                return _stack([self.encode_audio(x[a:a + batch_size])
                               for a in range(0, len(x), batch_size)], self.cfg.dim)
            if isinstance(self.audio_encoder, Precomputed):
                raise ConfigError("this model's audio side is Precomputed and cannot load audio "
                                  "files; pass the clips' embeddings from the same audio encoder "
                                  "(e.g. EmbeddingCache(...).embeddings) instead of their paths.")
            rate = int(self.audio_encoder.sample_rate)
            limit = None if max_seconds is None else round(max_seconds * rate)
            out = []
            for a in range(0, len(audio), batch_size):
                waves, mask = pad_batch([load_audio(p, rate) for p in audio[a:a + batch_size]],
                                        max_length=limit)
                out.append(self.encode_audio(waves, mask.sum(1)))
            return _stack(out, self.cfg.dim)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def embed_text(self, text: Sequence[str] | torch.Tensor, batch_size: int = 256
                   ) -> torch.Tensor:
        """Normalised float32 text embeddings ``(N, dim)`` on the CPU, in eval mode."""
        was_training = self.training
        self.eval()
        try:
            return _stack([self.encode_text(text[a:a + batch_size])
                           for a in range(0, len(text), batch_size)], self.cfg.dim)
        finally:
            self.train(was_training)

    def param_groups(self, lr: float, encoder_lr: float | None = None,
                     layer_decay: float | None = None) -> list[dict[str, Any]]:
        """Optimiser groups for ``fit(param_groups=...)``: projections and ``logit_scale`` at
        ``lr``; trainable encoder parameters at ``encoder_lr`` (default ``lr``), per block
        decayed by ``layer_decay`` (:func:`layerwise_lr_groups`) when given."""
        head = [p for m in (self.audio_projection, self.text_projection) for p in m.parameters()]
        head += [self.logit_scale] if self.logit_scale.requires_grad else []
        groups = [{"params": head, "lr": lr}]
        for encoder in (self.audio_encoder, self.text_encoder):
            if not _trainable(encoder):
                continue
            elr = lr if encoder_lr is None else encoder_lr
            if layer_decay is None:
                groups.append({"params": [p for p in encoder.parameters() if p.requires_grad],
                               "lr": elr})
            else:
                groups.extend(layerwise_lr_groups(encoder, elr, layer_decay))
        return groups

    def load_projections(self, other: DualEncoder) -> DualEncoder:
        """Start from ``other``'s trained projections and temperature; returns ``self``.

        For fine-tuning encoder layers after a projection-only run over the same encoders' frozen
        features (train the head, then fine-tune): the encoder layers then start from a head that
        already fits them instead of from random projections, and the fine-tuning run builds on
        the projection-only run's optimiser steps rather than racing it with far fewer."""
        for name in ("audio_projection", "text_projection"):
            try:
                getattr(self, name).load_state_dict(getattr(other, name).state_dict())
            except RuntimeError as err:
                raise ConfigError(
                    f"the {name}s differ ({err}); build both models with the same dim, "
                    "projection and encoder embedding sizes"
                ) from err
        with torch.no_grad():
            self.logit_scale.copy_(other.logit_scale)
        return self

    def zero_shot_classifier(self, class_names: Sequence[str],
                             templates: Sequence[str] = DEFAULT_TEMPLATES) -> torch.Tensor:
        """``(C, dim)`` class vectors from prompts (:func:`prompt_classifier`)."""
        return prompt_classifier(self.embed_text, class_names, templates)


# ---------------------------------------------------------------------------------------------
# Zero-shot classification with prompt templates


def prompt_classifier(encode: Callable[[list[str]], torch.Tensor], class_names: Sequence[str],
                      templates: Sequence[str] = DEFAULT_TEMPLATES) -> torch.Tensor:
    """Class vectors ``(C, D)`` from prompts, as open_clip builds its zero-shot classifier.

    Each class name (ids such as ``"french_horn"`` become words) is put into every template, the
    prompts are embedded with ``encode`` and L2-normalised, averaged over templates and normalised
    again. Works with any text encoder's ``encode`` (a dual encoder's ``embed_text``, a sentence
    encoder, word vectors).
    """
    from zskit.encoders.text.word_vectors import label_text

    if not class_names:
        raise ConfigError("class_names is empty; pass the names of the classes to score.")
    if not templates or any("{}" not in t for t in templates):
        raise ConfigError(f"templates {list(templates)!r} must be non-empty strings with a '{{}}' "
                          "placeholder, e.g. 'the sound of a {}'.")
    prompts = [t.format(label_text(name)) for name in class_names for t in templates]
    emb = F.normalize(torch.as_tensor(encode(prompts)).float().cpu(), dim=-1)
    emb = emb.reshape(len(class_names), len(templates), -1).mean(1)
    return F.normalize(emb, dim=-1)


def zero_shot_scores(audio_embeddings: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """Cosine similarity ``(N, C)`` of normalised audio embeddings and class vectors, on the
    audio embeddings' device (class vectors from :func:`prompt_classifier` are on the CPU)."""
    a = F.normalize(torch.as_tensor(audio_embeddings).float(), dim=-1)
    c = torch.as_tensor(classifier).float().to(a.device)
    return a @ F.normalize(c, dim=-1).T


# ---------------------------------------------------------------------------------------------
# Training data: one item per caption


@dataclass
class RetrievalPairs(torch.utils.data.Dataset):
    """(audio, caption, clip) training items: one per non-empty caption of every clip.

    ``audio``: precomputed clip embeddings ``(N, D)`` or N audio files (loaded at ``sample_rate``;
    clips longer than ``max_seconds`` are cropped at random, paper 4's 30 s). ``captions[i]``: clip
    i's captions (empty strings are skipped). ``rewrites[i][j]``: rewrites of caption j of clip i
    (:func:`zskit.text_augment.make_rewrites`), used with probability ``swap.p``. ``text_noise``:
    paper 5's misspellings/synonyms/hypernyms on a fraction of each batch (string captions only).
    After :meth:`embed_texts` items carry text embeddings instead of strings. ``augment=False``
    (the view :meth:`loader` gives without shuffling, for validation) keeps the start of long
    clips and the original captions, as :func:`evaluate_retrieval` does, so that a validation
    loss does not change from epoch to epoch with random crops and rewrites.
    """

    audio: torch.Tensor | Sequence[str | Path]
    captions: Sequence[Sequence[str]]
    rewrites: Sequence[Sequence[Sequence[str]]] | None = None
    swap: CaptionSwap = field(default_factory=lambda: CaptionSwap(0.0))
    text_noise: TextNoise | None = None
    sample_rate: int | None = None
    max_seconds: float | None = 30.0
    augment: bool = True  # random crops, caption swaps and text noise (False: evaluation)

    def __post_init__(self) -> None:
        if isinstance(self.audio, np.ndarray):
            self.audio = torch.from_numpy(np.asarray(self.audio, dtype=np.float32))
        n = len(self.audio)
        if len(self.captions) != n:
            raise DataError(f"{n} clips but {len(self.captions)} caption lists; pass one list "
                            "of captions per clip.")
        if self.rewrites is not None and len(self.rewrites) != n:
            raise DataError(f"{len(self.rewrites)} rewrite lists for {n} clips; pass one per clip "
                            "(zskit.text_augment.make_rewrites).")
        short = [i for i in range(n) if self.rewrites is not None
                 and len(self.rewrites[i]) != len(self.captions[i])]
        if short:
            raise DataError(f"clip {short[0]} has {len(self.rewrites[short[0]])} rewrite lists for "
                            f"{len(self.captions[short[0]])} captions; pass one list of rewrites "
                            "per caption (zskit.text_augment.make_rewrites does).")
        single = next((i for i, c in enumerate(self.captions) if isinstance(c, str)), None)
        if single is not None:
            raise DataError(f"captions[{single}] is a string ({self.captions[single]!r}), not a "
                            "list of captions: each character would become a caption. Pass one "
                            "list per clip, e.g. [[caption] for caption in captions].")
        if not isinstance(self.audio, torch.Tensor) and self.sample_rate is None:
            raise ConfigError("audio files need sample_rate (the audio encoder's sample_rate).")
        self.texts: list[str] = []  # every caption, then every rewrite
        clip, row, options = [], [], []
        for i, clip_captions in enumerate(self.captions):
            for j, caption in enumerate(clip_captions):
                if not isinstance(caption, str) or not caption.strip():
                    continue
                clip.append(i)
                row.append(len(self.texts))
                self.texts.append(caption)
                options.append(list(self.rewrites[i][j]) if self.rewrites is not None else [])
        if not clip:
            raise DataError("no clip has a caption; check the manifest's caption_1.. columns.")
        self.clip_index = np.asarray(clip)
        self.caption_row = np.asarray(row)
        self.rewrite_rows: list[list[int]] = []
        for opts in options:
            self.rewrite_rows.append(list(range(len(self.texts), len(self.texts) + len(opts))))
            self.texts.extend(opts)
        self.text_embeddings: torch.Tensor | None = None

    @classmethod
    def concat(cls, parts: Sequence[RetrievalPairs]) -> RetrievalPairs:
        """One set of pairs from several (e.g. AudioCaps + WavCaps + Clotho for pre-training);
        all must hold audio embeddings of one size, or all audio files. Settings of the first;
        text embeddings are kept when every part has them."""
        if not parts:
            raise ConfigError("concat needs at least one RetrievalPairs.")
        first = parts[0]
        if len({p.audio_is_embedded for p in parts}) != 1:
            raise ConfigError("concat: mix of audio embeddings and audio files; use one kind.")
        audio = torch.cat([p.audio for p in parts]) if first.audio_is_embedded else \
            [a for p in parts for a in p.audio]
        rewrites = None
        if any(p.rewrites is not None for p in parts):
            rewrites = [r for p in parts for r in
                        (p.rewrites if p.rewrites is not None else [[[]] * len(c) for c in
                                                                    p.captions])]
        out = cls(audio, [c for p in parts for c in p.captions], rewrites, swap=first.swap,
                  text_noise=first.text_noise, sample_rate=first.sample_rate,
                  max_seconds=first.max_seconds, augment=first.augment)
        if all(p.text_embeddings is not None for p in parts):  # captions first, then rewrites
            captions = [p.text_embeddings[torch.from_numpy(p.caption_row)] for p in parts]
            rewritten = [p.text_embeddings[[r for rows in p.rewrite_rows for r in rows]]
                         for p in parts]
            out.text_embeddings = torch.cat(captions + rewritten)
        return out

    def with_audio(self, audio: torch.Tensor | Sequence[str | Path],
                   sample_rate: int | None = None) -> RetrievalPairs:
        """The same captions, rewrites and settings (text embeddings included) over another audio
        representation of the same clips in the same order (e.g. another encoder's inputs)."""
        if len(audio) != self.n_clips:
            raise DataError(f"{len(audio)} audio items for {self.n_clips} clips; pass one per "
                            "clip, in the order of these pairs.")
        out = dataclasses.replace(self, audio=audio, sample_rate=sample_rate)
        out.text_embeddings = self.text_embeddings
        return out

    @property
    def n_clips(self) -> int:
        """Number of clips."""
        return len(self.audio)

    def __len__(self) -> int:
        return len(self.clip_index)

    @property
    def audio_is_embedded(self) -> bool:
        """True when ``audio`` holds precomputed embeddings."""
        return isinstance(self.audio, torch.Tensor)

    def embed_texts(self, encode: Callable[[list[str]], torch.Tensor], batch_size: int = 256,
                    cache: str | Path | None = None) -> RetrievalPairs:
        """Embed every caption and rewrite once with a frozen ``encode`` (e.g. MiniLM's); items
        then carry embeddings. Returns ``self``.

        ``cache``: a ``.pt`` file for these embeddings, reused when it holds exactly these texts
        (checked by a digest) and written otherwise. Name it after the text encoder and its
        weights: the file does not know which encoder made it.
        """
        if self.text_noise is not None:
            raise ConfigError("text_noise changes captions on the fly and cannot be used with "
                              "precomputed text embeddings; drop one of them.")
        digest = hashlib.sha256("\0".join(self.texts).encode()).hexdigest()
        path = None if cache is None else Path(cache)
        if path is not None and path.is_file():
            stored = load_cache_file(path)
            if isinstance(stored, dict) and stored.get("texts_sha256") == digest:
                self.text_embeddings = stored["embeddings"]
                return self
            log.info("%s holds embeddings of other texts; computing them again", path)
        parts = [torch.as_tensor(encode(self.texts[a:a + batch_size])).float().cpu()
                 for a in range(0, len(self.texts), batch_size)]
        self.text_embeddings = torch.cat(parts)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            torch.save({"texts_sha256": digest, "embeddings": self.text_embeddings}, tmp)
            os.replace(tmp, path)
        return self

    def _text_row(self, i: int) -> int:
        rewrites = self.rewrite_rows[i]
        if not rewrites or self.swap.p == 0.0 or not self.augment:
            return int(self.caption_row[i])
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        k = self.swap.choose(len(rewrites), rng)
        return int(self.caption_row[i]) if k < 0 else rewrites[k]

    def _audio(self, clip: int) -> torch.Tensor:
        if self.audio_is_embedded:
            return self.audio[clip]
        wave = load_audio(self.audio[clip], self.sample_rate)
        if self.max_seconds is None:
            return wave
        limit = round(self.max_seconds * self.sample_rate)
        return random_crop(wave, limit) if self.augment else wave[..., :limit]

    def __getitem__(self, i: int) -> dict[str, Any]:
        clip = int(self.clip_index[i])
        row = self._text_row(i)
        text = self.texts[row] if self.text_embeddings is None else self.text_embeddings[row]
        return {"audio": self._audio(clip), "text": text, "clip_id": clip}

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """A batch: audio (embeddings, or waveforms padded to the longest with ``lengths``),
        texts (strings, with ``text_noise`` applied, or embeddings) and ``clip_ids``."""
        batch: dict[str, Any] = {"clip_ids": torch.tensor([it["clip_id"] for it in items])}
        if self.audio_is_embedded:
            batch["audio"] = torch.stack([it["audio"] for it in items]).float()
        else:
            batch["audio"], mask = pad_batch([it["audio"] for it in items])
            batch["lengths"] = mask.sum(1).tolist()  # host-side: to_device leaves lists alone
        texts = [it["text"] for it in items]
        if isinstance(texts[0], torch.Tensor):
            batch["text"] = torch.stack(texts)
        else:
            if self.text_noise is not None and self.augment:
                rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
                texts = self.text_noise(texts, rng)
            batch["text"] = texts
        return batch

    def loader(self, batch_size: int = 64, shuffle: bool = True, num_workers: int = 0,
               drop_last: bool = False, items_per_epoch: int | None = None
               ) -> torch.utils.data.DataLoader:
        """A DataLoader with :meth:`collate` (fit uses its batch size, not TrainConfig's).

        Without ``shuffle`` (validation) it reads an ``augment=False`` view of these pairs: the
        same items every time.

        ``items_per_epoch`` (with ``shuffle``): each epoch draws that many items at random without
        replacement, e.g. ``n_clips`` to run a training audio encoder about once per clip per
        epoch instead of five times (one per caption). The items are drawn from all captions, not
        one per clip: with five captions per clip, an epoch of ``n_clips`` items sees about two
        thirds of the clips, some of them more than once.
        """
        if items_per_epoch is not None and not 1 <= items_per_epoch <= len(self):
            raise ConfigError(f"items_per_epoch={items_per_epoch} must lie in [1, {len(self)}] "
                              "(the number of captions), or be None for all of them.")
        sampler = None
        if shuffle and items_per_epoch is not None:
            sampler = torch.utils.data.RandomSampler(self, num_samples=items_per_epoch)
        data = self if shuffle else copy.copy(self)
        data.augment = self.augment and shuffle
        return torch.utils.data.DataLoader(data, batch_size=batch_size,
                                           shuffle=shuffle and sampler is None, sampler=sampler,
                                           num_workers=num_workers, drop_last=drop_last,
                                           collate_fn=data.collate)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(audio_emb, text_emb, clip_ids)`` per caption: fit's fast in-memory path, possible
        when both sides are embeddings and no caption is swapped."""
        if not self.audio_is_embedded or self.text_embeddings is None:
            raise ConfigError("tensors() needs precomputed audio and text embeddings "
                              "(call embed_texts first); use loader() otherwise.")
        clip = torch.from_numpy(self.clip_index)
        return (self.audio[clip].float(), self.text_embeddings[torch.from_numpy(self.caption_row)],
                clip)

    def relevance(self) -> np.ndarray:
        """``(n_captions, n_clips)`` bool: caption q describes clip i."""
        return relevance_matrix(self.clip_index, self.n_clips)

    def caption_inputs(self) -> list[str] | torch.Tensor:
        """The original captions (strings, or their embeddings after :meth:`embed_texts`)."""
        if self.text_embeddings is None:
            return [self.texts[r] for r in self.caption_row]
        return self.text_embeddings[torch.from_numpy(self.caption_row)]


def corpus_keywords(corpus: Any) -> list[list[str]]:
    """Each clip's keywords from the manifest's ``keywords`` column (``;``-joined), or none."""
    if "keywords" not in corpus.manifest.columns:
        return [[] for _ in range(len(corpus))]
    return [split_list(cell) for cell in corpus.manifest["keywords"]]


#: A WavCaps AudioSet_SL id: ``Y`` + the 11-character YouTube id + ``_<start>...``.
_AUDIOSET_STEM = re.compile(r"^Y([A-Za-z0-9_-]{11})(?:_|$)")
OVERLAP_POLICIES = ("raise", "drop")


def _manifest_id(value: Any, numeric: bool = False) -> str:
    """A manifest cell as an id, '' when empty or missing; ``numeric`` (Freesound ids): ``102``
    for 102, 102.0 or "102.0", as a CSV reader may have typed the column, and '' for any other
    text (Clotho's metadata says "Not found" for some clips: no id, not one they all share)."""
    text = "" if value is None else str(value).strip()
    if text.lower() in ("", "nan", "none"):
        return ""
    if not numeric:
        return text
    return str(int(float(text))) if re.fullmatch(r"\d+(\.0*)?", text) else ""


def clip_recordings(corpus: Any) -> list[str]:
    """Per clip, the recording it was taken from when its manifest says so, else ``""``:
    ``"freesound:<id>"`` (Clotho's ``sound_id``, WavCaps' FreeSound ids) or ``"youtube:<id>"``
    (AudioCaps' ``youtube_id``, WavCaps' AudioSet_SL ids). Two corpora share a clip under these
    keys even when their files differ (WavCaps re-distributes Freesound and AudioSet audio)."""
    m = corpus.manifest

    def column(name: str) -> list[Any]:
        return m[name].tolist() if name in m.columns else [""] * len(m)

    out = []
    for sound, youtube, source, clip in zip(column("sound_id"), column("youtube_id"),
                                            column("source"), m["clip_id"].astype(str)):
        stem = clip.rsplit("/", 1)[-1]
        match = _AUDIOSET_STEM.match(stem) if source == "AudioSet_SL" else None
        sound_id, youtube_id = _manifest_id(sound, numeric=True), _manifest_id(youtube)
        if sound_id:
            out.append(f"freesound:{sound_id}")
        elif youtube_id:
            out.append(f"youtube:{youtube_id}")
        elif source == "FreeSound" and (numeric_id := _manifest_id(stem, numeric=True)):
            out.append(f"freesound:{numeric_id}")
        else:
            out.append(f"youtube:{match.group(1)}" if match else "")
    return out


def pretraining_corpora(corpora: Sequence[Any], target: Any, overlap: str = "raise"
                        ) -> list[Any]:
    """What each of ``corpora`` contributes to pre-training before fine-tuning on ``target``.

    Paper 4 pre-trains on ClothoV2's *training* split together with AudioCaps and WavCaps, then
    fine-tunes on ClothoV2: a corpus of the target data set (same folder, or the same
    ``metadata["name"]``) gives its ``train`` split only, any other corpus every clip. A clip that
    is a target validation or test clip, by resolved audio path or by the recording it was taken
    from (:func:`clip_recordings`: WavCaps holds Freesound copies of Clotho's evaluation clips and
    AudioSet copies of AudioCaps' test clips, as WavCaps' own blacklist files say), would leak the
    test set into the model: ``overlap="raise"`` (default) raises a ``DataError``, ``"drop"``
    leaves such clips out (logged).
    """
    if overlap not in OVERLAP_POLICIES:
        raise ConfigError(f"overlap={overlap!r}; use one of {OVERLAP_POLICIES}.")
    held = [s in ("validation", "test") for s in target.manifest["split"]]
    held_paths = {p.resolve() for p, h in zip(target.paths, held) if h}
    held_recordings = {r for r, h in zip(clip_recordings(target), held) if h and r}
    name = target.metadata.get("name")
    out = []
    for c in corpora:
        same = (Path(c.root).resolve() == Path(target.root).resolve()
                or (name is not None and c.metadata.get("name") == name))
        part = c.split("train") if same else c
        leaked = np.asarray([p.resolve() in held_paths or r in held_recordings
                             for p, r in zip(part.paths, clip_recordings(part))], dtype=bool)
        if leaked.any() and overlap == "raise":
            example = part.manifest["clip_id"].iloc[int(np.flatnonzero(leaked)[0])]
            raise DataError(
                f"{int(leaked.sum())} validation/test clips of the target corpus are also in the "
                f"pre-training corpus {c.root}, as the same file or the same Freesound/YouTube "
                f"recording (e.g. {example}); pass overlap='drop' to leave them out, prepare it "
                "without them (prepare_wavcaps(..., exclude=ids)) or leave it out of the list.")
        if leaked.any():
            log.warning("left %d clips of %s out of pre-training: they are validation/test clips "
                        "of the target corpus", int(leaked.sum()), c.root)
            keep = np.flatnonzero(~leaked)
            part = dataclasses.replace(part, manifest=part.manifest.iloc[keep].reset_index(drop=True),
                                       labels=part.labels[keep], mask=part.mask[keep],
                                       captions=[part.captions[i] for i in keep])
        out.append(part)
    return out


def corpus_pairs(corpus: Any, split: str | None = None, audio: Any = None, *,
                 n_rewrites: int = 0, swap_p: float = 0.0, rewrite_fn: Any = None, seed: int = 0,
                 sample_rate: int | None = None, max_seconds: float | None = 30.0,
                 text_noise: TextNoise | None = None) -> RetrievalPairs:
    """:class:`RetrievalPairs` of a corpus split (None: every clip) with its captions.

    ``audio``: the corpus' clip embeddings in manifest order (e.g. ``EmbeddingCache(...)
    .embeddings``), or None to load the audio files at ``sample_rate``. ``n_rewrites`` keyword
    rewrites per caption (:func:`zskit.text_augment.make_rewrites`, or ``rewrite_fn``) are swapped
    in with probability ``swap_p``.
    """
    from zskit.text_augment import make_rewrites

    rows = np.arange(len(corpus)) if split is None else np.flatnonzero(
        (corpus.manifest["split"] == split).to_numpy())
    if rows.size == 0:
        raise DataError(f"the corpus has no clip in split {split!r}; it has {corpus.splits}.")
    captions = [corpus.captions[i] for i in rows]
    rewrites = None
    if n_rewrites > 0:
        keywords = corpus_keywords(corpus)
        rewrites = make_rewrites(captions, [keywords[i] for i in rows], n=n_rewrites, seed=seed,
                                 rewrite_fn=rewrite_fn)
    if audio is None:
        paths = corpus.paths
        clips: Any = [paths[i] for i in rows]
    else:
        emb = torch.from_numpy(np.array(audio, dtype=np.float32))  # a copy (memmaps are read-only)
        if len(emb) != len(corpus):
            raise DataError(f"{len(emb)} audio embeddings for a corpus of {len(corpus)} clips; "
                            "embed the whole corpus in manifest order.")
        clips = emb[torch.from_numpy(rows)]
    return RetrievalPairs(clips, captions, rewrites, swap=CaptionSwap(swap_p),
                          text_noise=text_noise, sample_rate=sample_rate, max_seconds=max_seconds)


def relevance_matrix(clip_index: Sequence[int] | np.ndarray, n_clips: int) -> np.ndarray:
    """``(len(clip_index), n_clips)`` bool matrix with one True per row, at its clip."""
    idx = np.asarray(clip_index)
    rel = np.zeros((len(idx), n_clips), dtype=bool)
    rel[np.arange(len(idx)), idx] = True
    return rel


def _unpack(batch: Any) -> tuple[Any, Any, Any, Any]:
    if isinstance(batch, Mapping):
        return batch["audio"], batch["text"], batch.get("clip_ids"), batch.get("lengths")
    if isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        audio, text, *ids = batch
        return audio, text, ids[0] if ids else None, None
    raise ConfigError("a dual-encoder batch is a dict from RetrievalPairs.collate or a tuple "
                      f"(audio, text[, clip_ids]); got {type(batch).__name__}.")


def contrastive_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """``fit`` loss: symmetric InfoNCE with the model's scale; captions of one clip in the batch
    are all positives (``clip_ids``)."""
    audio, text, clip_ids, lengths = _unpack(batch)
    a, t, scale = model(audio, text, lengths=lengths)
    return info_nce(a, t, logit_scale=scale, clip_ids=clip_ids)


# ---------------------------------------------------------------------------------------------
# Evaluation


def evaluate_retrieval(model: DualEncoder, pairs: RetrievalPairs, batch_size: int = 256,
                       ks: Sequence[int] = (1, 5, 10)) -> dict[str, dict[str, float]]:
    """R@k, mAP@10 and MRR in both directions over ``pairs`` (its original captions, no swap).

    Text -> audio: each caption ranks every clip (one relevant). Audio -> text: each clip ranks
    every caption (its own captions relevant).
    """
    audio = model.embed_audio(pairs.audio, batch_size=min(batch_size, 64),
                              max_seconds=pairs.max_seconds)
    text = model.embed_text(pairs.caption_inputs(), batch_size=batch_size)
    scores = text.numpy() @ audio.numpy().T  # float32 also under autocast, which would use bf16
    return retrieval_metrics_both(scores, pairs.relevance(), ks=ks)


def retrieval_metric_fn(pairs: RetrievalPairs, batch_size: int = 256
                        ) -> Callable[[nn.Module, Any], dict[str, float]]:
    """A ``fit`` metric_fn: text -> audio R@1/5/10 and mAP@10 on ``pairs`` after each epoch."""

    def metric(model: nn.Module, _val_data: Any) -> dict[str, float]:
        model = getattr(model, "module", model)  # DDP wrapper
        return evaluate_retrieval(model, pairs, batch_size)["text_to_audio"]

    return metric


def _log_comb(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    from scipy.special import gammaln

    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def chance_retrieval_metrics(relevant: np.ndarray, ks: Sequence[int] = (1, 5, 10),
                             map_k: int = 10) -> dict[str, float]:
    """Expected R@k, mAP@map_k and MRR of a random ranking (uniform over permutations), exactly.

    For a query with ``r`` relevant items among ``N``: ``R@k = 1 - C(N-r, k) / C(N, k)``;
    ``AP@k = (1/N) sum_{j<=k} (1/j) (1 + (j-1)(r-1)/(N-1))`` (the precision at position j given a
    relevant item there); ``MRR = sum_j (1/j) C(N-j, r-1) / C(N, r)``. Means over the queries with
    at least one relevant item, as :func:`zskit.metrics.retrieval_metrics` takes them.
    """
    rel = np.asarray(relevant, dtype=bool)
    if rel.ndim != 2:
        raise ConfigError(f"relevant must be (n_queries, n_items), got shape {rel.shape}.")
    n_items = rel.shape[1]
    r = rel.sum(1)
    r = r[r > 0].astype(float)
    if r.size == 0:
        raise ConfigError("no query has a relevant item; the chance level is undefined.")
    n = float(n_items)
    out = {}
    for k in ks:
        kk = min(int(k), n_items)
        miss = np.where(n - r >= kk, np.exp(_log_comb(n - r, kk) - _log_comb(n, kk)), 0.0)
        out[f"R@{k}"] = float(np.mean(1.0 - miss))
    j = np.arange(1, min(map_k, n_items) + 1, dtype=float)
    corr = np.zeros_like(r) if n_items == 1 else (r - 1) / (n - 1)
    ap = (1.0 / n) * np.sum((1.0 / j)[None, :] * (1.0 + (j[None, :] - 1) * corr[:, None]), axis=1)
    out[f"mAP@{map_k}"] = float(np.mean(ap))
    j = np.arange(1, n_items + 1, dtype=float)
    first = np.exp(_log_comb(n - j[None, :], r[:, None] - 1) - _log_comb(n, r)[:, None])
    first = np.where(n - j[None, :] >= r[:, None] - 1, first, 0.0)
    out["MRR"] = float(np.mean(np.sum(first / j[None, :], axis=1)))
    return out


def informative_k(chance: Mapping[str, float], ks: Sequence[int] = (10, 5, 1),
                  max_chance: float = 0.2) -> int:
    """The largest ``k`` in ``ks`` whose chance ``R@k`` (:func:`chance_retrieval_metrics`) is at
    most ``max_chance``, else the smallest: the cut-off where "several times chance" can be asked
    of a small test set (15 clips: random R@10 is 67%, so R@1 it is)."""
    for k in sorted(ks, reverse=True):
        if chance[f"R@{k}"] <= max_chance:
            return int(k)
    return int(min(ks))


# ---------------------------------------------------------------------------------------------
# Training recipes


def fit_dual_encoder(model: DualEncoder, train: RetrievalPairs, val: RetrievalPairs | None = None,
                     config: TrainConfig | None = None, items_per_epoch: int | None = None,
                     **fit_kwargs: Any) -> Any:
    """:func:`zskit.train.fit` with :func:`contrastive_loss` and, given ``val``, text -> audio
    retrieval metrics after each epoch (columns ``val_R@1`` ... ``val_mAP@10``).

    Uses fit's in-memory path when both sides are embeddings and no caption is swapped (and
    ``items_per_epoch`` is None), else ``train.loader(config.batch_size, items_per_epoch=...)``.
    ``val`` batches also give ``val_loss``.
    """
    from zskit.train import fit

    config = config or TrainConfig()

    def data(pairs: RetrievalPairs, shuffle: bool) -> Any:
        fast = pairs.audio_is_embedded and pairs.text_embeddings is not None
        fast = fast and (items_per_epoch is None or not shuffle)
        if fast and (pairs.swap.p == 0.0 or not any(pairs.rewrite_rows)):
            return pairs.tensors()
        return pairs.loader(config.batch_size, shuffle=shuffle, num_workers=config.num_workers,
                            drop_last=config.drop_last and shuffle,
                            items_per_epoch=items_per_epoch if shuffle else None)

    fit_kwargs.setdefault("loss_fn", contrastive_loss)
    if val is not None:
        fit_kwargs.setdefault("metric_fn", retrieval_metric_fn(val))
    return fit(model, data(train, True), val_data=None if val is None else data(val, False),
               config=config, **fit_kwargs)


def paper4_pretrain_config(**overrides: Any) -> TrainConfig:
    """Paper 4's pre-training: Adam (PyTorch defaults), batch 64, 16 epochs, 1 warm-up epoch, then
    a cosine from 2e-5 to 1e-7."""
    base = {"optimizer": "adam", "lr": 2e-5, "min_lr": 1e-7, "schedule": "cosine",
            "warmup_epochs": 1.0, "max_epochs": 16, "batch_size": 64}
    return TrainConfig(**{**base, **overrides})


def paper4_finetune_config(**overrides: Any) -> TrainConfig:
    """Paper 4's fine-tuning: as pre-training but 5 epochs at a peak lr of 8e-6 (with caption
    swap p = 0.3 on the data side, :class:`~zskit.text_augment.CaptionSwap`)."""
    return paper4_pretrain_config(**{"lr": 8e-6, "max_epochs": 5, **overrides})


def paper5_config(**overrides: Any) -> TrainConfig:
    """Paper 5's optimiser: Adam with ReduceLROnPlateau on the validation loss. The learning rate
    and batch size vary per encoder in its Table 4 (1e-4 to 7e-2, 8 to 256): set them here."""
    base = {"optimizer": "adam", "lr": 1e-4, "schedule": "plateau", "monitor": "val_loss",
            "mode": "min"}
    return TrainConfig(**{**base, **overrides})


# ---------------------------------------------------------------------------------------------
# Freezing, partial fine-tuning, per-layer learning rates


def freeze(module: nn.Module, frozen: bool = True) -> nn.Module:
    """Set ``requires_grad = not frozen`` on every parameter of ``module``; returns it."""
    for p in module.parameters():
        p.requires_grad_(not frozen)
    return module


def count_parameters(module: nn.Module, trainable: bool = True) -> int:
    """Number of (trainable, by default) parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def _outermost_block_list(module: nn.Module) -> list[nn.Module]:
    for sub in module.modules():  # pre-order: outer containers come first
        if isinstance(sub, (nn.ModuleList, nn.Sequential)):
            blocks = [m for m in sub if any(True for _ in m.parameters())]
            if len(blocks) >= 2:
                return blocks
    return []


def encoder_blocks(module: nn.Module) -> list[nn.Module]:
    """The repeated blocks of an encoder, first to last.

    Found, in order: a ``blocks`` attribute (PaSST, PANNs CNN10/14), ``layer_names`` (YAMNet), a
    transformers encoder's ``encoder.layer`` / ``layers`` (BERT, RoBERTa, MiniLM, ViT, AST), else the
    outermost ``ModuleList``/``Sequential`` holding two or more modules with parameters (ResNet's
    four stages, EfficientNet's blocks). Raises if nothing is found.
    """
    blocks = getattr(module, "blocks", None)
    if isinstance(blocks, (nn.ModuleList, nn.Sequential, list, tuple)) and len(blocks) > 0:
        return list(blocks)
    names = getattr(module, "layer_names", None)
    if names:
        return [getattr(module, n) for n in names]
    for sub in module.modules():
        encoder = getattr(sub, "encoder", None)
        layers = getattr(encoder, "layer", None) if encoder is not None else None
        layers = layers if layers is not None else getattr(sub, "layers", None)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return list(layers)
    blocks = _outermost_block_list(module)
    if not blocks:
        raise ConfigError(f"found no repeated blocks in {type(module).__name__}; freeze and "
                          "unfreeze its parameters yourself (zskit.models.dual_encoder.freeze).")
    return blocks


def unfreeze_last_blocks(module: nn.Module, k: int) -> list[str]:
    """Freeze ``module`` except its last ``k`` blocks and every parameter registered after them
    (final norms, heads): paper 5's partial fine-tuning (k = 2). Returns the trainable names.

    Registration order stands for forward order, which holds for zskit's encoders.
    """
    if k < 0:
        raise ConfigError(f"k={k} must be >= 0 (0 freezes the whole encoder).")
    freeze(module)
    if k == 0:
        return []
    blocks = encoder_blocks(module)
    first = blocks[-min(k, len(blocks))]
    first_ids = {id(p) for p in first.parameters()}
    names, on = [], False
    for name, p in module.named_parameters():
        on = on or id(p) in first_ids
        if on:
            p.requires_grad_(True)
            names.append(name)
    return names


def layerwise_lr_groups(module: nn.Module, lr: float, decay: float = 0.5,
                        trainable_only: bool = True) -> list[dict[str, Any]]:
    """Optimiser parameter groups with smaller learning rates for earlier layers (paper 5).

    Block ``i`` of ``n`` (from 0) gets ``lr * decay ** (n - 1 - i)``; parameters before the first
    block (stem, embeddings) get ``lr * decay ** n``; parameters after the last block get ``lr``.
    Pass the groups to ``fit(..., param_groups=...)``.
    """
    if not 0.0 < decay <= 1.0:
        raise ConfigError(f"decay={decay} must lie in (0, 1]; 1 gives every layer the same lr.")
    blocks = encoder_blocks(module)
    n = len(blocks)
    block_of = {id(p): i for i, b in enumerate(blocks) for p in b.parameters()}
    groups: dict[int, list[nn.Parameter]] = {}
    level = -1  # before the first block
    for p in module.parameters():
        if trainable_only and not p.requires_grad:
            continue
        if id(p) in block_of:
            level = block_of[id(p)]
        elif level == n - 1 or level > n - 1:
            level = n  # after the last block
        groups.setdefault(level, []).append(p)
    out = []
    for level in sorted(groups):
        depth = n if level < 0 else max(n - 1 - level, 0)
        out.append({"params": groups[level], "lr": lr * decay**depth})
    return out
