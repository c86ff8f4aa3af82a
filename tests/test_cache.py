"""EmbeddingCache / embed_manifest with a tiny deterministic encoder over short wav files."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from torch import nn

import zskit.cache as cache_mod
import zskit.fileio as fileio_mod
from zskit.audio import load_audio
from zskit.cache import EmbeddingCache, embed_manifest, rank_shards
from zskit.data.manifest import load_corpus, write_manifest
from zskit.encoders.base import AudioEncoder, EncoderOutput, check_waveforms
from zskit.errors import AudioLoadError, ConfigError, DataError
from zskit.fileio import write_json
from zskit.train import DistInfo

SR = 8000


@dataclass(frozen=True)
class StatsConfig:
    sample_rate: int = SR
    embed_dim: int = 5
    scale: float = 1.0


class StatsEncoder(AudioEncoder):
    """Masked statistics of each clip (mean, rms, peak, duration, first sample) x a weight vector.

    Counts its calls; raises on call number ``fail_at``; runs ``on_call()`` before each call.
    """

    def __init__(self, cfg: StatsConfig = StatsConfig(), fail_at: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.linspace(1.0, 2.0, cfg.embed_dim))
        self.calls, self.fail_at, self.on_call = 0, fail_at, None

    def forward_features(self, waveforms, lengths=None):
        self.calls += 1
        if self.on_call is not None:
            self.on_call()
        if self.calls == self.fail_at:
            raise RuntimeError(f"simulated crash on call {self.calls}")
        x = check_waveforms(waveforms, SR)
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1])
        mask = torch.arange(x.shape[1]) < lengths[:, None]
        n = lengths.to(x.dtype)
        xm = x * mask
        stats = torch.stack([xm.sum(1) / n, ((xm**2).sum(1) / n).sqrt(), xm.abs().amax(1),
                             n / SR, x[:, 0]], dim=1)
        emb = stats[:, torch.arange(self.cfg.embed_dim) % 5] * self.cfg.scale * self.weight
        return EncoderOutput(embedding=emb, logits=emb[:, :2] - emb[:, 2:4])


def _write_clips(folder: Path, n: int, seconds: tuple[float, float], seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        x = rng.uniform(-0.9, 0.9, int(rng.uniform(*seconds) * SR)).astype(np.float32)
        path = folder / f"clip_{i:02d}.wav"
        sf.write(path, x, SR, subtype="FLOAT")
        paths.append(path)
    return paths


@pytest.fixture
def clips(tmp_path) -> list[Path]:
    """A dozen clips of 0.2-1.3 s at 8 kHz (float wav: exact round trip)."""
    return _write_clips(tmp_path / "audio", 12, (0.2, 1.3))


def _direct(encoder: StatsEncoder, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Reference: one clip at a time, no padding, no cache."""
    with torch.no_grad():
        outs = [encoder.forward_features(load_audio(p, SR)[None]) for p in paths]
    return (torch.cat([o.embedding for o in outs]).numpy(),
            torch.cat([o.logits for o in outs]).numpy())


def _embed(encoder, paths, cache_dir, **kwargs):
    kwargs = {"batch_size": 2, "shard_size": 4, "progress": False, "device": "cpu", **kwargs}
    return embed_manifest(encoder, paths, cache_dir=cache_dir, **kwargs)


