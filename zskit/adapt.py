"""ImageNet vision transformers (ViT, DeiT) as the starting point of an AST (paper 2, Section 2.2).

An AST and a ViT share the transformer; only the input side differs. :func:`adapt_vision_transformer`
copies a ViT/DeiT checkpoint into an :class:`~zskit.encoders.audio.ast.ASTEncoder`:

- **patch embedding**: the ViT's ``(D, 3, 16, 16)`` kernel becomes ``(D, 1, 16, 16)`` by averaging
  the three colour channels (the paper's wording, ``channel_reduction="mean"``). Summing them
  (``"sum"``, what AST's released code does) is *exactly* the ViT applied to the spectrogram copied
  into three channels; the mean is that response divided by 3 (plus the same bias);
- **positional embedding**: the ViT's square grid (24 x 24 at 384 px, 14 x 14 at 224 px) is fitted
  to the audio grid one axis at a time, time first: an axis the audio needs fewer positions on is
  cut from the middle, an axis it needs more on is interpolated (``"bilinear"``, the paper's
  choice, or ``"nearest"``, its Table 4 ablation; ``"reinit"`` keeps the AST's own random
  positions, the other Table 4 row). Where the sizes already match the grid is copied unchanged;
- **tokens**: a DeiT's [CLS] and distillation tokens (and their positions) go to AST's [CLS] and
  [DIST]; AST's clip embedding is the mean of the two outputs, i.e. "DeiT's two tokens averaged".
  A ViT has one [CLS]: it (and its position) is reused for both, so the two outputs are identical
  and the mean is the [CLS] output;
- **transformer blocks and final norm** are copied one to one; the classification head is not
  (AST gets a new one).

Sources: a transformers ``ViTModel``/``DeiTModel`` (or their ``...ForImageClassification``, or a
state dict of either), or a timm ``vit_*``/``deit_*`` state dict (``patch_embed.proj.weight``,
``blocks.i.attn.qkv``, ...), converted to transformers' names of the installed version. Offline
tests use small random ViT/DeiT models built from their configs; online,
``transformers.DeiTModel.from_pretrained("facebook/deit-base-distilled-patch16-384")`` is paper 2's
checkpoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from zskit.encoders.audio.ast import ASTEncoder
from zskit.errors import ConfigError, DataError

__all__ = [
    "CHANNEL_REDUCTIONS",
    "POSITION_MODES",
    "adapt_position_grid",
    "adapt_vision_transformer",
    "position_grid",
    "timm_to_transformers",
    "vision_state_dict",
]

POSITION_MODES = ("bilinear", "nearest", "reinit")
CHANNEL_REDUCTIONS = ("mean", "sum")
_AST = "audio_spectrogram_transformer."
_TORCH_MODE = {"bilinear": "bilinear", "nearest": "nearest-exact"}  # nearest-exact: true rounding


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {list(choices)}; pick one of those.")


# --------------------------------------------------------------------------- positional grids


def _fit_axis(grid: torch.Tensor, axis: int, size: int, mode: str) -> torch.Tensor:
    """``grid`` (1, D, H, W) with ``axis`` (2: H, 3: W) cut from the middle or interpolated."""
    have = grid.shape[axis]
    if size <= have:
        start = have // 2 - size // 2
        return grid.narrow(axis, start, size)
    target = list(grid.shape[2:])
    target[axis - 2] = size
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(grid, size=tuple(target), mode=_TORCH_MODE[mode], **kwargs)


def adapt_position_grid(grid: torch.Tensor, size: tuple[int, int],
                        mode: str = "bilinear") -> torch.Tensor:
    """A positional grid ``(D, H, W)`` fitted to ``size = (rows, cols)``: see the module docstring.

    Time (columns) first, then frequency (rows), as AST does. Sizes that match are left as they
    are, so a grid that already fits comes back unchanged.
    """
    _choice("mode", mode, tuple(_TORCH_MODE))
    if grid.ndim != 3:
        raise ConfigError(f"a positional grid is (D, rows, cols); got shape {tuple(grid.shape)}.")
    rows, cols = (int(s) for s in size)
    if rows <= 0 or cols <= 0:
        raise ConfigError(f"target grid size {size} must be positive.")
    out = _fit_axis(grid[None].float(), 3, cols, mode)
    out = _fit_axis(out, 2, rows, mode)
    return out[0].to(grid.dtype)


def position_grid(model: ASTEncoder) -> torch.Tensor:
    """The AST's patch positional embeddings as a grid ``(D, rows, cols)`` (a detached copy)."""
    pos = model.audio_spectrogram_transformer.embeddings.position_embeddings.detach()
    rows, cols = model.cfg.grid
    return pos[0, 2:].T.reshape(-1, rows, cols).clone()


# --------------------------------------------------------------------------- checkpoint formats

_TIMM_BLOCK = {
    "norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.o_proj",
    "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
}


