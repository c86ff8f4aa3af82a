"""Paper 1's cross-modal projection: audio embedding -> label-embedding space.

``pi(a) = W2 dropout(GELU(W1 norm(a) + b1)) + b2``: the input is normalised (LayerNorm), one hidden
layer (1024 units in the paper) with GELU, dropout on the hidden units, and a linear output of the
label-embedding size. A zero-shot tagger scores class ``c`` as ``pi(a) . phi(c)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from zskit.errors import ConfigError

__all__ = ["INPUT_NORMS", "ProjectionConfig", "ProjectionHead"]

INPUT_NORMS = ("layernorm", "batchnorm", "none")


@dataclass(frozen=True)
class ProjectionConfig:
    """The projection's shape apart from its input and output sizes (paper 1, section V)."""

    hidden_dim: int = 1024  # units of the one hidden layer
    dropout: float = 0.2  # on the hidden units (the paper does not give the rate)
    input_norm: str = "layernorm"  # "layernorm" | "batchnorm" | "none"

    def __post_init__(self) -> None:
        if self.hidden_dim < 1:
            raise ConfigError(f"ProjectionConfig.hidden_dim={self.hidden_dim} must be >= 1 "
                              "(paper 1 uses 1024).")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"ProjectionConfig.dropout={self.dropout} must be in [0, 1).")
        if self.input_norm not in INPUT_NORMS:
            raise ConfigError(f"ProjectionConfig.input_norm={self.input_norm!r} is unknown; use "
                              f"one of {INPUT_NORMS}.")


class ProjectionHead(nn.Module):
    """``(B, in_dim)`` audio embeddings -> ``(B, out_dim)`` points in the label space."""

    def __init__(self, in_dim: int, out_dim: int, cfg: ProjectionConfig | None = None) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1:
            raise ConfigError(f"ProjectionHead needs positive sizes, got in_dim={in_dim}, "
                              f"out_dim={out_dim}; pass the audio and label embedding sizes.")
        self.cfg = cfg or ProjectionConfig()
        self.in_dim, self.out_dim = in_dim, out_dim
        norms = {"layernorm": nn.LayerNorm, "batchnorm": nn.BatchNorm1d}
        self.norm = norms[self.cfg.input_norm](in_dim) if self.cfg.input_norm in norms \
            else nn.Identity()
        self.hidden = nn.Linear(in_dim, self.cfg.hidden_dim)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(self.cfg.dropout)
        self.out = nn.Linear(self.cfg.hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ConfigError(f"ProjectionHead expects (batch, {self.in_dim}) embeddings, got "
                              f"{tuple(x.shape)}; embed the audio with the encoder it was built for.")
        if self.training and isinstance(self.norm, nn.BatchNorm1d) and x.shape[0] < 2:
            raise ConfigError("input_norm='batchnorm' cannot train on a batch of one clip; drop "
                              "such a last batch (TrainConfig.drop_last) or use 'layernorm'.")
        return self.out(self.dropout(self.act(self.hidden(self.norm(x)))))
