"""Audio encoders cast to bfloat16 (``.to(torch.bfloat16)``) still embed waveforms.

Their front ends compute float32 features on purpose (log-mel and filter banks lose too much in
bfloat16), so each encoder must cast those features to its first layer's dtype; without that the
first convolution or batch norm raises a dtype mismatch.
"""

from __future__ import annotations

import copy

import pytest
import torch

from zskit.encoders import create_audio_encoder

ENCODERS = ["passt", "ast", "cnn14", "vggish", "yamnet"]


@pytest.mark.parametrize("name", ENCODERS)
def test_bfloat16_encoder_embeds_close_to_float32(name):
    torch.manual_seed(0)
    model = create_audio_encoder(name, tiny=True).eval()
    clip = torch.randn(1, model.sample_rate) * 0.1
    low = copy.deepcopy(model).to(torch.bfloat16)
    with torch.no_grad():
        reference = model(clip)
        embedding = low(clip)
    assert embedding.shape == reference.shape
    assert torch.isfinite(embedding).all()
    cosine = torch.nn.functional.cosine_similarity(embedding.float(), reference, dim=-1)
    assert cosine.min() > 0.99, f"{name}: bfloat16 embedding strays from float32 ({cosine})"
