"""Device review: code paths that run on a GPU (CUDA, MPS) but not on this CPU-only machine.

Where a test cannot run on CUDA or MPS it stands in for them: :class:`AcceleratorTensor` is a CPU
tensor that refuses what a GPU tensor refuses (numpy without ``.cpu()``; float64, which MPS has
not), a front end moved to the ``meta`` device shows where its input went, and monkeypatched
``torch.cuda`` functions play a machine with a given number of GPUs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from zskit.audio.features import clip_features
from zskit.audio.io import save_audio
from zskit.data.ontology import label_similarity
from zskit.hierarchy import Hierarchy
from zskit.hierarchy_eval import pool_coarse
from zskit.label_matching import LabelMatchingScorer
from zskit.models.dual_encoder import DualEncoder, Precomputed
from zskit.train.batches import make_batches
from zskit.train.checkpoint import average_state_dicts, get_rng_state, set_rng_state

ON_GPU = "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first."
NO_FLOAT64 = "Cannot convert a MPS Tensor to float64 dtype as the MPS framework doesn't support it."


class AcceleratorTensor(torch.Tensor):
    """A CPU tensor behaving, where it matters here, like one on a GPU.

    numpy refuses it (as a CUDA tensor) and so does float64 (as on MPS) until ``.cpu()`` brings
    it back as a plain tensor; ``.to('mps')`` in float32 gives a plain tensor (as if moved), in
    float64 it fails as on a Mac.
    """

    def numpy(self, *, force: bool = False) -> np.ndarray:
        raise TypeError(ON_GPU)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(ON_GPU)

    def cpu(self, memory_format=torch.preserve_format) -> torch.Tensor:
        return self.as_subclass(torch.Tensor).clone()

    def double(self, memory_format=torch.preserve_format) -> torch.Tensor:
        raise TypeError(NO_FLOAT64)

    def to(self, *args, **kwargs) -> torch.Tensor:
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None and device.type == "cpu":
            return self.cpu().to(*args, **kwargs)
        if (dtype or self.dtype) == torch.float64 and (dtype is not None or device is not None):
            raise TypeError(NO_FLOAT64)
        if device is not None:
            return self.as_subclass(torch.Tensor).to(dtype or self.dtype).clone()
        return super().to(*args, **kwargs)


def on_device(t: torch.Tensor) -> AcceleratorTensor:
    return t.clone().as_subclass(AcceleratorTensor)


def test_the_stand_in_refuses_what_a_gpu_tensor_refuses():
    t = on_device(torch.ones(2, 3))
    for convert in (np.asarray, lambda x: x.numpy(), lambda x: x.to(torch.float64),
                    lambda x: x.double()):
        with pytest.raises(TypeError):
            convert(t)
    back = t.detach().cpu()
    assert type(back) is torch.Tensor and np.asarray(back).shape == (2, 3)


# --------------------------------------------------------------------------- numpy conversions


def test_pool_coarse_takes_model_outputs_on_any_device_and_in_bfloat16():
    h = Hierarchy(("a", "b", "c"), ("x", "y"), (0, 0, 1), "toy")
    fine = torch.tensor([[0.1, 0.7, 0.4], [0.9, 0.2, 0.3]])
    expected = np.array([[0.7, 0.4], [0.9, 0.3]], np.float32)
    for scores in (fine.numpy(), on_device(fine), fine.requires_grad_(), fine.bfloat16()):
        got = pool_coarse(scores, h, "max")
        np.testing.assert_allclose(got, expected, atol=1e-2, err_msg=str(type(scores)))


class _Words:
    """Label vectors: a fixed random vector per name (in bfloat16 or on a "GPU" when asked)."""

    def __init__(self, kind: str = "float32") -> None:
        self.kind = kind

    def encode_labels(self, names):
        rows = [torch.Generator().manual_seed(sum(map(ord, n))) for n in names]
        x = torch.stack([torch.randn(8, generator=g) for g in rows])
        if self.kind == "bfloat16":
            return x.bfloat16()
        return on_device(x) if self.kind == "device" else x


def test_label_matching_scores_tensors_from_any_device():
    scorer = LabelMatchingScorer(["cello", "tuba"], ["violin", "horn", "drum"], _Words())
    scores = torch.rand(4, 3)
    expected = scorer.score(scores.numpy())
    np.testing.assert_allclose(scorer.score(on_device(scores)), expected)
    np.testing.assert_allclose(scorer.score(scores.requires_grad_()), expected)


def test_label_similarity_takes_bfloat16_and_device_label_vectors():
    expected = label_similarity(["a", "b"], ["c"], _Words())
    for kind in ("bfloat16", "device"):
        got = label_similarity(["a", "b"], ["c"], _Words(kind))
        np.testing.assert_allclose(got, expected, atol=2e-2, err_msg=kind)


def test_zero_shot_explorer_copies_tensor_embeddings_from_any_device(tmp_path):
    from zskit.widgets import Clips, ZeroShotExplorer

    clips = Clips(ids=["a", "b"], paths=[tmp_path / "a.wav", tmp_path / "b.wav"],
                  captions=["", ""], truth=[[], []])
    x = torch.randn(2, 4)
    app = ZeroShotExplorer(clips, {("enc", "words"): object()}, {"enc": on_device(x)},
                           players=False)
    assert app.embeddings["enc"].dtype == np.float32
    np.testing.assert_array_equal(app.embeddings["enc"], x.numpy())


# --------------------------------------------------------------------------- checkpoints


def test_average_state_dicts_of_device_states_is_computed_on_the_cpu():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": on_device(torch.tensor([3.0, 6.0])), "n": on_device(torch.tensor(4))}
    out = average_state_dicts([a, b])  # e.g. a file (CPU) and a model on an MPS device
    assert type(out["w"]) is torch.Tensor and type(out["n"]) is torch.Tensor
    assert out["w"].tolist() == [2.0, 4.0] and out["w"].dtype == torch.float32
    assert int(out["n"]) == 4


def test_resuming_on_fewer_gpus_restores_the_states_of_those_there_are(monkeypatch):
    state = get_rng_state()
    state["cuda"] = [torch.zeros(8, dtype=torch.uint8), torch.ones(8, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.extend(states))
    set_rng_state(state)  # written on 2 GPUs, resumed on 1 (a 2-GPU box, then Colab)
    assert len(restored) == 1 and torch.equal(restored[0], state["cuda"][0])


# --------------------------------------------------------------------------- batches


def test_a_dataset_is_pinned_only_for_a_cuda_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    data = TensorDataset(torch.zeros(4, 2), torch.zeros(4, 1))
    on_cpu = make_batches(data, 2, device=torch.device("cpu"), shuffle=False)
    assert not on_cpu.loader.pin_memory, "a CPU run (e.g. the small heads) pins nothing"
    assert make_batches(data, 2, device=torch.device("cuda"), shuffle=False).loader.pin_memory


# --------------------------------------------------------------------------- the dual encoder


class _MeanEncoder(nn.Module):
    """A parameter-free audio encoder: the mean sample of each clip."""

    embed_dim, sample_rate = 1, 16000

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return x.float().mean(1, keepdim=True)


def test_float64_inputs_reach_an_mps_model_as_float32(monkeypatch):
    torch.manual_seed(0)
    frozen = DualEncoder(Precomputed(4), Precomputed(3), dim=2)
    raw = DualEncoder(_MeanEncoder(), Precomputed(3), dim=2)
    expected = {
        "audio": frozen.encode_audio(torch.ones(2, 4)),
        "text": frozen.encode_text(torch.ones(2, 3)),
        "wave": raw.encode_audio(torch.ones(2, 50)),
    }
    monkeypatch.setattr(DualEncoder, "device", property(lambda self: torch.device("mps")))
    got = {
        "audio": frozen.encode_audio(on_device(torch.ones(2, 4, dtype=torch.float64))),
        "text": frozen.encode_text(on_device(torch.ones(2, 3, dtype=torch.float64))),
        "wave": raw.encode_audio(on_device(torch.ones(2, 50, dtype=torch.float64))),
    }
    for key, value in expected.items():
        assert torch.allclose(got[key], value), key


# --------------------------------------------------------------------------- front ends, stems


class _Recorder(nn.Module):
    """A front end that notes the device of each input and gives (B, 2, 3) ones on the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.ones(4), persistent=False)
        self.devices: list[torch.device] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.devices.append(x.device)
        return torch.ones(x.shape[0], 2, 3)


