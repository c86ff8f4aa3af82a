"""Training-step code reads nothing back from the device (each read would make the step wait for
the GPU), and gives the results it gave before.

No GPU is needed. Two stand-ins for tensors on a GPU: ``OnGPU``, a CPU tensor that reports
``cuda`` as its device and raises on every read on the host (``bool``, ``int``, ``float``,
``item``, ``tolist``, ``numpy``, ``cpu``, ``.to("cpu")``), and the ``meta`` device, whose tensors
hold no data at all, so that any read of a value fails (used where an op creates tensors on the
input's device, which ``OnGPU`` cannot fake).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zskit.audio.augment import mixup_pairs
from zskit.audio.segments import random_crop
from zskit.encoders.audio.passt import PaSST, PaSSTConfig
from zskit.errors import ConfigError
from zskit.losses import info_nce
from zskit.models.transfer import ImageAugment

_HOST_READS = {torch.Tensor.__bool__, torch.Tensor.__int__, torch.Tensor.__float__,
               torch.Tensor.__index__, torch.Tensor.item, torch.Tensor.tolist,
               torch.Tensor.numpy, torch.Tensor.cpu}


class OnGPU(torch.Tensor):
    """A CPU tensor posing as one on a GPU: every read on the host raises AssertionError."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func == torch.Tensor.device.__get__:
            return torch.device("cuda")
        if func in _HOST_READS:
            raise AssertionError(f"a value was read on the host ({func.__name__})")
        if func is torch.Tensor.to:  # moves between "GPUs" are no-ops, to the host is a read
            target = kwargs.pop("device", None)
            kept = [a for a in args[1:] if not isinstance(a, (torch.device, str))]
            target = next((a for a in args[1:] if isinstance(a, (torch.device, str))), target)
            if target is not None and torch.device(target).type == "cpu":
                raise AssertionError("a tensor was copied to the host")
            args = (args[0], *kept)
        return super().__torch_function__(func, types, args, kwargs)


def on_gpu(t: torch.Tensor) -> OnGPU:
    return t.as_subclass(OnGPU)


def plain(t: torch.Tensor) -> torch.Tensor:
    return t.as_subclass(torch.Tensor)


def test_the_stand_in_refuses_every_host_read():
    t = on_gpu(torch.tensor([1.5, -2.0]))
    assert t.device.type == "cuda" and (t * 2).device.type == "cuda", "results stay 'on the GPU'"
    reads = [lambda: bool(t[0] > 0), lambda: int(t[0]), lambda: float(t[0]), lambda: t[0].item(),
             lambda: t.tolist(), lambda: t.numpy(), lambda: t.cpu(), lambda: t.to("cpu"),
             lambda: t.to(device=torch.device("cpu"), dtype=torch.float64)]
    for read in reads:
        with pytest.raises(AssertionError, match="host"):
            read()
    assert t.to(torch.device("cuda"), torch.float64).dtype == torch.float64


# --------------------------------------------------------------------------- losses


