"""Hierarchical heads of paper 3: fine and coarse tag probabilities from a clip embedding.

Every head is an ``nn.Module`` built from ``(in_dim, hierarchy)`` whose ``forward(z)`` returns a
:class:`HierarchicalOutput` with fine ``(B, F)`` and coarse ``(B, C)`` probabilities (and the logits
where the head has them, for a numerically stable loss). The methods of the paper's Table 1:

==============  ===========================================================================
``baseline``    flat: one linear layer for the fine tags; the coarse tags by grouped max pooling
                of the fine probabilities at inference only (no coarse loss, Fig. 2 conventional)
``level_wise``  two parallel linear layers, one per level, plus two hierarchy-consistency terms
                (Fig. 2 a)
``top_down``    a soft decision tree: ``P_fine = P_coarse[parent] * sigmoid(leaf)`` (Fig. 2 b)
``gap``         bottom-up: coarse = mean of the children's fine probabilities (Fig. 2 c)
``lp``          bottom-up: coarse = ``sigmoid(Linear(P_fine))``, a learned projection (Fig. 2 c)
``gmp``         bottom-up: coarse = max of the children's fine probabilities (Fig. 2 c)
``resatt``      bottom-up: an attention map ``W (F, C)`` per clip from a linear layer on the
                embedding, softmax over the fine dimension, ``P_coarse = W^T P_fine`` (Fig. 2 d)
==============  ===========================================================================

Design decisions (paper 3 leaves these open):

- The level-wise "loss items of [13]" are read as two hinge penalties on the predictions, added
  with weight ``consistency_weight``: a fine tag may not be more probable than its coarse parent
  (``relu(P_fine - P_coarse[parent])``), and a coarse tag may not be more probable than its most
  probable child (``relu(P_coarse - max_children P_fine)``). Both are means over all entries:
  they need no label, so the label mask does not apply to them.
- ResAtt's attention layer is one ``Linear(in_dim, F * C)`` reshaped to ``(F, C)``; its bias is an
  input-independent part of the map. The softmax runs over all ``F`` fine tags (ResAtt gets no
  prior knowledge of the hierarchy). The paper's word "residual" is not specified further.
- LP is the same bottom-up head with the attention replaced by ``Linear(F, C)`` on the fine
  probabilities, followed by a sigmoid so that the coarse outputs are probabilities.
- Mixed precision: the linear layers may run in fp16/bf16 under ``torch.autocast``, but their
  logits are cast to float32 and every sigmoid, softmax and pooling runs with autocast disabled.
  In half precision a probability above ~0.996 rounds to exactly 1.0, which sends the
  probability-space BCE of the pooled and top-down outputs to its clamp (loss ~100). GMP (and the
  baseline's inference-time GMP) also returns coarse logits, the grouped max of the fine logits:
  ``sigmoid`` is monotone, so ``sigmoid(max logits) == max sigmoid(logits)`` exactly, and the
  coarse BCE can use the stable with-logits form.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from zskit.errors import ConfigError
from zskit.hierarchy import Hierarchy
from zskit.losses import masked_bce

__all__ = [
    "HEADS",
    "BottomUpHead",
    "FlatHead",
    "HierarchicalHead",
    "HierarchicalOutput",
    "LevelWiseHead",
    "ResAttHead",
    "TopDownHead",
    "create_hierarchical_head",
    "grouped_max",
    "grouped_max_logits",
    "grouped_mean",
    "hierarchy_loss",
    "hierarchy_violation",
    "list_hierarchical_heads",
]


class HierarchicalOutput(NamedTuple):
    """What a hierarchical head returns for a batch of ``B`` clips."""

    fine: torch.Tensor  # (B, F) probabilities
    coarse: torch.Tensor  # (B, C) probabilities
    fine_logits: torch.Tensor | None = None  # (B, F) when P_fine = sigmoid(logits)
    coarse_logits: torch.Tensor | None = None  # (B, C) when P_coarse = sigmoid(logits)
    attention: torch.Tensor | None = None  # (B, F, C) ResAtt's maps (columns sum to 1)


def grouped_max(fine: torch.Tensor, membership: torch.Tensor) -> torch.Tensor:
    """``(B, C)``: for each coarse tag the largest of its children's probabilities (GMP).

    ``fine`` holds probabilities (>= 0), so non-children (multiplied by 0) never win.
    """
    return (fine.unsqueeze(-1) * membership).amax(dim=1)


def grouped_max_logits(fine_logits: torch.Tensor, membership: torch.Tensor) -> torch.Tensor:
    """``(B, C)``: for each coarse tag the largest of its children's logits.

    ``sigmoid`` of this equals :func:`grouped_max` of the fine probabilities (sigmoid is
    monotone), but it can feed the numerically stable with-logits BCE.
    """
    excluded = torch.where(membership > 0, 0.0, float("-inf")).to(fine_logits)
    return (fine_logits.unsqueeze(-1) + excluded).amax(dim=1)


def grouped_mean(fine: torch.Tensor, membership: torch.Tensor) -> torch.Tensor:
    """``(B, C)``: for each coarse tag the mean of its children's probabilities (GAP)."""
    return fine @ (membership / membership.sum(dim=0, keepdim=True))