def _visible(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")}


def test_results_equal_direct_encoder_calls(clips, tmp_path):
    enc = StatsEncoder()
    enc.train()
    emb = _embed(enc, clips, tmp_path / "cache", batch_size=5)
    ref, _ = _direct(StatsEncoder(), clips)
    assert isinstance(emb, np.memmap), f"expected an np.memmap, got {type(emb)}"
    assert emb.dtype == np.float32 and emb.shape == (12, 5), f"got {emb.dtype} {emb.shape}"
    np.testing.assert_allclose(emb, ref, rtol=1e-5, atol=1e-7,
                               err_msg="cached embeddings differ from direct per-clip calls")
    assert enc.training, "the encoder's training mode was not restored"


def test_store_logits_equal_direct_logits(clips, tmp_path):
    cache = EmbeddingCache(StatsEncoder(), clips, cache_dir=tmp_path, batch_size=3, shard_size=5,
                           store_logits=True, progress=False, device="cpu").compute()
    ref_emb, ref_logits = _direct(StatsEncoder(), clips)
    np.testing.assert_allclose(cache.embeddings, ref_emb, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(cache.logits, ref_logits, rtol=1e-5, atol=1e-7,
                               err_msg="cached logits differ from EncoderOutput.logits")
    assert _visible(cache.directory) == {"key.json", "embeddings.npy", "logits.npy",
                                         "complete.json"}, sorted(cache.directory.iterdir())


def test_a_complete_cache_with_logits_serves_a_request_without(clips, tmp_path):
    """Embeddings only, asked after a run that also kept logits: no second pass over the audio.
    The reverse (logits asked, only embeddings cached) must compute."""
    kwargs = {"cache_dir": tmp_path, "batch_size": 4, "progress": False, "device": "cpu"}
    with_logits = EmbeddingCache(StatsEncoder(), clips, store_logits=True, **kwargs).compute()
    enc = StatsEncoder()
    plain = EmbeddingCache(enc, clips, **kwargs)
    assert plain.complete and plain.directory == with_logits.directory
    np.testing.assert_array_equal(plain.compute().embeddings, with_logits.embeddings)
    assert enc.calls == 0, f"the encoder ran {enc.calls} times for a cached request"
    with pytest.raises(ConfigError, match="store_logits=True"):
        plain.logits  # noqa: B018 (the property raises)

    other = tmp_path / "other"
    EmbeddingCache(StatsEncoder(), clips, **{**kwargs, "cache_dir": other}).compute()
    wants_logits = EmbeddingCache(StatsEncoder(), clips, store_logits=True,
                                  **{**kwargs, "cache_dir": other})
    assert not wants_logits.complete, "an embeddings-only cache cannot serve logits"


def test_encoder_without_logits_is_refused_when_logits_are_asked(clips, tmp_path):
    class NoLogits(StatsEncoder):
        def forward_features(self, waveforms, lengths=None):
            return EncoderOutput(super().forward_features(waveforms, lengths).embedding)

    with pytest.raises(ConfigError, match="store_logits=False"):
        _embed(NoLogits(), clips, tmp_path, store_logits=True)


def test_second_call_makes_no_encoder_call(clips, tmp_path):
    first = StatsEncoder()
    a = _embed(first, clips, tmp_path)
    assert first.calls == 6, f"12 clips in batches of 2 should take 6 calls, took {first.calls}"
    again = StatsEncoder()  # a new instance with the same config and weights
    b = _embed(again, clips, tmp_path)
    assert again.calls == 0, f"a cache hit still called the encoder {again.calls} times"
    assert a.filename == b.filename, f"{a.filename} != {b.filename}"
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("change", ["config", "weights", "segment", "hop", "content", "logits"])
def test_any_key_change_recomputes(clips, tmp_path, change):
    enc = StatsEncoder()
    base = EmbeddingCache(enc, clips, cache_dir=tmp_path, batch_size=4, progress=False,
                          device="cpu").compute()
    kwargs = {"cache_dir": tmp_path, "batch_size": 4, "progress": False, "device": "cpu"}
    if change == "config":
        enc = StatsEncoder(dataclasses.replace(enc.cfg, scale=2.0))
    elif change == "weights":
        with torch.no_grad():
            enc.weight[0] += 0.5
    elif change == "segment":
        kwargs["segment_seconds"] = 0.5
    elif change == "hop":
        kwargs.update(segment_seconds=1.0, segment_hop=0.5)
    elif change == "logits":
        kwargs["store_logits"] = True
    else:  # same length, new samples, saved a second later (robust to coarse file-system clocks)
        before = clips[3].stat().st_mtime_ns
        x = sf.read(clips[3], dtype="float32")[0]
        sf.write(clips[3], -x, SR, subtype="FLOAT")
        os.utime(clips[3], ns=(before + 10**9, before + 10**9))
    calls = enc.calls
    new = EmbeddingCache(enc, clips, **kwargs)
    assert new.key != base.key and new.directory != base.directory, f"{change}: same key"
    assert not new.complete, f"{change}: a new key found a complete cache"
    new.compute()
    assert enc.calls > calls, f"{change}: the encoder was not called again"
    if change in ("config", "weights", "content"):
        ref, _ = _direct(enc, clips)
        np.testing.assert_allclose(new.embeddings, ref, rtol=1e-5, atol=1e-7,
                                   err_msg=f"{change}: recomputed embeddings are stale")
    if change == "content":
        assert not np.allclose(new.embeddings[3], base.embeddings[3]), "row 3 did not change"


def test_content_fingerprint_follows_bytes_not_times(clips, tmp_path):
    def key(contents: bool) -> str:
        return EmbeddingCache(StatsEncoder(), clips, cache_dir=tmp_path, hash_contents=contents,
                              progress=False).key

    stat_key, content_key = key(False), key(True)
    st = clips[0].stat()
    os.utime(clips[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touch: same bytes
    assert key(False) != stat_key, "size+mtime fingerprint ignored a new mtime"
    assert key(True) == content_key, "content fingerprint changed although the bytes did not"
    x = sf.read(clips[0], dtype="float32")[0]
    sf.write(clips[0], x[::-1].copy(), SR, subtype="FLOAT")
    os.utime(clips[0], ns=(st.st_atime_ns, st.st_mtime_ns))  # new bytes, old size and time
    assert key(False) == stat_key, "expected: size+mtime cannot see a same-size same-time edit"
    assert key(True) != content_key, "content fingerprint missed changed bytes"


def test_interrupted_run_resumes_with_only_the_missing_shards(clips, tmp_path):
    crashing = StatsEncoder(fail_at=4)  # 3 shards of 4 clips, 2 calls each: dies in shard 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        _embed(crashing, clips, tmp_path / "a")
    (folder,) = (tmp_path / "a" / "statsencoder").iterdir()
    assert _visible(folder) == {"key.json", "emb_000000000-000000004.npy"}, sorted(
        folder.iterdir())
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")], "temp files left behind"

    resumed = StatsEncoder()
    emb = _embed(resumed, clips, tmp_path / "a")
    assert resumed.calls == 4, f"resume should redo shards 2 and 3 (4 calls), did {resumed.calls}"
    clean = _embed(StatsEncoder(), clips, tmp_path / "b")
    np.testing.assert_array_equal(emb, clean, err_msg="resumed result differs from a clean run")
    assert _visible(folder) == {"key.json", "embeddings.npy", "complete.json"}, sorted(
        folder.iterdir())


def test_no_half_written_file_is_ever_visible(clips, tmp_path, monkeypatch):
    moves: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src, dst):
        moves.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    writes: list[str] = []  # every file zskit.cache (through zskit.fileio) opens for writing
    real_open = open

    def open_spy(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax+"):
            writes.append(Path(file).name)
        return real_open(file, mode, *args, **kwargs)

    for module in (cache_mod, fileio_mod):
        monkeypatch.setattr(module, "open", open_spy, raising=False)
    enc = StatsEncoder()
    cache = EmbeddingCache(enc, clips, cache_dir=tmp_path, batch_size=2, shard_size=4,
                           store_logits=True, progress=False, device="cpu")
    checked = []

    def check_visible_files():
        if not cache.directory.exists():
            return
        for name in _visible(cache.directory):
            path = cache.directory / name
            if name.endswith(".json"):
                json.loads(path.read_text())
            elif name in ("embeddings.npy", "logits.npy"):
                assert np.load(path).shape[0] == len(clips), f"{name} is incomplete"
            else:  # a shard: <kind>_<start>-<stop>.npy
                start, stop = (int(v) for v in name[:-4].split("_")[1].split("-"))
                array = np.load(path)
                assert array.shape[0] == stop - start, f"{name} holds {array.shape}"
            checked.append(name)

    enc.on_call = check_visible_files
    cache.compute()
    check_visible_files()
    assert any(n.startswith("emb_") for n in checked), f"no shard was seen mid-run: {checked}"
    final = {dst for _, dst in moves}
    for name in checked:
        assert name in final, f"{name} appeared without an atomic rename"
    for src, dst in moves:
        assert src.startswith(".") and src.endswith(".tmp"), f"{dst} was moved from {src}"
    npy = [n for n in writes if ".npy." in n]
    assert len(npy) == 3 * 2 + 2, f"expected 6 shard and 2 merged writes, saw {writes}"
    assert len(writes) == len(npy) + 2, f"expected key.json and complete.json too: {writes}"
    for name in writes:
        assert name.startswith(".") and name.endswith(".tmp"), f"data written to {name} directly"


def test_memmap_is_read_only(clips, tmp_path):
    emb = _embed(StatsEncoder(), clips, tmp_path)
    assert not emb.flags.writeable, "the cached array is writeable"
    with pytest.raises(ValueError):
        emb[0, 0] = 1.0


def test_segment_and_average_equals_mean_of_segment_embeddings(clips, tmp_path):
    seg, hop = 0.25, 0.125  # 2000 and 1000 samples
    cache = EmbeddingCache(StatsEncoder(), clips, cache_dir=tmp_path, batch_size=3,
                           segment_seconds=seg, segment_hop=hop, store_logits=True,
                           progress=False, device="cpu").compute()
    enc, length, step = StatsEncoder(), int(seg * SR), int(hop * SR)
    for i, path in enumerate(clips):
        wav = load_audio(path, SR)
        n_seg = 1 if len(wav) <= length else 1 + math.ceil((len(wav) - length) / step)
        with torch.no_grad():  # brute force: each window alone, unpadded
            outs = [enc.forward_features(wav[k * step:k * step + length][None])
                    for k in range(n_seg)]
        ref = torch.cat([o.embedding for o in outs]).mean(0).numpy()
        ref_logits = torch.cat([o.logits for o in outs]).mean(0).numpy()
        np.testing.assert_allclose(cache.embeddings[i], ref, rtol=1e-5, atol=1e-7,
                                   err_msg=f"clip {i}: not the mean of its {n_seg} segments")
        np.testing.assert_allclose(cache.logits[i], ref_logits, rtol=1e-5, atol=1e-7)


def test_corpus_manifest_and_path_list_share_one_cache(clips, tmp_path, monkeypatch):
    root = clips[0].parent
    rows = [{"clip_id": p.stem, "path": p.name, "split": "train", "labels": ""} for p in clips]
    write_manifest(pd.DataFrame(rows), root / "manifest.csv")
    write_json(root / "metadata.json", {"classes": []})
    corpus = load_corpus(root)
    first = StatsEncoder()
    a = _embed(first, corpus, tmp_path / "cache")
    monkeypatch.chdir(root)
    second = StatsEncoder()
    b = _embed(second, pd.DataFrame(rows), tmp_path / "cache")  # relative to the working dir
    assert first.calls > 0 and second.calls == 0, f"calls {first.calls}, {second.calls}"
    np.testing.assert_array_equal(a, b)
    key = json.loads((Path(a.filename).parent / "key.json").read_text())
    assert key["paths"] == [str(p) for p in corpus.paths], "key.json row order != corpus order"
    assert key["parts"]["encoder"] == "statsencoder" and key["parts"]["files"]["count"] == 12


def test_dataloader_workers_give_the_same_result(clips, tmp_path):
    a = _embed(StatsEncoder(), clips, tmp_path / "a", num_workers=1)
    b = _embed(StatsEncoder(), clips, tmp_path / "b", num_workers=0)
    np.testing.assert_array_equal(a, b, err_msg="DataLoader workers changed the result")


def test_peak_memory_does_not_hold_all_embeddings(tmp_path):
    paths = _write_clips(tmp_path / "audio", 40, (0.02, 0.05))
    enc = StatsEncoder(StatsConfig(embed_dim=16384))
    full = 40 * 16384 * 4  # bytes of the whole (N, D) float32 array
    tracemalloc.start()
    try:
        emb = _embed(enc, paths, tmp_path / "cache", batch_size=2, shard_size=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert emb.shape == (40, 16384)
    assert peak < full / 2, f"peak traced memory {peak} B is not well below the full array {full} B"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"segment_hop": 0.5}, ConfigError, "needs segment_seconds"),
    ({"segment_seconds": 0.5, "segment_hop": 1.0}, ConfigError, "longer than"),
    ({"segment_seconds": 0.0}, ConfigError, "segment_seconds"),
    ({"batch_size": 0}, ConfigError, "batch_size"),
    ({"num_workers": -1}, ConfigError, "num_workers"),
])
def test_bad_settings_raise(clips, tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        EmbeddingCache(StatsEncoder(), clips, cache_dir=tmp_path, **kwargs)


def test_bad_inputs_raise_naming_the_problem(clips, tmp_path):
    with pytest.raises(DataError, match="empty"):
        EmbeddingCache(StatsEncoder(), [], cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="list of audio paths"):
        EmbeddingCache(StatsEncoder(), str(clips[0]), cache_dir=tmp_path)
    missing = clips[0].with_name("nope.wav")
    with pytest.raises(AudioLoadError, match="nope.wav"):
        EmbeddingCache(StatsEncoder(), [*clips, missing], cache_dir=tmp_path)
    with pytest.raises(DataError, match=r"\.compute\(\)"):
        _ = EmbeddingCache(StatsEncoder(), clips, cache_dir=tmp_path).embeddings


def test_non_module_encoder_is_refused_by_name(clips, tmp_path):
    """An encoder that is not an nn.Module (e.g. YamnetOnnx) has no weights to hash: refuse it
    with a ConfigError that names it, instead of an AttributeError deep inside."""

    class OnnxLike:
        cfg = StatsConfig()

        def __call__(self, waveforms):
            return torch.zeros(waveforms.shape[0], 5)

    with pytest.raises(ConfigError, match=r"nn\.Module.*got OnnxLike"):
        EmbeddingCache(OnnxLike(), clips, cache_dir=tmp_path)


def test_yamnet_activation_clamp_is_part_of_the_key(clips, tmp_path):
    """The clamp changes YAMNet's outputs, so it must change the cache key: it is a config field
    (no runtime setter that would leave cfg, and so the key, stale)."""
    from zskit.encoders import create_audio_encoder

    clamped = create_audio_encoder("yamnet", tiny=True)
    loose = create_audio_encoder("yamnet", tiny=True, activation_clamp=False)
    loose.load_state_dict(clamped.state_dict())
    assert not hasattr(clamped, "set_activation_clamp"), "the clamp must be set through cfg only"
    keys = [EmbeddingCache(m, clips, cache_dir=tmp_path).key for m in (clamped, loose)]
    assert keys[0] != keys[1], "clamped and unclamped YAMNet share a cache key"


@pytest.mark.parametrize("n_shards, world", [(6, 2), (7, 3), (2, 4), (1, 1)])
def test_every_shard_has_exactly_one_rank(n_shards, world):
    shards = [(2 * i, 2 * i + 2) for i in range(n_shards)]
    owned = [s for rank in range(world) for s in rank_shards(shards, DistInfo(rank, world))]
    assert sorted(owned) == shards, f"{world} ranks cover {sorted(owned)}, not {shards}"


def test_merge_names_a_missing_shard_and_the_shared_folder_it_needs(clips, tmp_path):
    cache = EmbeddingCache(StatsEncoder(), clips, cache_dir=tmp_path, batch_size=2, shard_size=4,
                           progress=False, device="cpu")
    shards = [(0, 4), (4, 8), (8, 12)]
    cache.directory.mkdir(parents=True)
    cache._embed_shards(shards[:2], owned_rows=8, progress=False)  # as if rank 1's shard were elsewhere
    with pytest.raises(DataError, match="shared by all ranks") as err:
        cache._merge(shards, DistInfo(0, 2))
    assert "rows 8-12" in str(err.value), f"the message should name the shard: {err.value}"
    assert not cache.complete, "a failed merge must not mark the cache complete"


# -- two processes filling one cache (the lock itself: tests/test_robustness_races.py) ----------


def _assert_reference(embeddings, clips) -> None:
    np.testing.assert_allclose(embeddings, _direct(StatsEncoder(), clips)[0], rtol=1e-5, atol=1e-7)


def _two_caches(clips, tmp_path):
    kw = {"cache_dir": tmp_path, "batch_size": 2, "shard_size": 4, "progress": False,
          "device": "cpu"}
    first, second = EmbeddingCache(StatsEncoder(), clips, **kw), EmbeddingCache(StatsEncoder(),
                                                                                  clips, **kw)
    assert first.directory == second.directory, "same encoder and files must share one cache"
    return first, second


def test_a_cache_another_process_completed_meanwhile_is_used_as_it_is(clips, tmp_path,
                                                                      monkeypatch):
    """B has embedded every shard; A (started later) finds them, merges and deletes them; then
    B merges. B must return the complete cache, not complain about missing shards."""
    a, b = _two_caches(clips, tmp_path)
    merge = EmbeddingCache._merge

    def a_finishes_first(self, shards, dist):
        if self is b:
            a.compute()
            assert a.complete and not list(a.directory.glob("emb_*.npy"))
        return merge(self, shards, dist)

    monkeypatch.setattr(EmbeddingCache, "_merge", a_finishes_first)
    assert b.compute().complete
    _assert_reference(b.embeddings, clips)


def test_rows_embedded_after_another_process_merged_are_not_left_behind(clips, tmp_path):
    a, b = _two_caches(clips, tmp_path)
    b.encoder.on_call = lambda: a.complete or a.compute()  # A completes as B starts embedding
    b.compute()
    assert b.encoder.calls == 6, "B should have embedded its shards (it started first)"
    assert _visible(b.directory) == {"key.json", "embeddings.npy", "complete.json"}, sorted(
        b.directory.iterdir())
    _assert_reference(b.embeddings, clips)


@pytest.mark.parametrize("rival", ["merges", "deletes"])
def test_shards_vanishing_while_they_are_merged(clips, tmp_path, monkeypatch, rival):
    """A process that takes no lock (an older zskit, a file system without locks) merges and
    deletes the shards, or a user deletes one, while this process streams them."""
    cache, other = _two_caches(clips, tmp_path)
    shards = [(0, 4), (4, 8), (8, 12)]
    cache.directory.mkdir(parents=True)
    cache._embed_shards(shards, owned_rows=12, progress=False)
    asked = []

    def path_then_rival(kind, shard):
        asked.append(shard)
        if asked.count(shards[-1]) == 2:  # the merge is about to read the last shard
            if rival == "merges":
                other._merge_shards(shards, DistInfo())
            else:
                EmbeddingCache._shard_path(cache, kind, shard).unlink()
        return EmbeddingCache._shard_path(cache, kind, shard)

    monkeypatch.setattr(cache, "_shard_path", path_then_rival)
    if rival == "deletes":
        with pytest.raises(DataError, match="vanished"):
            cache._merge(shards, DistInfo())
        assert not cache.complete
        return
    cache._merge(shards, DistInfo())
    assert cache.complete
    _assert_reference(cache.embeddings, clips)
