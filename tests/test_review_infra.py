"""Edge cases found in the second review of the infrastructure (extraction, atomic writes, paths,
devices, manifests, the embedding cache, the keyword stand-in; those of resumed downloads are in
test_download.py); the test of each bug failed before its fix."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from zskit.data.download import extract
from zskit.errors import DataError

# ---------------------------------------------------------------- damaged archives


def _damaged_tar_gz(path):
    """A tar.gz whose stored (incompressible) data were overwritten: deflate still decodes it,
    only the gzip CRC in the trailer, after tar's end-of-archive blocks, shows the damage."""
    buf = io.BytesIO()
    data = hashlib.shake_256(b"seed").digest(50_000)
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("a.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    raw = bytearray(buf.getvalue())
    raw[20_000:20_050] = bytes(50)
    path.write_bytes(raw)
    return path


def _damaged_zip(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.txt", hashlib.shake_256(b"x").digest(100) + b"x" * 100_000)
    raw = bytearray(buf.getvalue())
    raw[60:70] = bytes(10)  # inside the deflate stream: zlib cannot decode it
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize("make", [_damaged_tar_gz, _damaged_zip], ids=["tar.gz-crc", "zip-zlib"])
def test_damaged_archive_is_a_data_error_and_leaves_nothing(tmp_path, make):
    archive = make(tmp_path / ("bad.tar.gz" if make is _damaged_tar_gz else "bad.zip"))
    work = tmp_path / "work"
    with pytest.raises(DataError, match="damaged"):
        extract(archive, work / "out")
    assert not (work / "out").exists(), "a damaged archive must not look extracted"
    assert [n for n in os.listdir(work) if not n.endswith(".lock")] == []


# ---------------------------------------------------------------- devices and paths


def test_auto_falls_back_to_the_cpu_when_cuda_is_present_but_unusable(monkeypatch):
    from zskit.devices import resolve_device
    from zskit.errors import ConfigError

    def broken(device=None):
        raise RuntimeError("CUDA error: CUDA-capable device(s) is/are busy or unavailable")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_80"])
    monkeypatch.setattr(torch.cuda, "get_device_capability", broken)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="skips the GPU.*busy or unavailable"):
        assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="cannot use it"):
        resolve_device("cuda")


def test_relative_zskit_data_and_cache_are_pinned_to_absolute_paths(monkeypatch, tmp_path):
    from zskit.data.download import cache_dir
    from zskit.paths import data_root

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZSKIT_DATA", "rel-data")
    monkeypatch.setenv("ZSKIT_CACHE", "rel-cache")
    assert data_root() == tmp_path / "rel-data"
    assert cache_dir() == tmp_path / "rel-cache"
    monkeypatch.setenv("ZSKIT_DATA", "~/zskit-data")
    assert data_root() == Path.home() / "zskit-data", "~ must be expanded"


