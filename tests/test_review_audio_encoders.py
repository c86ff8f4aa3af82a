"""Bugs found by reviewing the audio encoders against the official models (one test per bug)."""

from __future__ import annotations

import pytest
import torch

from zskit.encoders.audio.ast import ASTEncoder, ASTEncoderConfig
from zskit.encoders.audio.passt import PaSST, PaSSTConfig
from zskit.encoders.audio.vggish import Vggish, VggishConfig
from zskit.errors import ConfigError


def test_ast_clip_shorter_than_a_frame_keeps_its_real_patch_column_with_lengths():
    """A clip shorter than one 25 ms frame is zero-padded to one frame (as AST's front end does),
    so it has one real frame and its first patch column is real, alone or in a padded batch."""
    torch.manual_seed(0)
    model = ASTEncoder(ASTEncoderConfig.tiny()).eval()
    short = torch.randn(300) * 0.1  # < 400 samples (one frame at 16 kHz)
    batch = torch.stack([torch.nn.functional.pad(short, (0, 15700)), torch.randn(16000) * 0.1])
    with torch.no_grad():
        alone = model.forward_features(short[None])
        out = model.forward_features(batch, lengths=torch.tensor([300, 16000]))
    rows = model.cfg.grid[0]
    assert int(alone.token_mask.sum()) == rows, f"alone: {int(alone.token_mask.sum())} real patches"
    assert torch.equal(out.token_mask[0], alone.token_mask[0]), (
        f"padded clip has {int(out.token_mask[0].sum())} real patches, alone {rows}")
    torch.testing.assert_close(out.embedding[0], alone.embedding[0], atol=1e-5, rtol=1e-5)


def test_passt_overlapping_segments_of_a_padded_clip_are_those_of_the_clip_alone():
    """With overlapping segments, a clip in a longer batch must use the segments it gets alone
    (the fewest that cover it), not also a later one holding samples an earlier one covers."""
    torch.manual_seed(0)
    cfg = PaSSTConfig.tiny(segment_seconds=0.5, segment_hop_seconds=0.25)
    model = PaSST(cfg).eval()
    sr = cfg.sample_rate
    clip = torch.randn(int(0.625 * sr)) * 0.1  # alone: segments at 0 and 0.25 s (2 segments)
    batch = torch.stack([torch.nn.functional.pad(clip, (0, int(0.25 * sr))),
                         torch.randn(int(0.875 * sr)) * 0.1])  # the batch has 3 segments
    with torch.no_grad():
        alone = model.forward_features(clip[None])
        out = model.forward_features(batch, lengths=torch.tensor([clip.numel(), batch.shape[1]]))
    per_segment = out.token_mask.shape[1] // 3
    assert not out.token_mask[0, 2 * per_segment:].any(), "the third segment is not the clip's"
    torch.testing.assert_close(out.embedding[0], alone.embedding[0], atol=1e-5, rtol=1e-5)
    assert out.token_mask[1].all(), "the long clip uses all three segments"


def test_passt_spectrogram_of_the_wrong_shape_is_a_config_error():
    """Too few frames for one patch, too few mel bins or a 2-D tensor used to fail inside conv2d
    with a bare RuntimeError; the error now says what PaSST takes and how to make it."""
    model = PaSST(PaSSTConfig.tiny()).eval()
    n_mels = model.cfg.frontend.n_mels
    for spec, match in ((torch.randn(1, n_mels, 8), "T >= 16"),
                        (torch.randn(n_mels, 100), "encoder.spectrogram"),
                        (torch.randn(1, 8, 100), f"feed {n_mels}")):
        with pytest.raises(ConfigError, match=match):
            model.forward_spectrogram(spec)


def test_vggish_patches_of_the_wrong_size_are_a_config_error():
    """Patches whose frames or mel bands differ from the config used to fail in the first linear
    layer with a bare shape RuntimeError."""
    model = Vggish(VggishConfig.tiny()).eval()
    with pytest.raises(ConfigError, match=r"\(N, 1, 96, 64\).*flatten\(0, 1\)"):
        model.forward_patches(torch.randn(2, 96, 32))
    with pytest.raises(ConfigError, match="got \\(1, 3, 96, 64\\)"):
        model.forward_patches(model.patches(torch.randn(1, 3 * 15600)))
    assert model.forward_patches(model.patches(torch.randn(1, 15600)).flatten(0, 1)).shape == (1, 16)
