"""SpecAugment mask bounds and mode handling; mixup's convex combinations; shifts and gain."""

from __future__ import annotations

import pytest
import scipy.stats
import torch

from zskit.audio import SpecAugment, mixup
from zskit.audio.augment import RandomGain, RandomShift, mix, mixup_pairs, shift
from zskit.errors import ConfigError


def _masked_band(row_is_masked: torch.Tensor) -> tuple[int, int]:
    """Width and start of the single contiguous masked band in a 1-D bool tensor."""
    idx = torch.nonzero(row_is_masked).flatten()
    if len(idx) == 0:
        return 0, -1
    width = int(idx[-1] - idx[0] + 1)
    assert width == len(idx), f"masked indices {idx.tolist()} are not contiguous"
    return width, int(idx[0])


def test_eval_mode_is_identity():
    aug = SpecAugment().eval()
    x = torch.randn(2, 128, 300)
    assert aug(x) is x, "SpecAugment must not touch inputs in eval mode"


@pytest.mark.parametrize("axis", ["freq", "time"])
def test_single_mask_is_one_band_within_bounds(axis):
    param = 5
    aug = SpecAugment(freq_mask_param=param if axis == "freq" else 0,
                      time_mask_param=param if axis == "time" else 0)
    g = torch.Generator().manual_seed(0)
    x = torch.ones(400, 20, 30)  # (B, F, T)
    out = aug.train()(x, generator=g)
    assert out.shape == x.shape
    widths = []
    for example in out:
        zero = example == 0
        if axis == "freq":
            rows = zero.all(dim=1)
            assert torch.equal(zero, rows[:, None].expand_as(zero)), "freq mask must span all frames"
            width, _ = _masked_band(rows)
        else:
            cols = zero.all(dim=0)
            assert torch.equal(zero, cols[None, :].expand_as(zero)), "time mask must span all bins"
            width, _ = _masked_band(cols)
        assert 0 <= width <= param, f"{axis} mask width {width} outside 0..{param}"
        widths.append(width)
    assert set(widths) == set(range(param + 1)), f"widths seen {sorted(set(widths))}, want 0..{param}"
    assert x.eq(1).all(), "the input tensor must not be modified in place"


def test_several_masks_bound_the_masked_area_and_differ_per_example():
    aug = SpecAugment(freq_mask_param=6, time_mask_param=10, n_freq_masks=2, n_time_masks=3,
                      mask_value=-7.0).train()
    out = aug(torch.ones(64, 40, 100), generator=torch.Generator().manual_seed(1))
    assert set(out.unique().tolist()) <= {1.0, -7.0}, "only mask_value may replace entries"
    masked = out == -7.0
    rows = masked.all(dim=2).sum(dim=1)
    cols = masked.all(dim=1).sum(dim=1)
    assert rows.max() <= 2 * 6 and cols.max() <= 3 * 10, f"rows {rows.max()}, cols {cols.max()}"
    union = (masked.all(dim=2)[:, :, None] | masked.all(dim=1)[:, None, :])
    assert torch.equal(masked, union), "masked entries must be whole rows or whole columns"
    patterns = {tuple(m.flatten().tolist()) for m in masked[:8]}
    assert len(patterns) > 1, "each example should get its own masks"


def test_ast_layout_and_channels_share_the_example_mask():
    aug = SpecAugment(freq_mask_param=48, time_mask_param=192, freq_dim=-1, time_dim=-2).train()
    x = torch.ones(4, 2, 1024, 128)  # (B, C, T, F)
    out = aug(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out[:, 0], out[:, 1]), "channels of one example should share its masks"
    for example in out[:, 0]:
        zero = example == 0
        f_width, _ = _masked_band(zero.all(dim=0))
        t_width, _ = _masked_band(zero.all(dim=1))
        assert f_width <= 48 and t_width <= 192, f"widths freq {f_width}, time {t_width}"


def test_specaugment_is_reproducible_and_handles_2d():
    aug = SpecAugment(freq_mask_param=8, time_mask_param=8).train()
    x = torch.randn(20, 50)
    a = aug(x, generator=torch.Generator().manual_seed(5))
    b = aug(x, generator=torch.Generator().manual_seed(5))
    assert a.shape == x.shape and torch.equal(a, b), "same seed should mask the same places"


def test_specaugment_argument_errors():
    with pytest.raises(ConfigError, match="freq_mask_param=-1"):
        SpecAugment(freq_mask_param=-1)
    with pytest.raises(ConfigError, match="freq_dim=1"):
        SpecAugment(freq_dim=1, time_dim=2)


def test_mixup_labels_follow_the_input_combination():
    batch = 16
    x = torch.eye(batch, dtype=torch.float64)  # row i identifies example i
    y = torch.randint(0, 2, (batch, 5), generator=torch.Generator().manual_seed(0)).double()
    xm, ym, lam = mixup(x, y, alpha=0.5, generator=torch.Generator().manual_seed(1))
    assert lam.shape == (batch,) and ((lam >= 0) & (lam <= 1)).all(), f"lam {lam}"
    assert torch.allclose(xm.sum(dim=1), torch.ones(batch, dtype=torch.float64)), "not convex"
    for i in range(batch):
        weights = xm[i]
        # Weight lam on itself, 1 - lam on one partner (or all on itself if paired with itself).
        partner = int(torch.argmax(torch.where(torch.arange(batch) == i, -1.0, weights)))
        if weights[partner] == 0:
            partner = i
        expected_x = lam[i] * x[i] + (1 - lam[i]) * x[partner]
        assert torch.allclose(weights, expected_x), f"row {i} is not lam*x_i + (1-lam)*x_j"
        expected_y = lam[i] * y[i] + (1 - lam[i]) * y[partner]
        assert torch.allclose(ym[i], expected_y), f"labels of row {i} are mixed differently"
    # Equivalent check for any linear map of the inputs: labels y = x @ W mix like the inputs.
    w = torch.randn(batch, 3, dtype=torch.float64)
    _, ym2, _ = mixup(x, x @ w, alpha=0.5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(ym2, xm @ w), "label mixing must use the same lam and partners"


def test_mixup_per_batch_and_reproducibility():
    x, y = torch.randn(8, 3, 10), torch.rand(8, 4)
    _, _, lam = mixup(x, y, alpha=1.0, per_example=False, generator=torch.Generator().manual_seed(2))
    assert torch.all(lam == lam[0]), "per_example=False should use one lam for the batch"
    a = mixup(x, y, alpha=0.3, generator=torch.Generator().manual_seed(3))
    b = mixup(x, y, alpha=0.3, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a, b)), "same seed should give the same mix"


