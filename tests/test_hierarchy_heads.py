"""zskit.heads.hierarchy: every head's outputs, gradients, pooling rules and the joint loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zskit.errors import ConfigError
from zskit.heads.hierarchy import (
    BottomUpHead,
    FlatHead,
    HierarchicalOutput,
    ResAttHead,
    TopDownHead,
    create_hierarchical_head,
    grouped_max,
    grouped_max_logits,
    grouped_mean,
    hierarchy_loss,
    hierarchy_violation,
    list_hierarchical_heads,
)
from zskit.hierarchy import Hierarchy

H = Hierarchy.from_dict({"a": ["a1", "a2", "a3"], "b": ["b1", "b2"], "c": ["c1"]})
D, B = 12, 7
METHODS = ["baseline", "level_wise", "top_down", "gap", "lp", "gmp", "resatt"]


def _z(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, D, generator=torch.Generator().manual_seed(seed))


def _targets(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    fine = (torch.rand(B, H.n_fine, generator=g) < 0.4).float()
    fine_mask = torch.rand(B, H.n_fine, generator=g) < 0.7
    coarse, coarse_mask = H.coarse_labels(fine.numpy(), fine_mask.numpy())
    return fine, fine_mask, torch.tensor(coarse, dtype=torch.float32), torch.tensor(coarse_mask)


def test_registry_lists_table_1_methods():
    assert list_hierarchical_heads() == METHODS, list_hierarchical_heads()
    with pytest.raises(ConfigError, match="resatt"):
        create_hierarchical_head("attention", D, H)


@pytest.mark.parametrize("method", METHODS)
def test_forward_backward_every_head(method):
    torch.manual_seed(0)
    head = create_hierarchical_head(method, D, H)
    out = head(_z())
    assert isinstance(out, HierarchicalOutput), type(out)
    assert out.fine.shape == (B, H.n_fine) and out.coarse.shape == (B, H.n_coarse), (
        f"{method}: shapes {tuple(out.fine.shape)}, {tuple(out.coarse.shape)}"
    )
    for name in ("fine", "coarse"):
        p = getattr(out, name)
        assert torch.isfinite(p).all() and (p >= 0).all() and (p <= 1 + 1e-6).all(), (
            f"{method}: {name} outputs are not probabilities"
        )
    loss = hierarchy_loss(head, out, *_targets(), lam=0.8)["total"]
    loss.backward()
    assert torch.isfinite(loss), f"{method}: loss {loss}"
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{method}: no grad on {name}"
        assert p.grad.abs().sum() > 0, f"{method}: zero gradient on {name}"


def test_input_size_is_checked():
    with pytest.raises(ConfigError, match=r"\(B, 12\)"):
        FlatHead(D, H)(torch.zeros(2, D + 1))
    with pytest.raises(ConfigError, match="in_dim"):
        FlatHead(0, H)


def test_grouped_pooling_against_brute_force():
    p = torch.rand(B, H.n_fine, generator=torch.Generator().manual_seed(1))
    m = H.tensor()
    mx, mean = grouped_max(p, m).numpy(), grouped_mean(p, m).numpy()
    for j in range(H.n_coarse):
        kids = H.children(j)
        np.testing.assert_allclose(mx[:, j], p[:, kids].numpy().max(axis=1), rtol=1e-6)
        np.testing.assert_allclose(mean[:, j], p[:, kids].numpy().mean(axis=1), rtol=1e-6)
    assert (mean <= mx + 1e-7).all(), "a mean can never exceed the max"


def test_flat_and_gmp_coarse_is_max_of_children():
    torch.manual_seed(0)
    for head in (FlatHead(D, H), BottomUpHead(D, H, "gmp")):
        out = head(_z())
        torch.testing.assert_close(out.coarse, grouped_max(out.fine, H.tensor()))
        torch.testing.assert_close(out.fine, torch.sigmoid(out.fine_logits))
    gap = BottomUpHead(D, H, "gap")
    out = gap(_z())
    torch.testing.assert_close(out.coarse, grouped_mean(out.fine, H.tensor()))


def test_gmp_coarse_logits_are_the_grouped_max_of_fine_logits():
    torch.manual_seed(0)
    out = BottomUpHead(D, H, "gmp")(_z())
    torch.testing.assert_close(out.coarse_logits, grouped_max_logits(out.fine_logits, H.tensor()))
    torch.testing.assert_close(torch.sigmoid(out.coarse_logits), out.coarse)


def _confident_head(method: str):
    """A head whose first fine tag (and its parent) is confidently on: probability ~0.999."""
    head = create_hierarchical_head(method, D, H)
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
        layer = head.leaf_layer if method == "top_down" else head.fine_layer
        layer.bias.fill_(7.0)
        if method == "top_down":
            head.coarse_layer.bias.fill_(7.0)
    return head


@pytest.mark.parametrize("method", METHODS)
def test_losses_under_bf16_autocast_match_float32(method):
    """Half precision rounds a 0.999 probability to 1.0; heads must pool in float32."""
    head = _confident_head(method)
    fine_y, coarse_y = torch.zeros(B, H.n_fine), torch.zeros(B, H.n_coarse)
    fine_m = torch.ones(B, H.n_fine, dtype=torch.bool)
    coarse_m = torch.ones(B, H.n_coarse, dtype=torch.bool)
    losses = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = head(_z())
            parts = hierarchy_loss(head, out, fine_y, fine_m, coarse_y, coarse_m, lam=0.8)
        assert out.fine.dtype == out.coarse.dtype == torch.float32, f"{method} {name}"
        losses[name] = {k: v.item() for k, v in parts.items()}
    for part, value in losses["fp32"].items():
        assert losses["bf16"][part] == pytest.approx(value, rel=0.02), (
            f"{method}: {part} loss {losses['bf16'][part]:.3f} under bf16 vs {value:.3f} in fp32"
        )


def test_top_down_is_a_soft_decision_tree():
    torch.manual_seed(0)
    head = TopDownHead(D, H)
    z = _z()
    out = head(z)
    coarse = torch.sigmoid(head.coarse_layer(z))
    leaf = torch.sigmoid(head.leaf_layer(z))
    for i, parent in enumerate(H.parent):
        torch.testing.assert_close(out.fine[:, i], coarse[:, parent] * leaf[:, i])
    assert (out.fine <= out.coarse[:, list(H.parent)] + 1e-7).all(), "child above its parent"


def test_lp_is_a_linear_projection_of_fine_probabilities():
    torch.manual_seed(0)
    head = BottomUpHead(D, H, "lp")
    out = head(_z())
    w, b = head.projection.weight.detach(), head.projection.bias.detach()
    torch.testing.assert_close(out.coarse, torch.sigmoid(out.fine @ w.T + b))
    with pytest.raises(ConfigError, match="pooling"):
        BottomUpHead(D, H, "sum")


def test_resatt_attention_and_coarse_formula():
    torch.manual_seed(0)
    head = ResAttHead(D, H)
    out = head(_z())
    w = out.attention
    assert w.shape == (B, H.n_fine, H.n_coarse), tuple(w.shape)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(B, H.n_coarse))
    brute = torch.zeros(B, H.n_coarse)
    for b in range(B):
        for c in range(H.n_coarse):
            brute[b, c] = sum(w[b, f, c] * out.fine[b, f] for f in range(H.n_fine))
    torch.testing.assert_close(out.coarse, brute)
    lo, hi = out.fine.min(dim=1, keepdim=True).values, out.fine.max(dim=1, keepdim=True).values
    assert ((out.coarse >= lo - 1e-6) & (out.coarse <= hi + 1e-6)).all(), (
        "a convex combination of fine probabilities must lie between their min and max"
    )


def _bce(p: np.ndarray, y: np.ndarray, m: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    values = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(values[m].mean())


@pytest.mark.parametrize("method", ["gmp", "resatt", "top_down", "lp"])
def test_joint_loss_is_lambda_weighted_masked_bce(method):
    torch.manual_seed(0)
    head = create_hierarchical_head(method, D, H)
    out = head(_z())
    fy, fm, cy, cm = _targets()
    parts = hierarchy_loss(head, out, fy, fm, cy, cm, lam=0.7)
    d = {k: v.detach().double().numpy() for k, v in out._asdict().items() if v is not None}
    fine = _bce(d["fine"], fy.numpy(), fm.numpy())
    coarse = _bce(d["coarse"], cy.numpy(), cm.numpy())
    assert parts["fine"].item() == pytest.approx(fine, rel=1e-4), "fine BCE"
    assert parts["coarse"].item() == pytest.approx(coarse, rel=1e-4), "coarse BCE"
    assert parts["total"].item() == pytest.approx(0.7 * fine + 0.3 * coarse, rel=1e-4), "Eq. 2"


def test_masked_entries_do_not_count():
    torch.manual_seed(0)
    head = create_hierarchical_head("resatt", D, H)
    out = head(_z())
    fy, fm, cy, cm = _targets()
    flipped_fy, flipped_cy = torch.where(fm, fy, 1 - fy), torch.where(cm, cy, 1 - cy)
    a = hierarchy_loss(head, out, fy, fm, cy, cm, lam=0.8)["total"]
    b = hierarchy_loss(head, out, flipped_fy, fm, flipped_cy, cm, lam=0.8)["total"]
    assert a.item() == pytest.approx(b.item(), rel=1e-6), "labels outside the mask changed the loss"


def test_baseline_trains_the_fine_level_only():
    torch.manual_seed(0)
    head = create_hierarchical_head("baseline", D, H)
    out = head(_z())
    fy, fm, cy, cm = _targets()
    a = hierarchy_loss(head, out, fy, fm, cy, cm, lam=0.7)
    b = hierarchy_loss(head, out, fy, fm, 1 - cy, cm, lam=0.9)
    assert a["total"].item() == pytest.approx(a["fine"].item()), "baseline total != fine BCE"
    assert a["total"].item() == pytest.approx(b["total"].item()), "coarse targets leaked in"


def test_level_wise_adds_the_consistency_terms():
    torch.manual_seed(0)
    head = create_hierarchical_head("level_wise", D, H)
    out = head(_z())
    targets = _targets()
    with_terms = hierarchy_loss(head, out, *targets, lam=0.8, consistency_weight=2.0)
    without = hierarchy_loss(head, out, *targets, lam=0.8, consistency_weight=0.0)
    violation = hierarchy_violation(out.fine, out.coarse, H.tensor())
    assert violation.item() > 0, "random layers should break the max rule somewhere"
    assert with_terms["total"].item() == pytest.approx(
        without["total"].item() + 2.0 * violation.item(), rel=1e-5
    )
    with pytest.raises(ConfigError, match="lam"):
        hierarchy_loss(head, out, *targets, lam=1.5)


def test_hierarchy_violation_against_brute_force():
    g = torch.Generator().manual_seed(3)
    fine, coarse = torch.rand(B, H.n_fine, generator=g), torch.rand(B, H.n_coarse, generator=g)
    total_up, total_down = 0.0, 0.0
    for b in range(B):
        for f, c in enumerate(H.parent):
            total_up += max(0.0, float(fine[b, f] - coarse[b, c]))
        for c in range(H.n_coarse):
            total_down += max(0.0, float(coarse[b, c] - fine[b, H.children(c)].max()))
    expected = total_up / (B * H.n_fine) + total_down / (B * H.n_coarse)
    got = hierarchy_violation(fine, coarse, H.tensor()).item()
    assert got == pytest.approx(expected, rel=1e-5), f"{got} != {expected}"
    consistent = grouped_max(fine, H.tensor())
    assert hierarchy_violation(fine, consistent, H.tensor()).item() == pytest.approx(0.0, abs=1e-7)
