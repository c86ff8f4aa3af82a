"""Manifest helpers and the corpus-folder contract (zskit.data.manifest)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import MultiLabelBinarizer

from zskit.data import manifest as mf
from zskit.errors import DataError


def _write_corpus(root, rows, classes=("cello", "flute", "drums")):
    root.mkdir(parents=True, exist_ok=True)
    mf.write_manifest(pd.DataFrame(rows), root / "manifest.csv")
    mf.write_json(
        root / "metadata.json", {"classes": [{"id": c, "name": c.upper()} for c in classes]}
    )
    return root


ROWS = [
    {
        "clip_id": "a",
        "path": "audio/a.flac",
        "split": "train",
        "labels": "cello;drums",
        "annotated": "cello",
        "caption_1": "A cello.",
        "caption_2": "Drums and a cello.",
    },
    {
        "clip_id": "b",
        "path": "audio/b.flac",
        "split": "test",
        "labels": "",
        "annotated": "flute;drums",
        "caption_1": "Silence.",
        "caption_2": "Nothing, really.",
    },
    {
        "clip_id": "c",
        "path": "audio/c.flac",
        "split": "train",
        "labels": "flute",
        "annotated": "",
        "caption_1": "A flute, softly.",
        "caption_2": "Flute; solo.",
    },
]


def test_list_cells_round_trip():
    assert mf.split_list(mf.join_list(["a", "b"])) == ["a", "b"], "join then split is identity"
    for empty in ("", None, float("nan")):
        assert mf.split_list(empty) == [], f"{empty!r} is an empty list"
    with pytest.raises(DataError, match="a;b"):
        mf.join_list(["a;b"])


def test_multi_hot_matches_scikit_learn():
    rng = np.random.default_rng(0)
    classes = [f"c{i}" for i in range(7)]
    sets = [sorted(rng.choice(classes, size=rng.integers(0, 4), replace=False)) for _ in range(40)]
    ours = mf.multi_hot([mf.join_list(s) for s in sets], classes)
    reference = MultiLabelBinarizer(classes=classes).fit_transform(sets)
    np.testing.assert_array_equal(ours, reference, "multi_hot disagrees with MultiLabelBinarizer")
    with pytest.raises(DataError, match="'kazoo'"):
        mf.multi_hot(["c1;kazoo"], classes, "m.csv")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_and_read_round_trip(tmp_path, suffix):
    path = tmp_path / f"manifest{suffix}"
    df = pd.DataFrame(ROWS)
    mf.write_manifest(df, path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file left behind"
    back = mf.read_manifest(path, required=("clip_id", "labels"))
    pd.testing.assert_frame_equal(back, df)
    assert back.loc[1, "labels"] == "", "an empty label list stays an empty string"


def test_read_manifest_names_the_missing_column_and_file(tmp_path):
    path = tmp_path / "m.csv"
    pd.DataFrame({"clip_id": ["x"], "path": ["x.wav"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"m\.csv.*'split'"):
        mf.read_manifest(path, required=("clip_id", "split"))
    with pytest.raises(DataError, match="missing.csv"):
        mf.read_manifest(tmp_path / "missing.csv")
    with pytest.raises(DataError, match=r"\.txt"):
        mf.read_manifest(tmp_path / "m.txt")


@pytest.mark.parametrize("name, data", [
    ("empty.csv", b""),
    ("garbled.csv", b'clip_id,path,split,labels\n0,"a.wav,train,a\n1,b.wav,train,a,x,y\n'),
    ("truncated.parquet", b"PAR1 truncated"),
])
def test_damaged_manifest_is_a_data_error_that_says_to_regenerate_it(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(DataError, match=rf"{name}.*Regenerate"):
        mf.read_manifest(tmp_path / name)


def test_json_helpers(tmp_path):
    path = mf.write_json(tmp_path / "x.json", {"a": [1, 2]})
    assert mf.read_json(path) == {"a": [1, 2]}, "JSON round trip"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        mf.read_json(tmp_path / "bad.json")
    with pytest.raises(DataError, match="nothing.json"):
        mf.read_json(tmp_path / "nothing.json")


def test_failed_writes_keep_the_old_file_and_leave_no_temp_file(tmp_path, monkeypatch):
    """A write that fails half way (here: the disk fills up after a few bytes) must not leave a
    temporary file beside the manifest, and the previous manifest stays readable."""
    path = mf.write_manifest(pd.DataFrame(ROWS), tmp_path / "manifest.csv")

    def disk_full(self, target, **kwargs):  # a file object, or a path to open
        if hasattr(target, "write"):
            target.write(b"clip_id,pa")
        else:
            with open(target, "wb") as fh:
                fh.write(b"clip_id,pa")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    with pytest.raises(OSError, match="No space"):
        mf.write_manifest(pd.DataFrame(ROWS[:1]), path)
    monkeypatch.undo()
    assert mf.read_manifest(path)["clip_id"].tolist() == [r["clip_id"] for r in ROWS]
    with pytest.raises(TypeError):
        mf.write_json(tmp_path / "x.json", {"a": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.csv"], "temp files left"
    assert mf.atomic_write_bytes(tmp_path / "b.bin", b"xy").read_bytes() == b"xy"


def test_load_corpus_builds_dense_labels_mask_and_captions(tmp_path):
    corpus = mf.load_corpus(_write_corpus(tmp_path / "c", ROWS))
    assert corpus.classes == ["cello", "flute", "drums"]
    assert corpus.class_names == ["CELLO", "FLUTE", "DRUMS"]
    np.testing.assert_array_equal(corpus.labels, [[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(corpus.mask, [[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    assert corpus.labels.dtype == np.int8, f"labels dtype {corpus.labels.dtype}"
    assert corpus.mask.dtype == bool, f"mask dtype {corpus.mask.dtype}"
    assert corpus.captions[2] == ["A flute, softly.", "Flute; solo."], "commas and ';' survive"
    assert corpus.paths[0] == tmp_path / "c" / "audio" / "a.flac", "paths are absolute"
    train = corpus.split("train")
    assert list(train.manifest["clip_id"]) == ["a", "c"]
    np.testing.assert_array_equal(train.labels, corpus.labels[[0, 2]])
    np.testing.assert_array_equal(train.mask, corpus.mask[[0, 2]])
    assert train.captions == [corpus.captions[0], corpus.captions[2]], "captions follow rows"
    with pytest.raises(DataError, match="'dev'.*train"):
        corpus.split("dev")


def test_load_corpus_without_mask_column_annotates_everything(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "annotated"} for r in ROWS]
    corpus = mf.load_corpus(_write_corpus(tmp_path / "c", rows))
    assert corpus.mask.all(), "no 'annotated' column means every label is known"


def test_load_corpus_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="metadata.json.*Generate it"):
        mf.load_corpus(tmp_path / "empty")
    root = _write_corpus(tmp_path / "c", ROWS, classes=("cello", "flute"))
    with pytest.raises(DataError, match=r"but .*c has: pass that folder"):
        mf.load_corpus(tmp_path)  # the parent of a corpus folder (an extracted archive)
    with pytest.raises(DataError, match="'drums'"):
        mf.load_corpus(root)
    (root / "metadata.json").write_text(json.dumps({"name": "no classes"}))
    with pytest.raises(DataError, match="'classes'"):
        mf.load_corpus(root)
