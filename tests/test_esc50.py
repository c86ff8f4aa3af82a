"""zskit.data.esc50 on fixture files in the official layout (meta/esc50.csv + audio/*.wav)."""

from __future__ import annotations

import functools
import io
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from zskit.data.download import RemoteFile
from zskit.data.esc50 import (
    CATEGORIES,
    CATEGORY_NAMES,
    CLASS_NAMES,
    ESC50_ARCHIVE,
    ESC50_CLASSES,
    class_category,
    download_esc50,
    prepare_esc50,
    read_esc50_meta,
)
from zskit.data.manifest import load_corpus
from zskit.errors import ConfigError, DataError

# filename, fold, target, category, esc10, src_file, take: rows as the official file writes them
ROWS = [
    ("1-100032-A-0.wav", 1, 0, "dog", "True", "100032", "A"),
    ("1-100038-A-14.wav", 1, 14, "chirping_birds", "False", "100038", "A"),
    ("2-102414-B-17.wav", 2, 17, "pouring_water", "False", "102414", "B"),
    ("3-104632-A-20.wav", 3, 20, "crying_baby", "True", "104632", "A"),
    ("4-110011-A-30.wav", 4, 30, "door_wood_knock", "False", "110011", "A"),
    ("5-103415-A-43.wav", 5, 43, "car_horn", "False", "103415", "A"),
    ("5-117118-A-49.wav", 5, 49, "hand_saw", "False", "117118", "A"),
]
HEADER = "filename,fold,target,category,esc10,src_file,take\n"


def _write_dataset(root: Path, rows=ROWS, audio: bool = True) -> Path:
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    (root / "meta" / "esc50.csv").write_text(HEADER + "".join(
        ",".join(map(str, r)) + "\n" for r in rows))
    if audio:
        for r in rows:
            sf.write(root / "audio" / r[0], np.zeros(441, dtype=np.float32), 44100)
    return root


def test_fact_table() -> None:
    assert len(ESC50_CLASSES) == len(set(ESC50_CLASSES)) == 50
    assert list(CATEGORIES) == list(CATEGORY_NAMES) and all(len(m) == 10 for m in
                                                            CATEGORIES.values())
    anchors = {"dog": 0, "crow": 9, "rain": 10, "chirping_birds": 14, "crying_baby": 20,
               "door_wood_knock": 30, "glass_breaking": 39, "car_horn": 43, "hand_saw": 49}
    for cls, target in anchors.items():
        assert ESC50_CLASSES.index(cls) == target, f"{cls} is target {target} in esc50.csv"
    assert class_category("siren") == "exterior" and class_category("hen") == "animals"
    assert CATEGORY_NAMES["natural"] == "Natural soundscapes & water sounds"
    assert set(CLASS_NAMES) == set(ESC50_CLASSES) and CLASS_NAMES["door_wood_knock"] == "door knock"
    with pytest.raises(ConfigError, match="not an ESC-50 class"):
        class_category("giraffe")
    assert ESC50_ARCHIVE.sha256 is None and ESC50_ARCHIVE.md5 is None, "branch zips change"


def test_prepare_esc50_makes_a_corpus(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "ESC-50-master")
    manifest = prepare_esc50(tmp_path)  # the parent folder is accepted too
    assert manifest["clip_id"].tolist() == [r[0][:-4] for r in ROWS]
    corpus = load_corpus(root)
    assert corpus.labels.shape == (len(ROWS), 50)
    want = np.zeros((len(ROWS), 50), dtype=np.int8)
    want[np.arange(len(ROWS)), [r[2] for r in ROWS]] = 1
    np.testing.assert_array_equal(corpus.labels, want, err_msg="one-hot at the csv's target")
    assert corpus.mask.all(), "ESC-50 labels are complete"
    assert corpus.splits == ["fold1", "fold2", "fold3", "fold4", "fold5"]
    assert len(corpus.split("fold5")) == 2
    assert corpus.class_names[20] == "crying baby" and corpus.class_names[30] == "door knock"
    assert corpus.metadata["hierarchy"]["human"][0] == "crying_baby"
    assert [c["family"] for c in corpus.metadata["classes"]][:11] == ["animals"] * 10 + ["natural"]
    assert corpus.manifest["category"].tolist() == [
        "animals", "natural", "natural", "human", "interior", "exterior", "exterior"]
    assert corpus.manifest["esc10"].tolist() == [True, False, False, True, False, False, False]
    assert all(p.is_file() for p in corpus.paths)
    prepare_esc50(root, split="test")
    assert load_corpus(root).splits == ["test"], "one split for zero-shot evaluation"


def test_prepare_esc50_rejects_bad_meta_and_missing_audio(tmp_path: Path) -> None:
    wrong = [("1-1-A-1.wav", 1, 5, "dog", "True", "1", "A")]
    with pytest.raises(DataError, match="target 5 for class 'dog', expected 0"):
        prepare_esc50(_write_dataset(tmp_path / "a", wrong))
    unknown = [("1-1-A-1.wav", 1, 0, "giraffe", "True", "1", "A")]
    with pytest.raises(DataError, match="giraffe"):
        prepare_esc50(_write_dataset(tmp_path / "b", unknown))
    with pytest.raises(DataError, match="7 of 7 ESC-50 clips are missing"):
        prepare_esc50(_write_dataset(tmp_path / "c", audio=False))
    root = _write_dataset(tmp_path / "d")
    pd.read_csv(root / "meta" / "esc50.csv").drop(columns="take").to_csv(
        root / "meta" / "esc50.csv", index=False)
    with pytest.raises(DataError, match=r"lacks the columns \['take'\]"):
        prepare_esc50(root)
    with pytest.raises(DataError, match="holds no ESC-50 folder"):
        prepare_esc50(tmp_path / "e")



def test_read_esc50_meta_rejects_repeated_clips_and_unparsable_files(tmp_path: Path) -> None:
    """A clip listed twice would land in two folds (train/test leakage in cross-validation)."""
    twice = [ROWS[0], (ROWS[0][0], 2, *ROWS[0][2:])]
    with pytest.raises(DataError, match=r"more than once .*1-100032-A-0\.wav"):
        prepare_esc50(_write_dataset(tmp_path / "a", twice))
    meta = _write_dataset(tmp_path / "b", audio=False) / "meta" / "esc50.csv"
    meta.write_bytes(b"")
    with pytest.raises(DataError, match="not ESC-50's meta file"):
        read_esc50_meta(meta)
    meta.write_text(HEADER + '"1-1-A-0.wav,1,0,dog\n')
    with pytest.raises(DataError, match="not ESC-50's meta file"):
        read_esc50_meta(meta)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_download_esc50_from_a_local_server(tmp_path: Path) -> None:
    src = _write_dataset(tmp_path / "src" / "ESC-50-master")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(src.rglob("*")):
            zf.write(path, path.relative_to(src.parent).as_posix())
    served = tmp_path / "www"
    served.mkdir()
    (served / "master.zip").write_bytes(buf.getvalue())
    handler = functools.partial(_Quiet, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    remote = RemoteFile(f"http://127.0.0.1:{httpd.server_address[1]}/master.zip",
                        filename="ESC-50-master.zip")
    try:
        folder = download_esc50(tmp_path / "esc50", remote=remote, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert folder.name == "ESC-50-master" and (folder / "meta" / "esc50.csv").is_file()
    assert download_esc50(tmp_path / "esc50", remote=remote, progress=False) == folder, (
        "a completed extraction is reused with the server gone")
    assert len(prepare_esc50(folder)) == len(ROWS)