def test_mixup_lambda_follows_beta_distribution():
    x, y = torch.zeros(4000, 1), torch.zeros(4000, 1)
    _, _, lam = mixup(x, y, alpha=0.4, generator=torch.Generator().manual_seed(4))
    stat = scipy.stats.kstest(lam.numpy(), scipy.stats.beta(0.4, 0.4).cdf)
    assert stat.pvalue > 0.01, f"lam does not look Beta(0.4, 0.4): KS p = {stat.pvalue:.3g}"


def test_mixup_argument_errors():
    x = torch.zeros(4, 2)
    with pytest.raises(ConfigError, match="one_hot"):
        mixup(x, torch.tensor([0, 1, 2, 3]), alpha=0.5)
    with pytest.raises(ConfigError, match="alpha=0"):
        mixup(x, torch.zeros(4, 3), alpha=0)
    with pytest.raises(ConfigError, match="4 inputs but 3 labels"):
        mixup(x, torch.zeros(3, 3), alpha=0.5)
    # integer inputs would be mixed with an integer lambda (0): silently x[perm], not a mixture
    with pytest.raises(ConfigError, match=r"float inputs, got torch\.int16"):
        mixup(torch.ones(4, 2, dtype=torch.int16), torch.zeros(4, 3), alpha=0.5)


# --------------------------------------------------------------------------- shifts, gain, pairs


def test_shift_rolls_or_fills_per_example():
    x = torch.arange(10.0).repeat(3, 1)  # (3, 10)
    rolled = shift(x, torch.tensor([0, 2, -3]), dim=-1)
    assert torch.equal(rolled[0], x[0]), "shift 0 is identity"
    assert torch.equal(rolled[1], torch.roll(x[1], 2)) and torch.equal(rolled[2], torch.roll(x[2], -3))
    filled = shift(x, torch.tensor([0, 2, -3]), dim=-1, roll=False, fill=-1.0)
    assert filled[1].tolist() == [-1, -1, 0, 1, 2, 3, 4, 5, 6, 7], filled[1]
    assert filled[2].tolist() == [3, 4, 5, 6, 7, 8, 9, -1, -1, -1], filled[2]
    spec = torch.arange(12.0).view(1, 4, 3)  # (B, F, T): shift along frequency
    up = shift(spec, torch.tensor([1]), dim=1, roll=False)
    assert torch.equal(up[0, 1:], spec[0, :3]) and torch.equal(up[0, 0], torch.zeros(3))
    with pytest.raises(ConfigError, match="batch axis"):
        shift(x, torch.tensor([1, 1, 1]), dim=0)


def test_random_shift_and_gain_only_in_training():
    x = torch.randn(64, 100)
    for module in (RandomShift(5), RandomGain(6.0)):
        assert module.eval()(x) is x, f"{module} must be the identity in eval mode"
        out = module.train()(x, generator=torch.Generator().manual_seed(0))
        assert out.shape == x.shape and not torch.equal(out, x), f"{module} did nothing"
    shifted = RandomShift(5).train()(x, generator=torch.Generator().manual_seed(1))
    moves = [next(k for k in range(-5, 6) if torch.equal(torch.roll(x[i], k), shifted[i]))
             for i in range(64)]
    assert min(moves) >= -5 and max(moves) <= 5 and len(set(moves)) > 5, f"shifts {moves}"
    ratio = RandomGain(6.0).train()(x, generator=torch.Generator().manual_seed(2)) / x
    db = 20 * torch.log10(ratio[:, 0])
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-5), "one gain per example"
    assert db.abs().max() <= 6.0 + 1e-4 and db.std() > 1.0, f"gains (dB) {db}"
    logspec = torch.zeros(4, 8, 5)
    added = RandomGain(10.0, log_domain=True, log_per_db=0.5).train()(logspec)
    assert added.abs().max() <= 5.0 and torch.equal(added, added[:, :1, :1].expand_as(added))
    with pytest.raises(ConfigError, match="max_shift"):
        RandomShift(-1)


def test_mixup_prob_leaves_the_other_examples_alone():
    perm, lam = mixup_pairs(2000, alpha=10.0, prob=0.5, generator=torch.Generator().manual_seed(5))
    mixed = lam < 1
    assert 0.4 < float(mixed.double().mean()) < 0.6, f"{float(mixed.double().mean())} mixed"
    assert abs(float(lam[mixed].mean()) - 0.5) < 0.02, "Beta(10, 10) has mean 0.5"
    assert sorted(perm.tolist()) == list(range(2000)), "a permutation"
    x = torch.randn(2000, 3)
    torch.testing.assert_close(mix(x, perm, lam)[~mixed], x[~mixed])
    with pytest.raises(ConfigError, match="prob"):
        mixup_pairs(4, prob=1.5)