def test_a_relative_xdg_cache_home_is_ignored(monkeypatch):
    from zskit import paths

    monkeypatch.delenv("ZSKIT_DATA", raising=False)
    monkeypatch.setattr(paths, "project_root", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert paths.data_root() == Path.home() / ".cache" / "zskit"
    monkeypatch.setenv("XDG_CACHE_HOME", "/abs/cache")
    assert paths.data_root() == Path("/abs/cache/zskit")


def test_a_tilde_cache_dir_is_expanded_not_created_literally(monkeypatch, tmp_path):
    from zskit.cache import EmbeddingCache

    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = EmbeddingCache(MeanEncoder(), [clip], cache_dir="~/emb", device="cpu", progress=False)
    assert cache.directory.is_relative_to(tmp_path / "home" / "emb"), cache.directory


# ---------------------------------------------------------------- manifests


def test_numeric_looking_ids_splits_and_captions_keep_their_spelling(tmp_path):
    from zskit.data.manifest import load_corpus, write_json

    (tmp_path / "manifest.csv").write_text(
        "clip_id,path,split,labels,caption_1,duration\n"
        "1,a.wav,1,07,1.50,2.5\n"
        "2,b.wav,2,12,3,1.0\n")
    write_json(tmp_path / "metadata.json", {"classes": [{"id": "07"}, {"id": "12"}]})
    corpus = load_corpus(tmp_path)
    assert corpus.labels.tolist() == [[1, 0], [0, 1]], "class id '07' was read as the number 7"
    assert corpus.captions == [["1.50"], ["3"]]
    assert len(corpus.split("1")) == 1, f"splits read as numbers: {corpus.splits}"
    assert corpus.manifest["duration"].tolist() == [2.5, 1.0], "other columns stay numbers"


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_syncs_the_file_before_and_the_folder_after_the_rename(tmp_path, monkeypatch):
    import stat

    from zskit import fileio

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    monkeypatch.setattr(fileio.os, "replace", replace)
    old = os.umask(0o022)
    try:
        fileio.write_json(tmp_path / "sub" / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert events == ["fsync file", "replace", "fsync dir"], events
    mode = stat.S_IMODE((tmp_path / "sub" / "x.json").stat().st_mode)
    assert mode == 0o644, f"an atomically written file must follow the umask, not be {oct(mode)}"


# ---------------------------------------------------------------- optional dependencies


def test_require_tells_a_broken_install_from_a_missing_one(tmp_path, monkeypatch):
    import sys

    from zskit.errors import DependencyError, require

    (tmp_path / "zskit_fake_broken.py").write_text("import zskit_fake_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "zskit_fake_broken", raising=False)
    with pytest.raises(DependencyError) as err:
        require("zskit_fake_broken", "a feature")
    message = str(err.value)
    assert "installed but fails to import" in message, message
    assert "zskit_fake_absent_dependency" in message, f"the real cause is hidden: {message}"
    with pytest.raises(DependencyError, match="which is not installed"):
        require("zskit_fake_not_there.sub", "a feature")


# ---------------------------------------------------------------- embedding cache


class MeanEncoder(nn.Module):
    """A zskit-style encoder: embedding = (mean, length) of each clip."""

    cfg = type("Cfg", (), {"sample_rate": 8000})()

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward_features(self, x, lengths):
        return torch.stack([x.sum(1) / lengths * self.scale, lengths.float()], 1)


def _clips(folder: Path, n: int = 3) -> list[Path]:
    import numpy as np
    import soundfile as sf

    folder.mkdir()
    paths = [folder / f"c{i}.wav" for i in range(n)]
    for i, path in enumerate(paths):
        sf.write(path, np.full(800 + 100 * i, 0.1 * i, dtype=np.float32), 8000)
    return paths


def test_a_damaged_cache_file_is_a_data_error_that_says_what_to_delete(tmp_path):
    from zskit.cache import EmbeddingCache

    paths = _clips(tmp_path / "audio")
    kwargs = {"cache_dir": tmp_path / "cache", "device": "cpu", "progress": False,
              "shard_size": 2}
    cache = EmbeddingCache(MeanEncoder(), paths, **kwargs)
    cache.directory.mkdir(parents=True)
    cache._shard_path("emb", (0, 2)).write_bytes(b"\x93NUMPY cut")  # a foreign, cut-off file
    with pytest.raises(DataError, match=r"emb_000000000-000000002\.npy is damaged.*delete it"):
        cache.compute()

    cache._shard_path("emb", (0, 2)).unlink()
    embeddings = np.asarray(cache.compute().embeddings)
    assert embeddings[:, 1].tolist() == [800, 900, 1000]
    merged = cache.directory / "embeddings.npy"
    merged.write_bytes(merged.read_bytes()[:-5])  # a copy of the cache cut short
    with pytest.raises(DataError, match=f"damaged.*delete {cache.directory}"):
        _ = cache.embeddings


# ---------------------------------------------------------------- Speech Commands stand-in


def test_keyword_synthesis_never_mixes_settings_or_overwrites_other_files(tmp_path, monkeypatch):
    from zskit.data import speech
    from zskit.errors import ConfigError

    monkeypatch.setattr(speech, "speak", lambda word, *a, **k: torch.full((4000,), 0.5))
    real = tmp_path / "real"  # the official data set, say
    (real / "yes").mkdir(parents=True)
    (real / "validation_list.txt").write_text("yes/aa_nohash_0.wav\n")
    small = speech.KeywordSynthConfig(n_speakers=2, takes=1, words=("yes",), noise_probability=0)
    with pytest.raises(ConfigError, match="did not write"):
        speech.synthesize_keywords(real, small, progress=False)
    assert (real / "validation_list.txt").read_text() == "yes/aa_nohash_0.wav\n"

    calls = {"n": 0}
    save = speech.save_audio

    def crash_after_two_clips(path, *args):
        calls["n"] += 1
        if calls["n"] > 3 + 2:  # 3 noise files, then 2 clips
            raise KeyboardInterrupt
        save(path, *args)

    monkeypatch.setattr(speech, "save_audio", crash_after_two_clips)
    big = dataclasses.replace(small, n_speakers=6)
    with pytest.raises(KeyboardInterrupt):
        speech.synthesize_keywords(tmp_path / "kw", big, progress=False)
    monkeypatch.setattr(speech, "save_audio", save)
    with pytest.raises(ConfigError, match="other settings"):
        speech.synthesize_keywords(tmp_path / "kw", small, progress=False)
    root = speech.synthesize_keywords(tmp_path / "kw", big, progress=False)  # completes the run
    assert len(list((root / "yes").glob("*.wav"))) == 6


def test_missing_label_cells_of_a_nullable_string_column_are_empty(tmp_path):
    import pandas as pd

    from zskit.data.manifest import multi_hot, read_manifest, split_list, write_manifest

    df = pd.DataFrame({"clip_id": ["a", "b"], "path": ["a.wav", "b.wav"],
                       "split": ["train", "test"], "labels": ["x;y", None]}).astype("string")
    write_manifest(df, tmp_path / "manifest.parquet")  # pandas restores the dtype, and pd.NA
    cells = read_manifest(tmp_path / "manifest.parquet")["labels"]
    assert multi_hot(cells, ["x", "y"]).tolist() == [[1, 1], [0, 0]]
    assert split_list(pd.NA) == split_list(None) == split_list(float("nan")) == []


@pytest.mark.parametrize("word", ["", " ", "..", "a/b", "_background_noise_", "yes"])
def test_keywords_that_cannot_name_a_folder_are_refused(word):
    from zskit.data.speech import KeywordSynthConfig
    from zskit.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot be a keyword"):
        KeywordSynthConfig(words=("yes", word))


def test_trailing_bytes_after_a_good_gzip_stream_are_not_damage(tmp_path):
    """`gzip -t` accepts them (with a warning); only CRC, length or decoding errors are damage."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("a.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    archive = tmp_path / "trailing.tar.gz"
    archive.write_bytes(buf.getvalue() + b"GARBAGE\n")
    assert (extract(archive, tmp_path / "out") / "a.txt").read_bytes() == b"abc"


def test_a_corpus_loaded_by_a_relative_or_tilde_path_has_absolute_paths(tmp_path, monkeypatch):
    from zskit.data.manifest import load_corpus, write_json

    home = tmp_path / "home"
    (home / "c").mkdir(parents=True)
    (home / "c" / "manifest.csv").write_text("clip_id,path,split,labels\na,a.wav,train,x\n")
    write_json(home / "c" / "metadata.json", {"classes": [{"id": "x"}]})
    monkeypatch.setenv("HOME", str(home))
    assert load_corpus("~/c").paths == [home / "c" / "a.wav"]
    monkeypatch.chdir(home)
    corpus = load_corpus("c")
    monkeypatch.chdir(tmp_path)  # a DataLoader worker or notebook elsewhere
    assert corpus.paths[0].is_absolute() and corpus.paths == [home / "c" / "a.wav"]


def _mapped_in(traceback) -> list[str]:
    """Names of the memory maps that the frames of ``traceback`` still hold."""
    held = []
    while traceback is not None:
        frame = traceback.tb_frame
        held += [f"{frame.f_code.co_name}.{name}" for name, value in frame.f_locals.items()
                 if isinstance(value, np.memmap)]
        traceback = traceback.tb_next
    return held


def test_a_cache_error_keeps_no_file_mapped_so_it_can_be_deleted_on_windows(tmp_path):
    """The errors say "delete the file"; Windows refuses while a memmap of it stays open, and a
    notebook keeps the last traceback (and its frames' locals) alive."""
    from zskit.cache import EmbeddingCache

    paths = _clips(tmp_path / "audio")
    kwargs = {"cache_dir": tmp_path / "cache", "device": "cpu", "progress": False,
              "shard_size": 2}
    cache = EmbeddingCache(MeanEncoder(), paths, **kwargs)
    cache.directory.mkdir(parents=True)
    np.save(cache._shard_path("emb", (0, 2)), np.zeros((2, 7), np.float32))  # another width
    np.save(cache._shard_path("emb", (2, 3)), np.zeros((1, 2), np.float32))
    with pytest.raises(DataError, match="holds") as info:
        cache.compute()
    assert _mapped_in(info.value.__traceback__) == []

    for shard in ((0, 2), (2, 3)):
        cache._shard_path("emb", shard).unlink()
    cache.compute()
    np.save(cache.directory / "embeddings.npy", np.zeros((2, 2), np.float32))  # a row short
    with pytest.raises(DataError, match="holds") as info:
        _ = cache.embeddings
    assert _mapped_in(info.value.__traceback__) == []


def test_a_json_file_of_binary_garbage_is_a_data_error(tmp_path):
    from zskit.data.manifest import read_json

    (tmp_path / "metadata.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not valid JSON"):
        read_json(tmp_path / "metadata.json")