class HierarchicalHead(nn.Module):
    """Base class: keeps the hierarchy's membership matrix ``(F, C)`` as a buffer."""

    method: str = ""
    joint: bool = True  # False: trained on the fine level only (the flat baseline)
    consistency: bool = False  # True: the level-wise hierarchy terms join the loss

    def __init__(self, in_dim: int, hierarchy: Hierarchy) -> None:
        super().__init__()
        if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 1:
            raise ConfigError(f"in_dim={in_dim!r} must be a positive int (the embedding size).")
        self.in_dim, self.hierarchy = in_dim, hierarchy
        self.n_fine, self.n_coarse = hierarchy.n_fine, hierarchy.n_coarse
        self.register_buffer("membership", hierarchy.tensor(), persistent=False)
        self.register_buffer("parent", hierarchy.parent_index(), persistent=False)

    def _check(self, z: torch.Tensor) -> None:
        if z.ndim != 2 or z.shape[1] != self.in_dim:
            raise ConfigError(
                f"{type(self).__name__} expects embeddings (B, {self.in_dim}), got "
                f"{tuple(z.shape)}; pass clip embeddings of the size the head was built with."
            )

    @staticmethod
    def _float32(z: torch.Tensor) -> contextlib.AbstractContextManager:
        """Autocast switched off: sigmoid, softmax and pooling of float32 logits stay float32."""
        return torch.autocast(z.device.type, enabled=False)

    def _gmp_output(self, fine_logits: torch.Tensor) -> HierarchicalOutput:
        """Fine probabilities and their GMP coarse tags, both with logits (float32 input)."""
        coarse_logits = grouped_max_logits(fine_logits, self.membership)
        return HierarchicalOutput(
            torch.sigmoid(fine_logits), torch.sigmoid(coarse_logits), fine_logits, coarse_logits
        )

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, n_fine={self.n_fine}, n_coarse={self.n_coarse}"


class FlatHead(HierarchicalHead):
    """The flat baseline: fine logits from one linear layer, coarse = GMP at inference."""

    method, joint = "baseline", False

    def __init__(self, in_dim: int, hierarchy: Hierarchy) -> None:
        super().__init__(in_dim, hierarchy)
        self.fine_layer = nn.Linear(in_dim, self.n_fine)

    def forward(self, z: torch.Tensor) -> HierarchicalOutput:
        self._check(z)
        logits = self.fine_layer(z).float()
        with self._float32(z):
            return self._gmp_output(logits)


class LevelWiseHead(HierarchicalHead):
    """Two parallel linear layers, one per level (Fig. 2 a), with the consistency terms."""

    method, consistency = "level_wise", True

    def __init__(self, in_dim: int, hierarchy: Hierarchy) -> None:
        super().__init__(in_dim, hierarchy)
        self.fine_layer = nn.Linear(in_dim, self.n_fine)
        self.coarse_layer = nn.Linear(in_dim, self.n_coarse)

    def forward(self, z: torch.Tensor) -> HierarchicalOutput:
        self._check(z)
        fine_logits, coarse_logits = self.fine_layer(z).float(), self.coarse_layer(z).float()
        with self._float32(z):
            return HierarchicalOutput(
                torch.sigmoid(fine_logits), torch.sigmoid(coarse_logits), fine_logits, coarse_logits
            )


class TopDownHead(HierarchicalHead):
    """Soft decision tree (Fig. 2 b): ``P_fine[i] = P_coarse[parent(i)] * sigmoid(leaf[i])``."""

    method = "top_down"

    def __init__(self, in_dim: int, hierarchy: Hierarchy) -> None:
        super().__init__(in_dim, hierarchy)
        self.coarse_layer = nn.Linear(in_dim, self.n_coarse)
        self.leaf_layer = nn.Linear(in_dim, self.n_fine)

    def forward(self, z: torch.Tensor) -> HierarchicalOutput:
        self._check(z)
        coarse_logits, leaf_logits = self.coarse_layer(z).float(), self.leaf_layer(z).float()
        with self._float32(z):
            coarse = torch.sigmoid(coarse_logits)
            fine = coarse[:, self.parent] * torch.sigmoid(leaf_logits)
        return HierarchicalOutput(fine, coarse, coarse_logits=coarse_logits)


POOLINGS = ("gap", "lp", "gmp")


