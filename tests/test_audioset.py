"""zskit.data.audioset: segment lists, metadata lookup and corpus folders over user audio."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import zskit.data.audioset as aset
from zskit.data.audioset import (
    PAPER_SPLITS,
    audioset_file,
    parse_audio_name,
    prepare_audioset,
    read_class_labels,
    read_segments,
)
from zskit.data.manifest import load_corpus
from zskit.errors import ConfigError, DataError

HEADER = (
    "# Segments csv created Sun Mar  5 10:54:31 2017\n"
    "# num_ytids={n}, num_segs={n}, num_unique_labels=527, num_positive_labels=9\n"
    "# YTID, start_seconds, end_seconds, positive_labels\n"
)
# (ytid, start, end, labels): ids with leading dashes and underscores, as in the real lists.
BALANCED = [
    ("--PJHxphWEs", 30.0, 40.0, ["/m/09x0r", "/t/dd00088"]),
    ("-0DdlOuIFUI", 50.0, 60.0, ["/m/0bt9lr"]),
    ("_a1b2c3d4e5", 0.0, 10.0, ["/m/04rlf"]),
    ("Yabcdefghij", 12.5, 22.5, ["/m/07y_7"]),
    ("0123456789x", 100.0, 110.0, ["/m/01yrx"]),
]
EVAL = [
    ("evalclip001", 20.0, 30.0, ["/m/068hy", "/m/0bt9lr"]),
    ("evalclip002", 0.0, 10.0, ["/m/03kmc9"]),
]


def _segment_file(path: Path, rows, n: int | None = None) -> Path:
    lines = [HEADER.format(n=len(rows) if n is None else n)]
    for ytid, start, end, labels in rows:
        lines.append(f'{ytid}, {start:.3f}, {end:.3f}, "{",".join(labels)}"\n')
    path.write_text("".join(lines))
    return path


def _wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(160, dtype=np.float32), 16000)


@pytest.fixture
def segment_files(tmp_path: Path) -> dict[str, Path]:
    return {
        "balanced_train": _segment_file(tmp_path / "balanced.csv", BALANCED),
        "eval": _segment_file(tmp_path / "eval.csv", EVAL),
    }


def test_read_segments_official_format(segment_files) -> None:
    df = read_segments(segment_files["balanced_train"])
    assert df["ytid"].tolist() == [r[0] for r in BALANCED], "ids with - and _ survive parsing"
    assert df["start_seconds"].tolist() == [r[1] for r in BALANCED]
    assert df["end_seconds"].tolist() == [r[2] for r in BALANCED]
    assert df["labels"].tolist() == [";".join(r[3]) for r in BALANCED], "quoted label lists"


def test_read_segments_rejects_truncated_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="announces 9 segments but holds 5"):
        read_segments(_segment_file(tmp_path / "cut.csv", BALANCED, n=9))
    bad = tmp_path / "bad.csv"
    bad.write_text("# YTID, start_seconds, end_seconds, positive_labels\nabc, x, 10, \"/m/1\"\n")
    with pytest.raises(DataError, match="not an AudioSet segment list"):
        read_segments(bad)
    with pytest.raises(DataError, match="does not exist"):
        read_segments(tmp_path / "missing.csv")



def test_read_segments_accepts_a_copy_resaved_on_windows(tmp_path: Path) -> None:
    text = ('# Segments csv created Sun Mar  5 10:54:25 2017\n# num_ytids=2, num_segs=2\n'
            '# YTID, start_seconds, end_seconds, positive_labels\n'
            '--4gqARaEJE, 0.000, 10.000, "/m/068hy,/m/07q6cd_"\n-0RWZT-miFs, 420.000, 430.000, '
            '"/m/03v3yw"\n')
    path = tmp_path / "eval_segments.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    df = read_segments(path)
    assert df["ytid"].tolist() == ["--4gqARaEJE", "-0RWZT-miFs"]
    assert df["labels"].tolist() == ["/m/068hy;/m/07q6cd_", "/m/03v3yw"]
    assert df["start_seconds"].tolist() == [0.0, 420.0]


def test_unreadable_metadata_files_raise_data_error(tmp_path: Path) -> None:
    """An empty download or a file in another encoding gets advice, not a pandas traceback."""
    empty = tmp_path / "class_labels_indices.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="delete it and fetch it again"):
        read_class_labels(empty)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"index,mid,display_name\n0,/m/0,Caf\xe9\n")
    with pytest.raises(DataError, match="delete it and fetch it again"):
        read_class_labels(latin1)
    segments = tmp_path / "segments.csv"
    segments.write_bytes(b"# Segments csv cr\xe9ated\n# num_segs=1\nabcdefghijk, 0.0, 10.0, \"/m/0\"\n")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        read_segments(segments)


def test_committed_metadata() -> None:
    classes = read_class_labels()
    assert len(classes) == 527 and classes.loc[0, "display_name"] == "Speech"
    path = audioset_file("eval_segments.csv")
    assert path.parent.name == "audioset" and path.parent.parent.name == "data"
    ev = read_segments(path)
    assert len(ev) == 20371, "eval_segments.csv has 20,371 segments"
    used = {m for cell in ev["labels"] for m in cell.split(";")}
    assert used == set(classes["mid"]), "the eval set uses all 527 classes and nothing else"
    with pytest.raises(ConfigError, match="Unknown AudioSet metadata file"):
        audioset_file("nope.csv")


def test_parse_audio_name() -> None:
    assert parse_audio_name("--PJHxphWEs") == [("--PJHxphWEs", None)]
    assert parse_audio_name("Y--PJHxphWEs") == [("--PJHxphWEs", None)]
    assert parse_audio_name("--PJHxphWEs_30.000_40.000") == [("--PJHxphWEs", 30.0)]
    assert set(parse_audio_name("Y--PJHxphWEs_30000_40000")) == {
        ("--PJHxphWEs", 30000.0), ("--PJHxphWEs", 30.0)}, "whole numbers: seconds or ms"
    assert parse_audio_name("Yabcdefghij") == [("Yabcdefghij", None)], "11 chars: no Y prefix"
    assert parse_audio_name("YYabcdefghij") == [("Yabcdefghij", None)]
    assert parse_audio_name("short") == [] and parse_audio_name("--PJHxphWEs-x") == []


def test_prepare_audioset_finds_named_files_and_reports_missing(tmp_path, segment_files) -> None:
    audio = tmp_path / "clips"
    _wav(audio / "Y--PJHxphWEs.wav")  # PANNs style
    _wav(audio / "sub" / "-0DdlOuIFUI_50000_60000.flac")  # milliseconds, in a sub-folder
    _wav(audio / "_a1b2c3d4e5_0.000_10.000.wav")  # seconds
    _wav(audio / "Yabcdefghij_99.000_109.000.wav")  # wrong start: must not match
    _wav(audio / "evalclip001.wav")
    _wav(audio / "notes.txt.wav")  # not an AudioSet name
    out = tmp_path / "corpus"
    manifest = prepare_audioset(audio, out, splits={"balanced_train": "train", "eval": "test"},
                                segment_files=segment_files)
    assert manifest["clip_id"].tolist() == ["--PJHxphWEs", "-0DdlOuIFUI", "_a1b2c3d4e5",
                                            "evalclip001"]
    missing = pd.read_csv(out / "missing_clips.csv", dtype={"ytid": str})
    assert sorted(missing["ytid"]) == ["0123456789x", "Yabcdefghij", "evalclip002"]
    corpus = load_corpus(out)
    assert corpus.labels.shape == (4, 527)
    assert all(p.is_file() for p in corpus.paths), "paths relative to the corpus folder resolve"
    classes = read_class_labels()["mid"].tolist()
    want = np.zeros((4, 527), dtype=np.int8)
    for row, labels in enumerate([BALANCED[0][3], BALANCED[1][3], BALANCED[2][3], EVAL[0][3]]):
        want[row, [classes.index(m) for m in labels]] = 1
    np.testing.assert_array_equal(corpus.labels, want, err_msg="multi-hot labels by mid")
    assert corpus.splits == ["train", "test"]
    assert corpus.class_names[0] == "Speech"
    stats = corpus.metadata["subsets"]
    assert stats["balanced_train"] == {"split": "train", "listed": 5, "found": 3, "missing": 2,
                                       "duplicates_dropped": 0}
    assert corpus.metadata["n_missing"] == 3


def test_prepare_audioset_errors(tmp_path, segment_files) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="No audio for any segment"):
        prepare_audioset(empty, tmp_path / "out", segment_files=segment_files)
    with pytest.raises(ConfigError, match="must map some of"):
        prepare_audioset(empty, splits={"unbalanced": "train"})
    misspelt = {"balanced": segment_files["balanced_train"]}  # would read the official list
    with pytest.raises(ConfigError, match=r"segment_files has \['balanced'\]"):
        prepare_audioset(empty, tmp_path / "out", segment_files=misspelt)
    with pytest.raises(DataError, match="does not exist"):
        prepare_audioset(tmp_path / "absent", tmp_path / "out", segment_files=segment_files)
    assert set(PAPER_SPLITS) == {"unbalanced_train", "balanced_train", "eval"}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_audioset_file_downloads_outside_a_checkout(tmp_path, monkeypatch) -> None:
    served = tmp_path / "www"
    served.mkdir()
    src = audioset_file("class_labels_indices.csv")
    (served / "class_labels_indices.csv").write_bytes(src.read_bytes())
    handler = functools.partial(_Quiet, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/class_labels_indices.csv"
        monkeypatch.setattr(aset, "project_root", lambda: None)
        monkeypatch.setenv("ZSKIT_DATA", str(tmp_path / "data"))
        monkeypatch.delenv("ZSKIT_CACHE", raising=False)
        monkeypatch.setitem(aset.AUDIOSET_FILES, "class_labels_indices.csv",
                            aset.RemoteFile(url))
        with pytest.raises(DataError, match="neither in the checkout"):
            audioset_file("class_labels_indices.csv", download_missing=False)
        got = audioset_file("class_labels_indices.csv")
        assert got == tmp_path / "data" / "downloads" / "audioset" / "class_labels_indices.csv"
        assert got.read_bytes() == src.read_bytes()
        assert len(read_class_labels(got)) == 527
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert audioset_file("class_labels_indices.csv") == got, "found again without the server"