def _pairs(b: int = 6, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (F.normalize(torch.randn(b, d, generator=g), dim=1),
            F.normalize(torch.randn(b, d, generator=g), dim=1))


def test_info_nce_learned_scale_and_clip_ids_read_nothing_on_a_gpu():
    audio, text = _pairs()
    ids, scale = torch.tensor([0, 0, 1, 2, 2, 3]), torch.tensor(14.3, requires_grad=True)
    expected = info_nce(audio, text, logit_scale=scale, clip_ids=ids)
    out = info_nce(on_gpu(audio), on_gpu(text), logit_scale=on_gpu(scale), clip_ids=on_gpu(ids))
    assert torch.equal(plain(out), expected), "the loss must not change"
    out.backward()
    assert scale.grad is not None and plain(scale.grad) != 0, "the scale must still be learned"
    fixed = info_nce(on_gpu(audio), on_gpu(text), temperature=0.07, clip_ids=on_gpu(ids))
    assert torch.equal(plain(fixed), info_nce(audio, text, temperature=0.07, clip_ids=ids))


def test_info_nce_positives_matrix_reads_nothing_on_a_gpu():
    audio, text = _pairs()
    ids = torch.tensor([0, 0, 1, 2, 2, 3])
    positives = ids[:, None] == ids[None, :]
    expected = info_nce(audio, text, temperature=0.07, positives=positives)
    out = info_nce(on_gpu(audio), on_gpu(text), temperature=0.07, positives=on_gpu(positives))
    assert torch.equal(plain(out), expected), "the loss must not change"


def test_bad_scale_or_positives_raise_on_the_cpu_and_give_nan_on_a_gpu():
    audio, text = _pairs()
    lonely = torch.eye(6, dtype=torch.bool)
    lonely[2, 2] = False  # row and column 2 have no positive
    for scale in (-14.3, 0.0, torch.tensor(-14.3), torch.tensor(0.0)):
        with pytest.raises(ConfigError, match="logit_scale"):
            info_nce(audio, text, logit_scale=scale)
    with pytest.raises(ConfigError, match="every row and column"):
        info_nce(audio, text, temperature=0.07, positives=lonely)
    bad_scale = info_nce(on_gpu(audio), on_gpu(text), logit_scale=on_gpu(torch.tensor(-14.3)),
                         clip_ids=on_gpu(torch.arange(6)))
    assert torch.isnan(plain(bad_scale)), "a non-positive scale must not train silently"
    bad_pos = info_nce(on_gpu(audio), on_gpu(text), temperature=0.07, positives=on_gpu(lonely))
    assert torch.isnan(plain(bad_pos)), "a row without a positive must not train silently"


# --------------------------------------------------------------------------- augmentation


def test_mixup_pairs_on_a_device_draws_its_seed_on_the_cpu():
    torch.manual_seed(5)
    perm, lam = mixup_pairs(8, alpha=10.0, prob=0.5, device="meta")  # meta: no value readable
    assert perm.device.type == lam.device.type == "meta" and lam.shape == (8,)
    after = torch.rand(1)
    torch.manual_seed(5)
    torch.randint(0, 2**62, (1,))  # the one draw the call made: the Beta seed
    assert torch.equal(after, torch.rand(1)), "the seed must come from the CPU generator"


@pytest.mark.parametrize("seeded", [True, False])
def test_mixup_pairs_on_the_cpu_keep_their_draws(seeded):
    """The CPU draws follow the documented recipe: the permutation, then one seed for numpy's
    Beta draws, from ``generator`` (or torch's global generator)."""
    def generator():
        return torch.Generator().manual_seed(7) if seeded else None

    torch.manual_seed(7)
    perm, lam = mixup_pairs(10, alpha=0.4, generator=generator(), prob=0.6)
    torch.manual_seed(7)
    g = generator()
    expected_perm = torch.randperm(10, generator=g)
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g)))
    expected = rng.beta(0.4, 0.4, size=10)
    expected[rng.random(10) >= 0.6] = 1.0
    assert torch.equal(perm, expected_perm), "partners changed"
    assert torch.equal(lam, torch.tensor(expected, dtype=torch.float32)), "weights changed"


def test_random_crop_of_device_audio_draws_its_offset_on_the_cpu():
    out = random_crop(torch.zeros(2, 100, device="meta"), 30)  # meta: no value readable
    assert out.shape == (2, 30) and out.device.type == "meta"
    x = torch.arange(100.0).expand(2, 100)
    torch.manual_seed(3)
    crop = random_crop(x, 30)
    torch.manual_seed(3)
    start = int(torch.randint(0, 71, (1,)))
    assert torch.equal(crop, x[..., start:start + 30]), "the CPU offset must be unchanged"


def test_image_augment_pads_with_the_minimum_without_reading_it():
    augment = ImageAugment(freq_mask=0.2, time_mask=0.2, stretch=(0.5, 0.9)).train()
    assert augment(torch.zeros(3, 1, 8, 20, device="meta")).shape == (3, 1, 8, 20)
    images = torch.randn(3, 1, 8, 20) + 4.0
    no_masks = ImageAugment(freq_mask=0.0, time_mask=0.0, stretch=(0.5, 0.9)).train()
    torch.manual_seed(1)
    out = no_masks(images)
    torch.manual_seed(1)
    rates = torch.empty(3).uniform_(0.5, 0.9).tolist()
    for image, rate, got in zip(images, rates, out):
        new = round(20 * rate)
        x = F.interpolate(image[None], size=(8, new), mode="bilinear", align_corners=False)[0]
        left = (20 - new) // 2
        expected = F.pad(x, (left, 20 - new - left), value=float(image.min()))
        assert torch.equal(got, expected), "padding must be the image's minimum, as before"


# --------------------------------------------------------------------------- PaSST


@pytest.mark.parametrize("seconds", [0.8, 2.5])  # one segment; three segments of 1 s
def test_passt_computes_frame_counts_from_cpu_lengths(seconds):
    cfg = PaSSTConfig.tiny(segment_seconds=1.0)
    with torch.device("meta"):
        model = PaSST(cfg).train()
    n = int(seconds * cfg.sample_rate)
    out = model.forward_features(torch.zeros(2, n, device="meta"),
                                 lengths=torch.tensor([n, n // 3]))
    assert out.embedding.shape == (2, cfg.embed_dim) and out.token_mask.device.type == "meta"