class BottomUpHead(HierarchicalHead):
    """Fine tags from one linear layer, coarse tags pooled from them (Fig. 2 c): GAP, LP or GMP."""

    def __init__(self, in_dim: int, hierarchy: Hierarchy, pooling: str = "gmp") -> None:
        super().__init__(in_dim, hierarchy)
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling={pooling!r} is not one of {POOLINGS}; pick one of those.")
        self.method = self.pooling = pooling
        self.fine_layer = nn.Linear(in_dim, self.n_fine)
        self.projection = nn.Linear(self.n_fine, self.n_coarse) if pooling == "lp" else None

    def forward(self, z: torch.Tensor) -> HierarchicalOutput:
        self._check(z)
        fine_logits = self.fine_layer(z).float()
        if self.pooling == "gmp":
            with self._float32(z):
                return self._gmp_output(fine_logits)
        with self._float32(z):
            fine = torch.sigmoid(fine_logits)
            if self.pooling == "gap":
                return HierarchicalOutput(fine, grouped_mean(fine, self.membership), fine_logits)
        coarse_logits = self.projection(fine).float()  # LP: a linear layer, autocast may apply
        with self._float32(z):
            coarse = torch.sigmoid(coarse_logits)
        return HierarchicalOutput(fine, coarse, fine_logits, coarse_logits)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pooling={self.pooling!r}"


class ResAttHead(HierarchicalHead):
    """ResAtt (Fig. 2 d): per-clip attention ``W (F, C)``, softmax over F, ``P_coarse = W^T P_fine``."""

    method = "resatt"

    def __init__(self, in_dim: int, hierarchy: Hierarchy) -> None:
        super().__init__(in_dim, hierarchy)
        self.fine_layer = nn.Linear(in_dim, self.n_fine)
        self.attention_layer = nn.Linear(in_dim, self.n_fine * self.n_coarse)

    def forward(self, z: torch.Tensor) -> HierarchicalOutput:
        self._check(z)
        fine_logits, scores = self.fine_layer(z).float(), self.attention_layer(z).float()
        with self._float32(z):
            fine = torch.sigmoid(fine_logits)
            attention = torch.softmax(scores.view(-1, self.n_fine, self.n_coarse), dim=1)
            coarse = torch.einsum("bf,bfc->bc", fine, attention)
        return HierarchicalOutput(fine, coarse, fine_logits, attention=attention)


HEADS: dict[str, Callable[[int, Hierarchy], HierarchicalHead]] = {
    "baseline": FlatHead,
    "level_wise": LevelWiseHead,
    "top_down": TopDownHead,
    "gap": lambda in_dim, h: BottomUpHead(in_dim, h, "gap"),
    "lp": lambda in_dim, h: BottomUpHead(in_dim, h, "lp"),
    "gmp": lambda in_dim, h: BottomUpHead(in_dim, h, "gmp"),
    "resatt": ResAttHead,
}


def list_hierarchical_heads() -> list[str]:
    """The method names of paper 3's Table 1, in its order."""
    return list(HEADS)


def create_hierarchical_head(method: str, in_dim: int, hierarchy: Hierarchy) -> HierarchicalHead:
    """The head of ``method`` (one of :func:`list_hierarchical_heads`)."""
    if method not in HEADS:
        raise ConfigError(
            f"unknown hierarchical method {method!r}; choose one of {list_hierarchical_heads()}."
        )
    return HEADS[method](in_dim, hierarchy)


def hierarchy_violation(
    fine: torch.Tensor, coarse: torch.Tensor, membership: torch.Tensor
) -> torch.Tensor:
    """Mean hinge penalty of predictions that break the max rule (the level-wise terms).

    ``relu(P_fine - P_coarse[parent])`` averaged over (clip, fine tag) plus
    ``relu(P_coarse - max_children P_fine)`` averaged over (clip, coarse tag).
    """
    parent_prob = coarse @ membership.T  # (B, F): each fine tag's parent probability
    child_exceeds = F.relu(fine - parent_prob).mean()
    parent_alone = F.relu(coarse - grouped_max(fine, membership)).mean()
    return child_exceeds + parent_alone


def _level_bce(
    probs: torch.Tensor, logits: torch.Tensor | None, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    if logits is not None:
        return masked_bce(logits, targets, mask)
    return masked_bce(probs, targets, mask, from_logits=False)


def hierarchy_loss(
    head: HierarchicalHead,
    out: HierarchicalOutput,
    fine_targets: torch.Tensor,
    fine_mask: torch.Tensor,
    coarse_targets: torch.Tensor,
    coarse_mask: torch.Tensor,
    lam: float = 0.8,
    consistency_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """``{"total", "fine", "coarse"}``: ``lam * BCE_fine + (1 - lam) * BCE_coarse`` (Eq. 2).

    Both BCEs are masked (only known labels count). The flat baseline trains on the fine level
    only (``total = fine``, whatever ``lam``); the level-wise head adds
    ``consistency_weight * hierarchy_violation``.
    """
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"lam={lam} must lie in [0, 1] (paper 3 searches 0.70-0.90).")
    fine = _level_bce(out.fine, out.fine_logits, fine_targets, fine_mask)
    coarse = _level_bce(out.coarse, out.coarse_logits, coarse_targets, coarse_mask)
    total = lam * fine + (1.0 - lam) * coarse if head.joint else fine
    if head.consistency and consistency_weight:
        with head._float32(out.fine):  # its matmul would otherwise run in half precision
            violation = hierarchy_violation(out.fine, out.coarse, head.membership)
        total = total + consistency_weight * violation
    return {"total": total, "fine": fine.detach(), "coarse": coarse.detach()}
