"""zskit.losses against brute-force loops and torch's own cross-entropies; gradients and masks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zskit.errors import ConfigError
from zskit.losses import (
    HierarchicalBCE,
    InfoNCE,
    MaskedBCE,
    hierarchical_bce,
    info_nce,
    masked_bce,
    positives_from_ids,
)


def _bce_loop(logits, targets, mask=None, from_logits=True) -> float:
    """Mean BCE over masked-in entries, one element at a time with math.*."""
    total, count = 0.0, 0
    for i in range(logits.shape[0]):
        for j in range(logits.shape[1]):
            if mask is not None and not mask[i, j]:
                continue
            x, y = float(logits[i, j]), float(targets[i, j])
            p = 1.0 / (1.0 + math.exp(-x)) if from_logits else x
            total += -(y * math.log(p) + (1.0 - y) * math.log(1.0 - p))
            count += 1
    return total / count if count else 0.0


def _info_nce_loop(audio, text, scale, clip_ids) -> float:
    """Symmetric multi-positive InfoNCE, one row / column at a time with math.*."""
    n = len(clip_ids)
    sim = [[scale * float(audio[i] @ text[j]) for j in range(n)] for i in range(n)]

    def direction(s):
        loss = 0.0
        for i in range(n):
            log_z = math.log(sum(math.exp(s[i][j]) for j in range(n)))
            pos = [j for j in range(n) if clip_ids[i] == clip_ids[j]]
            loss += -sum(s[i][j] - log_z for j in pos) / len(pos)
        return loss / n

    transposed = [[sim[j][i] for j in range(n)] for i in range(n)]
    return 0.5 * (direction(sim) + direction(transposed))


@pytest.fixture
def tagging():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=gen) * 3
    targets = (torch.rand(6, 5, generator=gen) > 0.5).float()
    mask = torch.rand(6, 5, generator=gen) > 0.4
    return logits, targets, mask


def test_masked_bce_matches_brute_force(tagging):
    logits, targets, mask = tagging
    got = float(masked_bce(logits, targets, mask))
    want = _bce_loop(logits, targets, mask)
    assert got == pytest.approx(want, rel=1e-5), f"masked BCE {got} vs loop {want}"
    unmasked = float(masked_bce(logits, targets))
    torch_mean = float(F.binary_cross_entropy_with_logits(logits, targets))
    assert unmasked == pytest.approx(torch_mean, rel=1e-6), "no mask must equal torch's mean BCE"
    module = float(MaskedBCE()(logits, targets, mask))
    assert module == pytest.approx(got, rel=1e-7), "MaskedBCE module differs from the function"


def test_masked_bce_probabilities_match_torch(tagging):
    logits, targets, mask = tagging
    probs = torch.sigmoid(logits)
    got = float(masked_bce(probs, targets, mask, from_logits=False))
    assert got == pytest.approx(_bce_loop(probs, targets, mask, from_logits=False), rel=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # F.binary_cross_entropy alone would refuse
        under_amp = float(masked_bce(probs, targets, mask, from_logits=False))
    assert under_amp == pytest.approx(got, rel=1e-6), "probability BCE changed under autocast"


def test_masked_bce_all_masked_is_zero_with_zero_grad(tagging):
    logits, targets, _ = tagging
    logits = logits.clone().requires_grad_(True)
    loss = masked_bce(logits, targets, torch.zeros_like(targets, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0, f"all-masked batch gave {loss.item()}, expected 0"
    assert torch.equal(logits.grad, torch.zeros_like(logits)), (
        "all-masked batch must give zero grads"
    )


def test_masked_entries_get_zero_gradient(tagging):
    logits, targets, mask = tagging
    logits = logits.clone()
    logits[~mask] = 1e4  # huge but finite outputs where the label is unknown
    logits.requires_grad_(True)
    masked_bce(logits, targets, mask).backward()
    assert torch.isfinite(logits.grad).all(), "gradients must be finite"
    assert torch.all(logits.grad[~mask] == 0), "masked-out entries received gradient"
    assert torch.all(logits.grad[mask] != 0), "masked-in entries got no gradient"


def test_masked_bce_float_weights_and_shape_errors(tagging):
    logits, targets, mask = tagging
    weights = mask.float() * 2.0  # uniform weights: the same mean as the bool mask
    assert float(masked_bce(logits, targets, weights)) == pytest.approx(
        float(masked_bce(logits, targets, mask))
    )
    with pytest.raises(ConfigError, match="shape"):
        masked_bce(logits, targets[:, :3])
    with pytest.raises(ConfigError, match="mask"):
        masked_bce(logits, targets, mask[:, :3])


def _embeddings(n=6, d=8, seed=1):
    gen = torch.Generator().manual_seed(seed)
    audio = F.normalize(torch.randn(n, d, generator=gen), dim=1)
    text = F.normalize(torch.randn(n, d, generator=gen), dim=1)
    return audio, text


def test_info_nce_equals_cross_entropy_without_duplicates():
    audio, text = _embeddings()
    scale = torch.tensor(14.3)
    logits = scale * audio @ text.T
    labels = torch.arange(len(audio))
    want = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    got = info_nce(audio, text, logit_scale=scale)
    assert float(got) == pytest.approx(float(want), rel=1e-6), "InfoNCE differs from torch CE"
    unique = info_nce(audio, text, logit_scale=scale, clip_ids=list(range(6)))
    assert float(unique) == pytest.approx(float(want), rel=1e-6), (
        "distinct clip_ids must not change it"
    )
    fixed = info_nce(audio, text, temperature=1 / 14.3)
    assert float(fixed) == pytest.approx(float(want), rel=1e-5), (
        "temperature T must equal scale 1/T"
    )


def test_info_nce_with_shared_clips_matches_brute_force():
    audio, text = _embeddings()
    ids = ["a", "a", "b", "c", "c", "c"]  # several captions of one clip in the batch
    got = float(info_nce(audio, text, logit_scale=10.0, clip_ids=ids))
    want = _info_nce_loop(audio, text, 10.0, ids)
    assert got == pytest.approx(want, rel=1e-5), f"InfoNCE with duplicates {got} vs loop {want}"
    as_ints = float(
        info_nce(audio, text, logit_scale=10.0, clip_ids=torch.tensor([0, 0, 1, 2, 2, 2]))
    )
    matrix = positives_from_ids(ids)
    as_matrix = float(info_nce(audio, text, logit_scale=10.0, positives=matrix))
    assert as_ints == pytest.approx(got) and as_matrix == pytest.approx(got), "id forms disagree"
    plain = float(info_nce(audio, text, logit_scale=10.0))
    assert abs(plain - got) > 1e-3, "duplicates were not taken into account"


def test_info_nce_gradients_reach_embeddings_and_scale():
    audio, text = _embeddings()
    audio.requires_grad_(True)
    text.requires_grad_(True)
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)  # open_clip's parameter
    loss = InfoNCE()(audio, text, logit_scale=log_scale.exp(), clip_ids=[0, 0, 1, 2, 3, 3])
    loss.backward()
    for name, t in (("audio", audio), ("text", text), ("logit_scale", log_scale)):
        assert t.grad is not None and torch.isfinite(t.grad).all(), (
            f"{name} gradient missing or not finite"
        )
        assert t.grad.abs().sum() > 0, f"{name} gradient is zero"


def test_info_nce_rejects_bad_arguments():
    audio, text = _embeddings()
    with pytest.raises(ConfigError, match="exactly one"):
        info_nce(audio, text)
    with pytest.raises(ConfigError, match="exactly one"):
        info_nce(audio, text, logit_scale=1.0, temperature=0.1)
    with pytest.raises(ConfigError, match="clip_ids"):
        info_nce(audio, text, temperature=0.1, clip_ids=[0, 1])
    with pytest.raises(ConfigError, match=r"\(B, D\)"):
        info_nce(audio, text[:3], temperature=0.1)
    with pytest.raises(ConfigError, match="empty"):
        info_nce(audio[:0], text[:0], temperature=0.1)
    with pytest.raises(ConfigError, match="empty"):
        info_nce(audio[:0], text[:0], temperature=0.1, clip_ids=[])
    for bad in (-10.0, 0.0, torch.tensor(-14.3)):
        with pytest.raises(ConfigError, match="logit_scale"):
            info_nce(audio, text, logit_scale=bad)


def test_hierarchical_bce_is_the_weighted_sum_and_respects_masks():
    gen = torch.Generator().manual_seed(3)
    fine = torch.randn(5, 6, generator=gen, requires_grad=True)
    coarse_probs = torch.rand(5, 2, generator=gen).clamp(0.05, 0.95).requires_grad_(True)
    fine_y = (torch.rand(5, 6, generator=gen) > 0.5).float()
    coarse_y = (torch.rand(5, 2, generator=gen) > 0.5).float()
    fine_mask = torch.rand(5, 6, generator=gen) > 0.3
    lam = 0.75
    loss = HierarchicalBCE(lam, coarse_from_logits=False)(
        fine, fine_y, coarse_probs, coarse_y, fine_mask
    )
    want = lam * _bce_loop(fine.detach(), fine_y, fine_mask) + (1 - lam) * _bce_loop(
        coarse_probs.detach(), coarse_y, from_logits=False
    )
    assert loss.item() == pytest.approx(want, rel=1e-5), f"hierarchical BCE {loss.item()} vs {want}"
    loss.backward()
    assert torch.all(fine.grad[~fine_mask] == 0), "masked fine tags received gradient"
    assert torch.isfinite(coarse_probs.grad).all() and coarse_probs.grad.abs().sum() > 0
    only_fine = hierarchical_bce(
        fine, fine_y, coarse_probs, coarse_y, lam=1.0, coarse_from_logits=False
    )
    assert only_fine.item() == pytest.approx(masked_bce(fine, fine_y).item(), rel=1e-6)
    with pytest.raises(ConfigError, match="lam"):
        HierarchicalBCE(1.5)


def test_probabilities_rounded_above_one_are_clamped():
    """ResAtt's ``W^T P_fine`` can land a hair above 1; BCE on probabilities must still work."""
    probs = torch.tensor([[1.0 + 3e-7, 0.5], [1.0, 1.0 + 1e-6]], requires_grad=True)
    targets = torch.ones(2, 2)
    loss = hierarchical_bce(torch.zeros(2, 2), targets, probs, targets, coarse_from_logits=False)
    want = 0.8 * math.log(2) + 0.2 * math.log(2) / 4
    assert loss.item() == pytest.approx(want, rel=1e-5), loss.item()
    loss.backward()
    assert torch.isfinite(probs.grad).all()
