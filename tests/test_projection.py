"""The zero-shot projection head of paper 1: shape, layers, dropout behaviour, gradients, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zskit.errors import ConfigError
from zskit.heads.projection import ProjectionConfig, ProjectionHead


def test_paper_architecture_and_shapes():
    head = ProjectionHead(1024, 300)
    assert isinstance(head.norm, nn.LayerNorm), "paper 1 normalises the input"
    assert head.hidden.out_features == 1024, "paper 1: one hidden layer of 1024 units"
    assert isinstance(head.act, nn.GELU), "paper 1 uses GELU"
    assert head.out.out_features == 300, "the output lives in the label space"
    out = head(torch.randn(5, 1024))
    assert out.shape == (5, 300), f"expected (5, 300), got {tuple(out.shape)}"


def test_forward_matches_a_hand_written_reference():
    torch.manual_seed(0)
    head = ProjectionHead(16, 4, ProjectionConfig(hidden_dim=8, dropout=0.5)).eval()
    x = torch.randn(3, 16)
    ln = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-5)
    ln = ln * head.norm.weight + head.norm.bias
    h = torch.nn.functional.gelu(ln @ head.hidden.weight.T + head.hidden.bias)
    ref = h @ head.out.weight.T + head.out.bias
    torch.testing.assert_close(head(x), ref, msg="eval-mode forward differs from LN-Linear-GELU-Linear")


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    head = ProjectionHead(32, 8, ProjectionConfig(hidden_dim=64, dropout=0.5))
    x = torch.randn(4, 32)
    head.train()
    a, b = head(x), head(x)
    assert not torch.allclose(a, b), "dropout should make two training passes differ"
    head.eval()
    torch.testing.assert_close(head(x), head(x), msg="eval mode must be deterministic")


def test_every_parameter_gets_a_gradient():
    head = ProjectionHead(32, 8, ProjectionConfig(hidden_dim=16))
    head(torch.randn(6, 32)).pow(2).sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name} got no finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


@pytest.mark.parametrize("norm, cls", [("batchnorm", nn.BatchNorm1d), ("none", nn.Identity)])
def test_other_input_norms(norm, cls):
    torch.manual_seed(0)
    head = ProjectionHead(8, 2, ProjectionConfig(hidden_dim=4, input_norm=norm, dropout=0.0))
    assert isinstance(head.norm, cls), f"input_norm={norm!r} should build {cls.__name__}"
    x = torch.randn(6, 8)
    if norm == "batchnorm":  # batch statistics remove a per-feature scale and offset
        shifted = x * 3.0 + torch.arange(8.0)
        torch.testing.assert_close(head.train()(shifted), head(x), atol=1e-4, rtol=0,
                                   msg="batchnorm did not normalise each input feature")
    else:  # no normalisation: Linear-GELU-Linear on the raw input
        h = torch.nn.functional.gelu(x @ head.hidden.weight.T + head.hidden.bias)
        torch.testing.assert_close(head.eval()(x), h @ head.out.weight.T + head.out.bias,
                                   msg="input_norm='none' changed the input")


@pytest.mark.parametrize("kwargs, match", [
    ({"hidden_dim": 0}, "hidden_dim"),
    ({"dropout": 1.0}, "dropout"),
    ({"input_norm": "rms"}, "input_norm"),
])
def test_config_errors_name_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ProjectionConfig(**kwargs)


def test_wrong_input_size_is_explained():
    head = ProjectionHead(8, 2)
    with pytest.raises(ConfigError, match=r"\(batch, 8\)"):
        head(torch.randn(3, 7))
    with pytest.raises(ConfigError, match="positive sizes"):
        ProjectionHead(0, 2)


def test_batchnorm_refuses_a_training_batch_of_one():
    head = ProjectionHead(8, 2, ProjectionConfig(hidden_dim=4, input_norm="batchnorm"))
    with pytest.raises(ConfigError, match="batch of one"):
        head(torch.randn(1, 8))
    assert head.eval()(torch.randn(1, 8)).shape == (1, 2), "scoring one clip is fine"
