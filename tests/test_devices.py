"""Mixed-precision choice per GPU generation, with the GPU's compute capability faked."""

from __future__ import annotations

import pytest
import torch

from zskit.devices import resolve_amp, resolve_device
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


@pytest.mark.parametrize("amp", ["fp32", "yes", "bfloat16", "AUTO"])
def test_unknown_amp_is_a_config_error_not_bf16(amp):
    with pytest.raises(ConfigError, match="is not one of 'auto', 'off', 'fp16', 'bf16'"):
        resolve_amp(amp, torch.device("cpu"))


def test_a_cuda_index_beyond_the_gpus_says_which_exist(monkeypatch):
    _fake_gpu(monkeypatch, (8, 0), BUILD)
    with pytest.raises(ConfigError, match=r"has 1 CUDA device\(s\).*'cuda:0'"):
        resolve_device("cuda:1")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert resolve_device("cuda") == torch.device("cuda")


def _fake_gpu(monkeypatch, capability, arches):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: arches)


BUILD = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_120"]


@pytest.mark.parametrize("capability, arches", [
    ((7, 5), BUILD), ((8, 9), BUILD),  # T4; L4 runs the sm_86 binary
    ((10, 0), ["sm_80", "compute_90"]),  # newer than every binary: PTX is compiled for it
    ((9, 0), ["gfx90a", "gfx942"]),  # a ROCm build names AMD architectures: torch decides
])
def test_auto_picks_a_gpu_the_build_supports(capability, arches, monkeypatch):
    _fake_gpu(monkeypatch, capability, arches)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")


def test_auto_skips_a_gpu_older_than_the_build_and_cuda_says_why(monkeypatch):
    _fake_gpu(monkeypatch, (6, 0), BUILD)  # a P100 under a build for 7.5 and newer
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="skips the GPU.*capability 6.0"):
        assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="capability 6.0.*sm_75 sm_80"):
        resolve_device("cuda")