def timm_to_transformers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A timm ViT/DeiT state dict renamed to transformers' (v5) ``ViTModel``/``DeiTModel`` keys.

    timm's fused ``attn.qkv`` is split into query, key and value (rows in that order); heads
    (``head``, ``head_dist``) are dropped.
    """
    out: dict[str, torch.Tensor] = {}
    simple = {"cls_token": "embeddings.cls_token", "dist_token": "embeddings.distillation_token",
              "pos_embed": "embeddings.position_embeddings",
              "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
              "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
              "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
    unknown = []
    for key, value in state.items():
        if key in simple:
            out[simple[key]] = value
            continue
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", key)
        if m is None:
            if not key.startswith(("head.", "head_dist.", "fc_norm.", "pre_logits.")):
                unknown.append(key)
            continue
        i, module, kind = m.groups()
        prefix = f"layers.{i}."
        if module == "attn.qkv":
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{prefix}attention.{part}.{kind}"] = chunk
        elif module in _TIMM_BLOCK:
            out[f"{prefix}{_TIMM_BLOCK[module]}.{kind}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise DataError(f"timm checkpoint keys not understood: {unknown[:8]}; is it a plain ViT/DeiT "
                        "(vit_*_patch16_*, deit_*_patch16_*)?")
    return out


def vision_state_dict(source: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of a ViT/DeiT in transformers' ``ViTModel`` naming (see the module docstring).

    ``vit.``/``deit.`` prefixes of ``...ForImageClassification`` models and a DeiT-style
    ``{"model": ...}`` wrapper are removed; classifier and pooler weights are dropped.
    """
    state = source.state_dict() if isinstance(source, nn.Module) else source
    if "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if "patch_embed.proj.weight" in state:
        return timm_to_transformers(state)
    out = {}
    for key, value in state.items():
        key = re.sub(r"^(vit|deit)\.", "", key)
        if key.startswith(("classifier", "cls_classifier", "distillation_classifier", "pooler")):
            continue
        out[key] = value
    if "embeddings.patch_embeddings.projection.weight" not in out:
        raise DataError("the source has no embeddings.patch_embeddings.projection.weight: pass a "
                        "transformers ViT/DeiT model or state dict, or a timm one.")
    return out


# --------------------------------------------------------------------------- adaptation


def adapt_vision_transformer(model: ASTEncoder, source: nn.Module | Mapping[str, torch.Tensor], *,
                             positions: str = "bilinear",
                             channel_reduction: str = "mean") -> ASTEncoder:
    """Initialise ``model`` (an AST) from an ImageNet ViT or DeiT; returns ``model``.

    ``positions``: ``"bilinear"`` | ``"nearest"`` | ``"reinit"``; ``channel_reduction``:
    ``"mean"`` | ``"sum"`` (see the module docstring). The AST's classifier is left as built.
    Raises :class:`ConfigError` when the two transformers differ in width, depth or patch size.
    """
    _choice("positions", positions, POSITION_MODES)
    _choice("channel_reduction", channel_reduction, CHANNEL_REDUCTIONS)
    src = vision_state_dict(source)
    own = model.state_dict()
    kernel = src["embeddings.patch_embeddings.projection.weight"]
    ast_kernel = own[_AST + "embeddings.patch_embeddings.projection.weight"]
    if kernel.ndim != 4 or kernel.shape[0] != ast_kernel.shape[0] or kernel.shape[2:] != ast_kernel.shape[2:]:
        raise ConfigError(
            f"the vision transformer's patch embedding is {tuple(kernel.shape)}, the AST's "
            f"{tuple(ast_kernel.shape)}: width and patch size must agree (no ImageNet model has "
            "rectangular patches; build the AST with the ViT's embed_dim and 16x16 patches)."
        )
    new: dict[str, torch.Tensor] = {}
    reduce = kernel.mean if channel_reduction == "mean" else kernel.sum
    new[_AST + "embeddings.patch_embeddings.projection.weight"] = reduce(dim=1, keepdim=True)
    new[_AST + "embeddings.patch_embeddings.projection.bias"] = src[
        "embeddings.patch_embeddings.projection.bias"]

    cls = src["embeddings.cls_token"]
    dist = src.get("embeddings.distillation_token")
    n_tokens = 1 if dist is None else 2
    pos = src["embeddings.position_embeddings"]
    side = math.isqrt(pos.shape[1] - n_tokens)
    if side * side != pos.shape[1] - n_tokens:
        raise DataError(f"the source's positional embedding has {pos.shape[1]} rows, not "
                        f"{n_tokens} token(s) + a square grid.")
    token_pos = pos[:, :n_tokens] if dist is not None else pos[:, :1].expand(-1, 2, -1)
    new[_AST + "embeddings.cls_token"] = cls
    new[_AST + "embeddings.distillation_token"] = cls if dist is None else dist
    own_pos = own[_AST + "embeddings.position_embeddings"]
    if positions == "reinit":
        patches = own_pos[:, 2:]
        token_pos = token_pos.to(patches.device)  # the AST may be on a GPU, the source not
    else:
        grid = pos[0, n_tokens:].T.reshape(-1, side, side)
        fitted = adapt_position_grid(grid, model.cfg.grid, positions)
        patches = fitted.flatten(1).T[None]
    new[_AST + "embeddings.position_embeddings"] = torch.cat([token_pos, patches], dim=1)

    body = {_AST + k: v for k, v in src.items() if not k.startswith("embeddings.")}
    own_body = {k for k in own if k.startswith(_AST) and not k.startswith(_AST + "embeddings.")}
    missing, unexpected = sorted(own_body - set(body)), sorted(set(body) - own_body)
    if missing or unexpected:
        raise ConfigError(
            f"the vision transformer's blocks do not match the AST's: missing {missing[:6]}, "
            f"unexpected {unexpected[:6]}; build the AST with the same depth (and the same "
            "transformers version's naming)."
        )
    new.update(body)
    shapes = {k: (tuple(v.shape), tuple(own[k].shape)) for k, v in new.items()
              if tuple(v.shape) != tuple(own[k].shape)}
    if shapes:
        raise ConfigError(f"shapes differ (source, AST): {shapes}; build the AST with the "
                          "vision transformer's embed_dim, num_heads and mlp_dim.")
    model.load_state_dict({**own, **{k: v.detach().clone() for k, v in new.items()}})
    return model
