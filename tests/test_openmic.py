"""zskit.data.openmic on a tiny archive in the official layout (npz, class map, splits, ogg)."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from zskit.data.download import ChecksumError, RemoteFile
from zskit.data.manifest import load_corpus
from zskit.data.openmic import (
    OPENMIC_ARCHIVE,
    audio_path,
    download_openmic,
    load_openmic_arrays,
    openmic_dataset_folder,
    openmic_vggish_embeddings,
    prepare_openmic,
    read_class_map,
    read_partition,
)
from zskit.errors import ConfigError, DataError

CLASSES = ["accordion", "banjo", "bass", "cello", "clarinet", "cymbals", "drums", "flute",
           "guitar", "mallet_percussion", "mandolin", "organ", "piano", "saxophone",
           "synthesizer", "trombone", "trumpet", "ukulele", "violin", "voice"]
KEYS = ["000046_3840", "000135_483840", "000139_119040", "014521_96000", "120196_7680",
        "155331_153600", "155332_0", "155333_3840"]
TRAIN, TEST = KEYS[:6], KEYS[6:]


def _write_dataset(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n, c = len(KEYS), len(CLASSES)
    mask = rng.random((n, c)) < 0.4
    mask[:, 18] = True  # every clip observed for violin
    y_true = np.where(mask, rng.random((n, c)), 0.5)
    y_true[0, 18], y_true[1, 18] = 0.5, 0.4999  # the boundary: >= 0.5 is positive
    root.mkdir(parents=True)
    np.savez(root / "openmic-2018.npz", X=rng.integers(0, 256, (n, 10, 128), dtype=np.uint8),
             Y_true=y_true, Y_mask=mask, sample_key=np.array(KEYS))
    (root / "class-map.json").write_text(json.dumps({k: i for i, k in enumerate(CLASSES)}))
    (root / "partitions").mkdir()
    (root / "partitions" / "split01_train.csv").write_text("".join(f"{k}\n" for k in TRAIN))
    (root / "partitions" / "split01_test.csv").write_text("".join(f"{k}\n" for k in TEST))
    for key in KEYS[:-1]:  # the last clip has no audio
        path = root / audio_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros(2205, dtype=np.float32), 22050, format="OGG", subtype="VORBIS")
    return root


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return _write_dataset(tmp_path / "openmic-2018")


def test_readers(dataset: Path) -> None:
    assert read_class_map(dataset) == CLASSES
    assert read_partition(dataset / "partitions" / "split01_test.csv") == TEST
    (dataset / "with_header.csv").write_text("sample_key\n000046_3840\n")
    assert read_partition(dataset / "with_header.csv") == ["000046_3840"]
    arrays = load_openmic_arrays(dataset)
    assert arrays.X.shape == (8, 10, 128) and arrays.X.dtype == np.uint8
    assert arrays.Y_mask.dtype == bool and arrays.sample_key.tolist() == KEYS
    assert audio_path("000046_3840") == "audio/000/000046_3840.ogg"
    assert OPENMIC_ARCHIVE.md5 == "e4ccf187e2bb5ab2e115416e8aafe7f4"


def test_prepare_openmic_labels_mask_and_splits(dataset: Path) -> None:
    manifest = prepare_openmic(dataset.parent)  # the parent folder is accepted too
    assert manifest["clip_id"].tolist() == KEYS, "rows follow the npz"
    corpus = load_corpus(dataset)
    with np.load(dataset / "openmic-2018.npz") as npz:
        y_true, y_mask = npz["Y_true"], npz["Y_mask"]
    np.testing.assert_array_equal(corpus.mask, y_mask, err_msg="mask is Y_mask")
    np.testing.assert_array_equal(corpus.labels, (y_mask & (y_true >= 0.5)).astype(np.int8),
                                  err_msg="positive = observed and Y_true >= 0.5")
    assert corpus.labels[0, 18] == 1 and corpus.labels[1, 18] == 0, "0.5 in, 0.4999 out"
    assert corpus.classes == CLASSES and corpus.class_names[9] == "mallet percussion"
    assert corpus.manifest["split"].tolist() == ["train"] * 6 + ["test"] * 2
    assert corpus.manifest["has_audio"].tolist() == [True] * 7 + [False]
    assert (dataset / "missing_audio.txt").read_text() == f"{audio_path(KEYS[-1])}\n"
    assert corpus.metadata["n_missing_audio"] == 1
    first = dict(item.split(":") for item in corpus.manifest["relevance"][0].split(";"))
    assert set(first) == {c for c, m in zip(CLASSES, y_mask[0]) if m}
    assert float(first["violin"]) == pytest.approx(0.5)


def test_the_parent_folder_resolves_for_load_corpus(dataset: Path) -> None:
    """The folder download_and_extract leaves (``extracted/``, holding ``openmic-2018/``)."""
    parent = dataset.parent
    assert openmic_dataset_folder(parent) == dataset == openmic_dataset_folder(dataset)
    prepare_openmic(parent)
    assert len(load_corpus(openmic_dataset_folder(str(parent)))) == len(KEYS)
    with pytest.raises(DataError, match="download_openmic"):
        openmic_dataset_folder(parent / "partitions")


def test_validation_split_comes_from_train(dataset: Path) -> None:
    manifest = prepare_openmic(dataset, validation_fraction=0.34, seed=1)
    split = manifest["split"].tolist()
    n_val = split.count("validation")
    assert 1 <= n_val <= 3 and split.count("train") == 6 - n_val, (
        f"about a third of the 6 training clips move (stratification is approximate): {split}")
    assert split[6:] == ["test", "test"], "test clips never move"
    again = prepare_openmic(dataset, validation_fraction=0.34, seed=1)
    assert again["split"].tolist() == split, "same seed, same split"
    with pytest.raises(ConfigError, match="validation_fraction"):
        prepare_openmic(dataset, validation_fraction=1.0)


def test_vggish_embeddings_align_with_manifest(dataset: Path) -> None:
    prepare_openmic(dataset)
    with np.load(dataset / "openmic-2018.npz") as npz:
        x = npz["X"].astype(np.float64)
    emb = openmic_vggish_embeddings(dataset)
    assert emb.shape == (8, 128) and emb.dtype == np.float32
    want = (x * 4.0 / 255.0 - 2.0).mean(axis=1)
    np.testing.assert_allclose(emb, want, atol=1e-5, err_msg="dequantised mean over frames")
    picked = openmic_vggish_embeddings(dataset, [KEYS[3], KEYS[0]], dequantize=False)
    np.testing.assert_allclose(picked, x[[3, 0]].mean(axis=1), atol=1e-4)
    corpus = load_corpus(dataset).split("test")
    test_emb = openmic_vggish_embeddings(dataset, corpus.manifest["clip_id"].tolist())
    np.testing.assert_allclose(test_emb, emb[6:], atol=1e-6)
    assert emb.min() >= -2 and emb.max() <= 2
    with pytest.raises(DataError, match="not OpenMIC sample keys"):
        openmic_vggish_embeddings(dataset, ["nope"])


def test_prepare_openmic_rejects_mismatched_files(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "a")
    (root / "partitions" / "split01_test.csv").write_text("999999_0\n")
    with pytest.raises(DataError, match="not in openmic-2018.npz"):
        prepare_openmic(root)
    root = _write_dataset(tmp_path / "b")
    (root / "class-map.json").write_text(json.dumps({"piano": 0, "violin": 1}))
    with pytest.raises(DataError, match="2 classes"):
        prepare_openmic(root)
    root = _write_dataset(tmp_path / "c")
    (root / "class-map.json").write_text(json.dumps({"piano": 0, "violin": 0}))
    with pytest.raises(DataError, match="distinct column"):
        read_class_map(root)
    with pytest.raises(DataError, match="holds no OpenMIC-2018 folder"):
        prepare_openmic(tmp_path / "empty")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_download_openmic_checks_md5(tmp_path: Path) -> None:
    src = _write_dataset(tmp_path / "src" / "openmic-2018")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(src, arcname="openmic-2018")
    data = buf.getvalue()
    served = tmp_path / "www"
    served.mkdir()
    (served / "openmic-2018-v1.0.0.tgz").write_bytes(data)
    handler = functools.partial(_Quiet, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/openmic-2018-v1.0.0.tgz"
    try:
        with pytest.raises(ChecksumError):
            download_openmic(tmp_path / "bad", remote=RemoteFile(url, md5="0" * 32),
                             progress=False)
        good = RemoteFile(url, md5=hashlib.md5(data).hexdigest())
        folder = download_openmic(tmp_path / "om", remote=good, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert folder.name == "openmic-2018" and (folder / "openmic-2018.npz").is_file()
    assert len(prepare_openmic(folder)) == len(KEYS)
