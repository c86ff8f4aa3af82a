"""Segment helpers against brute-force loops."""

from __future__ import annotations

import pytest
import torch

from zskit.audio import center_pad, pad_batch, random_crop, segment, segment_count
from zskit.errors import ConfigError


def test_random_crop_is_a_window_and_reaches_every_offset():
    x = torch.arange(10.0).repeat(2, 1)  # (C=2, T=10); values = sample index
    g = torch.Generator().manual_seed(0)
    offsets = set()
    for _ in range(200):
        out = random_crop(x, 8, generator=g)
        start = int(out[0, 0])
        assert torch.equal(out, x[:, start:start + 8]), f"crop is not the window at {start}"
        offsets.add(start)
    assert offsets == {0, 1, 2}, f"offsets reached {sorted(offsets)}, expected 0..2"


def test_random_crop_is_reproducible_with_a_generator():
    x = torch.randn(1000)
    a = random_crop(x, 100, generator=torch.Generator().manual_seed(3))
    b = random_crop(x, 100, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b), "same seed should give the same crop"


def test_random_crop_short_inputs_unchanged_or_padded():
    x = torch.ones(2, 5)
    assert random_crop(x, 8) is x, "shorter input should come back unchanged"
    assert random_crop(x, 5) is x, "input of exactly `length` should come back unchanged"
    padded = random_crop(x, 8, pad=True)
    assert padded.shape == (2, 8) and padded[:, 5:].abs().sum() == 0 and padded[:, :5].eq(1).all()


def _center_pad_reference(x: torch.Tensor, length: int) -> torch.Tensor:
    n = x.shape[-1]
    out = torch.zeros(*x.shape[:-1], length, dtype=x.dtype)
    if n >= length:
        start = (n - length) // 2
        for i in range(length):
            out[..., i] = x[..., start + i]
    else:
        left = (length - n) // 2
        for i in range(n):
            out[..., left + i] = x[..., i]
    return out


@pytest.mark.parametrize("n, length", [(5, 9), (5, 10), (10, 5), (9, 4), (7, 7), (1, 4)])
def test_center_pad_matches_brute_force(n, length):
    x = torch.arange(1.0, n + 1).repeat(3, 1)
    out = center_pad(x, length)
    assert out.shape == (3, length), f"shape {tuple(out.shape)}"
    assert torch.equal(out, _center_pad_reference(x, length)), f"n={n}, length={length}: {out[0]}"


def test_pad_batch_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    waves = [torch.randn(n, generator=g) for n in (5, 12, 1, 12, 7)]
    batch, mask = pad_batch(waves)
    assert batch.shape == mask.shape == (5, 12), f"shape {tuple(batch.shape)}"
    assert mask.dtype == torch.bool
    for i, w in enumerate(waves):
        for t in range(12):
            real = t < len(w)
            assert bool(mask[i, t]) == real, f"mask[{i}, {t}] should be {real}"
            assert batch[i, t] == (w[t] if real else 0.0), f"batch[{i}, {t}] wrong"


def test_pad_batch_max_length_caps_and_cuts():
    waves = [torch.arange(10.0), torch.arange(3.0)]
    batch, mask = pad_batch(waves, max_length=6)
    assert batch.shape == (2, 6), f"shape {tuple(batch.shape)}"
    assert torch.equal(batch[0], torch.arange(6.0)), "long waveform should keep its start"
    assert mask.sum(dim=1).tolist() == [6, 3], f"mask lengths {mask.sum(dim=1).tolist()}"
    short, _ = pad_batch([torch.ones(2), torch.ones(3)], max_length=100)
    assert short.shape == (2, 3), "max_length caps; it does not pad beyond the batch max"


def test_pad_batch_errors():
    with pytest.raises(ConfigError, match="empty"):
        pad_batch([])
    with pytest.raises(ConfigError, match=r"item 1 has shape \(2, 3\)"):
        pad_batch([torch.ones(3), torch.ones(2, 3)])


def _segment_reference(x: torch.Tensor, seg: int, hop: int) -> tuple[list, list]:
    n = x.shape[-1]
    segments, valid = [], []
    start = 0
    while True:
        piece = torch.zeros(*x.shape[:-1], seg, dtype=x.dtype)
        real = x[..., start:start + seg]
        piece[..., : real.shape[-1]] = real
        segments.append(piece)
        valid.append(real.shape[-1])
        if start + seg >= n:
            break
        start += hop
    return segments, valid


@pytest.mark.parametrize("n, seg, hop", [
    (12, 4, None),   # exact multiple
    (13, 4, None),   # partial last segment
    (3, 4, None),    # shorter than one segment
    (4, 4, None),    # exactly one segment
    (13, 4, 2),      # overlap
    (10, 4, 3),      # overlap, partial tail
    (100, 10, 1),    # hop of one sample
])
def test_segment_matches_brute_force(n, seg, hop):
    x = torch.arange(1.0, n + 1).repeat(2, 3, 1)  # leading dims (2, 3)
    segments, valid = segment(x, seg, hop)
    ref_segments, ref_valid = _segment_reference(x, seg, hop or seg)
    assert segments.shape == (2, 3, len(ref_segments), seg), f"shape {tuple(segments.shape)}"
    for i, piece in enumerate(ref_segments):
        assert torch.equal(segments[..., i, :], piece), f"segment {i} differs: {segments[0, 0, i]}"
    assert valid.tolist() == ref_valid, f"valid {valid.tolist()} != {ref_valid}"
    covered = torch.zeros(n, dtype=torch.bool)
    for i, count in enumerate(valid.tolist()):
        start = i * (hop or seg)
        covered[start:start + count] = True
    assert covered.all(), "every sample must fall in some segment"


def test_segment_errors():
    with pytest.raises(ConfigError, match="hop=5"):
        segment(torch.ones(20), 4, hop=5)
    with pytest.raises(ConfigError, match="segment_length=0"):
        segment(torch.ones(20), 0)
    with pytest.raises(ConfigError, match="empty"):
        segment(torch.ones(0), 4)


@pytest.mark.parametrize("hop", [None, 3, 7, 10])
def test_segment_count_is_the_number_of_segments_segment_cuts(hop):
    for n in (1, 9, 10, 11, 17, 40, 41):
        segs, _ = segment(torch.zeros(n), 10, hop)
        assert segment_count(n, 10, hop) == segs.shape[-2], (n, hop)
