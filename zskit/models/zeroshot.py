"""Paper 1's zero-shot tagger: frozen audio embeddings, frozen label embeddings, a trained projection.

``P(c | x) = sigmoid(pi(phi_audio(x)) . phi_label(c))``: ``phi_audio`` is a frozen audio encoder
(embeddings usually come from :class:`zskit.cache.EmbeddingCache`), ``phi_label`` a frozen label
encoder (GloVe, Word2Vec, MiniLM: anything with ``encode_labels(names)``), ``pi`` the
:class:`~zskit.heads.projection.ProjectionHead`. Only ``pi`` is trained, with binary cross-entropy
over the training classes (masked where labels are partial). Any list of class names can then be
scored, including names never seen in training; classification is the argmax over the given names.

>>> tagger = ZeroShotTagger(create_text_encoder("glove.6b-50d")).fit(X, Y, names, X_val=Xv, Y_val=Yv)
>>> tagger.predict_proba(X_test, ["cello", "tuba"])   # (n_clips, 2) probabilities
>>> tagger.classify(X_test, ["cello", "tuba"])        # the more probable name of each clip

Model selection follows paper 1: about 10 % of the training classes (``selection_fraction``) are
held out of training, and the epoch whose projection tags those classes best on the validation clips
(their zero-shot mAP) is kept. With ``selection_fraction=0`` (the supervised upper bound), the
epoch with the best validation mAP on the training classes is kept.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from scipy.special import expit
from torch import nn

from zskit.devices import module_device
from zskit.errors import ConfigError, DataError
from zskit.heads.projection import ProjectionConfig, ProjectionHead
from zskit.metrics import mean_average_precision
from zskit.train import TrainConfig, fit, predict

__all__ = ["CachedLabelEncoder", "LabelScorer", "ZeroShotConfig", "ZeroShotTagger",
           "choose_selection_classes"]

log = logging.getLogger(__name__)


class _LabelEncoder(Protocol):
    def encode_labels(self, names: Sequence[str]) -> Any: ...


@dataclass(frozen=True)
class ZeroShotConfig:
    """How the projection is trained (paper 1, section VI.D, scaled to small corpora)."""

    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    epochs: int = 10  # paper 1: ten epochs with the embedding model frozen
    lr: float = 1e-3  # AdamW, constant
    weight_decay: float = 1e-4  # paper 1's value
    batch_size: int = 64
    selection_fraction: float = 0.1  # training classes held out for model selection (0: none)
    drop_unlabelled: bool = True  # drop training clips with no positive training class (paper 1's
    #                               balanced sampling does); their negatives are then unused
    seed: int = 0  # initialisation, shuffling and the choice of selection classes
    device: str = "auto"

    def __post_init__(self) -> None:
        if not 0.0 <= self.selection_fraction < 1.0:
            raise ConfigError(f"ZeroShotConfig.selection_fraction={self.selection_fraction} must "
                              "be in [0, 1); paper 1 holds out about 0.1 of the training classes.")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ZeroShotConfig.{name}={getattr(self, name)} must be >= 1.")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError(f"ZeroShotConfig needs lr > 0 and weight_decay >= 0, got lr={self.lr}"
                              f", weight_decay={self.weight_decay}.")


class CachedLabelEncoder:
    """A label encoder that encodes each name once, as float32 CPU vectors.

    Taggers wrap their label encoder in one; pass the same instance to many taggers (or to
    :func:`zskit.zeroshot_eval.evaluate`) to share the vectors between runs: MiniLM is not free.
    """

    def __init__(self, encoder: _LabelEncoder) -> None:
        if not hasattr(encoder, "encode_labels"):
            raise ConfigError(f"{type(encoder).__name__} has no encode_labels(names); pass a "
                              "zskit text encoder, e.g. create_text_encoder('glove.6b-50d').")
        self.encoder = encoder
        self.vectors: dict[str, torch.Tensor] = {}

    def encode_labels(self, names: Sequence[str]) -> torch.Tensor:
        """``(len(names), E)`` vectors; names not seen before are encoded in one call."""
        if isinstance(names, str):
            raise ConfigError(f"class names must be a list of names, got the string {names!r}.")
        if not names:
            raise ConfigError("class_names is empty; pass at least one class name to score.")
        missing = [n for n in dict.fromkeys(names) if n not in self.vectors]
        if missing:
            vectors = torch.as_tensor(self.encoder.encode_labels(missing)).float().cpu()
            self.vectors.update(zip(missing, vectors))
        return torch.stack([self.vectors[n] for n in names])


class LabelScorer(nn.Module):
    """``head(x) @ labels.T``: logits of clips ``(B, D)`` against fixed label vectors ``(C, E)``."""

    def __init__(self, head: ProjectionHead, labels: torch.Tensor) -> None:
        super().__init__()
        self.head = head
        self.register_buffer("labels", labels.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x) @ self.labels.T


def choose_selection_classes(classes: Sequence[str], y_val: np.ndarray, mask_val: np.ndarray | None,
                             fraction: float, seed: int = 0,
                             exclude: Sequence[str] = ()) -> list[str]:
    """A seeded ``fraction`` of ``classes`` (at least one when ``fraction > 0`` and there are more
    than two classes) held out of training for model selection, drawn from the classes with a
    known validation positive and not in ``exclude``; returned in ``classes`` order."""
    classes = list(classes)
    n = round(fraction * len(classes))
    if n == 0 and fraction > 0 and len(classes) > 2:
        n = 1
    if n == 0:
        return []
    known_pos = np.asarray(y_val) > 0.5
    if mask_val is not None:
        known_pos &= np.asarray(mask_val, dtype=bool)
    skip = set(exclude)
    candidates = [c for c, p in zip(classes, known_pos.any(axis=0)) if p and c not in skip]
    if len(candidates) < n:
        log.warning("only %d of %d classes can be held out for selection (a validation positive,"
                    " not excluded); holding out %d", len(candidates), len(classes),
                    len(candidates))
        n = len(candidates)
    rng = np.random.default_rng(seed)
    return [candidates[i] for i in sorted(rng.choice(len(candidates), n, replace=False))]


def _float_tensor(name: str, x: Any, ndim: int = 2) -> torch.Tensor:
    array = np.asarray(x, dtype=np.float32)
    if not array.flags.writeable:  # e.g. a read-only cache memmap: torch needs its own copy
        array = array.copy()
    t = torch.from_numpy(array)
    if t.ndim != ndim:
        raise ConfigError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}.")
    return t


class ZeroShotTagger:
    """Zero-shot audio tagger of paper 1, scikit-learn style (``fit`` returns ``self``).

    ``label_encoder``: anything with ``encode_labels(names) -> (n, E)`` (a zskit text encoder),
    wrapped in a :class:`CachedLabelEncoder` unless it is one.
    ``audio_encoder``: optional; needed only to score waveforms or audio files directly.
    Learned attributes: ``head_`` (the projection), ``classes_`` (names trained on),
    ``selection_classes_`` (names held out for model selection), ``history_`` (one row per epoch),
    ``best_epoch_`` (the epoch whose weights are kept: the last one without validation data).
    """

    def __init__(self, label_encoder: _LabelEncoder, config: ZeroShotConfig | None = None,
                 audio_encoder: nn.Module | None = None) -> None:
        self.label_encoder = (label_encoder if isinstance(label_encoder, CachedLabelEncoder)
                              else CachedLabelEncoder(label_encoder))
        self.config = config or ZeroShotConfig()
        self.audio_encoder = audio_encoder

    # -- label side ------------------------------------------------------------------------------
    def label_embeddings(self, names: Sequence[str]) -> torch.Tensor:
        """``phi_label`` of each name ``(len(names), E)``, computed once per name."""
        return self.label_encoder.encode_labels(names)

    # -- training --------------------------------------------------------------------------------
    def fit(self, X: Any, Y: Any, classes: Sequence[str], mask: Any = None, *,
            X_val: Any = None, Y_val: Any = None, mask_val: Any = None,
            selection_classes: Sequence[str] | None = None) -> ZeroShotTagger:
        """Train the projection on clips ``X (N, D)`` tagged ``Y (N, C)`` for ``classes`` (C names).

        ``mask`` (N, C) marks known labels (OpenMIC style); BCE ignores the rest. With validation
        data, ``selection_classes`` (default: a seeded ``selection_fraction`` of the classes that
        have a validation positive) are left out of training and pick the best epoch by their
        validation mAP.
        """
        cfg = self.config
        classes = list(classes)
        x = _float_tensor("X", X)
        y = _float_tensor("Y", Y)
        m = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=bool))
        if y.shape != (x.shape[0], len(classes)) or (m is not None and m.shape != y.shape):
            raise ConfigError(f"X has {x.shape[0]} clips and {len(classes)} classes are named, so Y "
                              f"(and mask) must be {(x.shape[0], len(classes))}; got Y "
                              f"{tuple(y.shape)}" + ("" if m is None else f", mask {tuple(m.shape)}")
                              + ".")
        if len(set(classes)) != len(classes):
            raise ConfigError("classes holds duplicate names; give each column one unique name.")
        has_val = X_val is not None
        if has_val and Y_val is None:
            raise ConfigError("X_val was given without Y_val; pass both or neither.")
        xv = _float_tensor("X_val", X_val) if has_val else None
        yv = _float_tensor("Y_val", Y_val) if has_val else None
        mv = None if mask_val is None else torch.as_tensor(np.asarray(mask_val, dtype=bool))
        if has_val and (xv.shape[1] != x.shape[1] or yv.shape != (xv.shape[0], len(classes))):
            raise ConfigError(f"validation data must be X_val (n, {x.shape[1]}) and Y_val "
                              f"(n, {len(classes)}); got {tuple(xv.shape)} and {tuple(yv.shape)}.")
        if mv is not None and (not has_val or mv.shape != yv.shape):
            raise ConfigError(f"mask_val must mark the known entries of Y_val, shape "
                              f"{None if yv is None else tuple(yv.shape)}; got {tuple(mv.shape)}"
                              + ("" if has_val else " without X_val and Y_val") + ".")

        if not has_val:
            selection = []
        elif selection_classes is None:
            selection = choose_selection_classes(classes, yv.numpy(), None if mv is None else
                                                 mv.numpy(), cfg.selection_fraction, cfg.seed)
        else:
            selection = list(selection_classes)
            unknown = [c for c in selection if c not in classes]
            if unknown:
                raise ConfigError(f"selection classes {unknown} are not among the training "
                                  "classes; pick them from `classes`.")
        keep = [j for j, c in enumerate(classes) if c not in set(selection)]
        if not keep:
            raise ConfigError(f"no training class is left after holding out {selection} for "
                              "model selection; lower selection_fraction or pass more classes.")
        train_names = [classes[j] for j in keep]
        y_tr, m_tr = y[:, keep], None if m is None else m[:, keep]
        rows = torch.ones(len(x), dtype=torch.bool)
        if cfg.drop_unlabelled:
            known_pos = y_tr > 0.5 if m_tr is None else (y_tr > 0.5) & m_tr
            rows = known_pos.any(dim=1)
        if not rows.any():
            raise DataError(f"no training clip has a positive label among {len(train_names)} "
                            "training classes; check the labels, or set drop_unlabelled=False.")
        train_data = (x[rows], y_tr[rows]) + (() if m_tr is None else (m_tr[rows],))
        n_train = int(rows.sum())
        batchnorm = cfg.projection.input_norm == "batchnorm"
        if batchnorm and n_train < 2:
            raise ConfigError(f"input_norm='batchnorm' needs at least 2 training clips per batch, "
                              f"but {n_train} is left; use input_norm='layernorm' or more clips.")

        torch.manual_seed(cfg.seed)
        head = ProjectionHead(x.shape[1], self.label_embeddings(classes[:1]).shape[1],
                              cfg.projection)
        model = LabelScorer(head, self.label_embeddings(train_names))
        val_data, metric_fn, monitor = None, None, "train_loss"
        if has_val:
            mv_tr = None if mv is None else mv[:, keep]
            val_data = (xv, yv[:, keep]) + (() if mv_tr is None else (mv_tr,))
            sel_idx = [classes.index(c) for c in selection]
            eval_idx, eval_names = (sel_idx, selection) if selection else (keep, train_names)
            eval_labels = self.label_embeddings(eval_names)
            eval_y = yv[:, eval_idx].numpy()
            eval_m = None if mv is None else mv[:, eval_idx].numpy()

            def metric_fn(net: nn.Module, _: Any) -> dict[str, float]:
                device = net.labels.device
                logits = net.head(xv.to(device)) @ eval_labels.to(device).T
                return {"select_map": mean_average_precision(eval_y, logits.float().cpu().numpy(),
                                                             eval_m)}

            monitor = "val_select_map"
        train_cfg = TrainConfig(
            lr=cfg.lr, optimizer="adamw", weight_decay=cfg.weight_decay, batch_size=cfg.batch_size,
            max_epochs=cfg.epochs, seed=cfg.seed, device=cfg.device, amp="off", monitor=monitor,
            mode="max" if has_val else "min", select="best" if has_val else "last",
            # BatchNorm cannot normalise a batch of one clip: drop such a last batch
            drop_last=batchnorm and n_train % cfg.batch_size == 1, progress=False)
        result = fit(model, train_data, val_data=val_data, config=train_cfg, metric_fn=metric_fn)
        self.head_ = head.cpu().eval()
        self.in_dim_ = int(x.shape[1])
        self.classes_ = train_names
        self.selection_classes_ = list(selection)
        self.history_: pd.DataFrame = result.history
        self.best_epoch_ = result.best_epoch if has_val else len(result.history)
        self.n_train_clips_ = n_train
        return self

    # -- scoring ---------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise ConfigError("this ZeroShotTagger is not fitted yet; call .fit(X, Y, classes) "
                              "first.")

    def embed(self, audio: Any, kind: str = "auto") -> torch.Tensor:
        """Audio embeddings ``(N, D)`` from embeddings, waveforms or audio file paths.

        ``kind``: "embeddings", "waveforms" (``(B, T)`` at the audio encoder's rate), "paths" (a
        list of files, embedded through the embedding cache) or "auto" (a list of str/paths ->
        paths; a 2-D array with ``D`` columns -> embeddings; other arrays -> waveforms).
        """
        self._check_fitted()
        if kind == "auto":
            if isinstance(audio, (list, tuple)) and audio and isinstance(audio[0], (str, os.PathLike)):
                kind = "paths"
            else:
                shape = np.shape(audio)
                kind = "embeddings" if len(shape) == 2 and shape[1] == self.in_dim_ else "waveforms"
        if kind == "embeddings":
            x = _float_tensor("embeddings", audio)
            if x.shape[1] != self.in_dim_:
                raise ConfigError(f"embeddings have {x.shape[1]} columns but the projection "
                                  f"expects {self.in_dim_}; use the audio encoder it was fit on.")
            return x
        if kind not in ("waveforms", "paths"):
            raise ConfigError(f"kind={kind!r} is unknown; use 'auto', 'embeddings', 'waveforms' "
                              "or 'paths'.")
        if self.audio_encoder is None:
            raise ConfigError(f"scoring {kind} needs an audio encoder: pass audio_encoder= to "
                              "ZeroShotTagger, or pass precomputed embeddings.")
        if kind == "paths":
            from zskit.cache import embed_manifest

            paths = [Path(p) for p in audio]
            return torch.from_numpy(np.array(embed_manifest(self.audio_encoder, paths,
                                                            progress=False)))
        device = module_device(self.audio_encoder) or torch.device("cpu")
        waves = torch.as_tensor(audio, dtype=torch.float32, device=device)
        was_training = self.audio_encoder.training
        self.audio_encoder.eval()
        try:
            with torch.inference_mode():
                emb = self.audio_encoder(waves if waves.ndim == 2 else waves[None])
        finally:
            self.audio_encoder.train(was_training)
        return emb.float().cpu().clone()

    def decision_function(self, audio: Any, class_names: Sequence[str],
                          kind: str = "auto") -> np.ndarray:
        """Logits ``pi(phi_audio(x)) . phi_label(c)``, shape ``(n_clips, len(class_names))``."""
        x = self.embed(audio, kind)
        scorer = LabelScorer(self.head_, self.label_embeddings(list(class_names)))
        return predict(scorer, x, batch_size=1024, device="cpu").numpy()

    def predict_proba(self, audio: Any, class_names: Sequence[str],
                      kind: str = "auto") -> np.ndarray:
        """``P(c | x)`` for every clip and every given name (seen in training or not)."""
        return expit(self.decision_function(audio, class_names, kind))  # no overflow at |x| > 88

    def predict(self, audio: Any, class_names: Sequence[str], threshold: float = 0.5,
                kind: str = "auto") -> np.ndarray:
        """Binary tags ``(n_clips, len(class_names))``: ``P(c | x) >= threshold``."""
        return self.predict_proba(audio, class_names, kind) >= threshold

    def classify(self, audio: Any, class_names: Sequence[str], kind: str = "auto") -> list[str]:
        """The most probable of ``class_names`` for each clip (argmax over the given classes)."""
        names = list(class_names)
        return [names[i] for i in self.decision_function(audio, names, kind).argmax(axis=1)]