def test_clip_features_feeds_the_front_end_on_its_device(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.wav")
        save_audio(paths[-1], np.zeros(8000, np.float32), 16000)
    frontend = _Recorder().to("meta")  # a front end on a GPU, say
    feats = clip_features(paths, frontend, 16000, seconds=0.25, progress=False, batch_size=2)
    assert frontend.devices == [torch.device("meta")] * 2
    assert feats.shape == (3, 2, 3) and feats.device.type == "cpu"
    frontend.devices.clear()
    clip_features(paths[:1], frontend, 16000, seconds=None, progress=False)
    assert frontend.devices == [torch.device("meta")]


def test_yamnet_stems_runs_where_the_encoder_is(tmp_path, monkeypatch):
    import zskit.models.retrieval_ablations as ablations
    from zskit.encoders import create_audio_encoder

    torch.manual_seed(0)
    yamnet = create_audio_encoder("yamnet", tiny=True).eval()
    paths = [tmp_path / f"{i}.wav" for i in range(2)]
    for p in paths:
        save_audio(p, np.zeros(16000, np.float32), yamnet.sample_rate)
    seen, patches = [], yamnet.patches

    def recorded(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.device)
        return patches(torch.zeros(x.shape))  # computed on the CPU, as if on the device

    monkeypatch.setattr(yamnet, "patches", recorded)
    monkeypatch.setattr(ablations, "module_device", lambda module: torch.device("meta"))
    stems = ablations.yamnet_stems(yamnet, paths, cache_dir=tmp_path / "cache")
    assert seen == [torch.device("meta")], "the waveforms go to the encoder's device"
    assert stems.device.type == "cpu" and stems.dtype == torch.float16


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter:UserWarning")
def test_reinit_positions_of_an_ast_on_another_device_than_the_source():
    from test_adapt import ast, vision  # the tiny AST and ImageNet transformer of those tests

    from zskit.adapt import adapt_vision_transformer

    model = ast().to("meta")  # e.g. an AST already on the GPU, the ViT loaded on the CPU
    adapt_vision_transformer(model, vision("deit"), positions="reinit")
    assert model.audio_spectrogram_transformer.embeddings.position_embeddings.is_meta
