"""Mixed-precision choice per GPU generation, with the GPU's compute capability faked."""

from __future__ import annotations

import pytest
import torch

from zskit.devices import resolve_amp
from zskit.errors import ConfigError

CUDA = torch.device("cuda")


@pytest.mark.parametrize("capability, want", [
    ((7, 5), (torch.float16, True)),  # T4 (Colab's free GPU): bf16 only emulated
    ((7, 0), (torch.float16, True)),  # V100
    ((8, 0), (torch.bfloat16, False)),  # A100
    ((9, 0), (torch.bfloat16, False)),  # H100
])
def test_auto_precision_uses_bf16_only_where_the_gpu_has_it(capability, want, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulation says yes
    assert resolve_amp("auto", CUDA) == want, f"compute capability {capability}"


def test_bf16_on_a_gpu_without_it_says_what_to_use(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    with pytest.raises(ConfigError, match="amp='fp16' or 'auto'"):
        resolve_amp("bf16", CUDA)
    assert resolve_amp("fp16", CUDA) == (torch.float16, True)
