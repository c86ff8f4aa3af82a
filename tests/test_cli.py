"""The ``zskit`` command: return codes and output of data synth / run / reproduce and errors."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import soundfile as sf

import zskit
from zskit import runner
from zskit.cli import main
from zskit.errors import ConfigError, DataError
from zskit.report import read_metrics


@pytest.fixture
def fixture_notebooks(fixtures_dir, monkeypatch):
    """Make the fixture notebooks the checkout's notebooks/ and skip corpus generation."""
    corpus_calls = []
    monkeypatch.setattr(runner, "notebooks_dir", lambda: fixtures_dir)
    monkeypatch.setattr("zskit.data.synth.ensure_corpus", lambda smoke: corpus_calls.append(smoke))
    return corpus_calls


@pytest.fixture
def fake_synth(monkeypatch, tmp_path):
    """A stand-in zskit.data.synth that records how generate_corpus was called."""
    calls = []

    def generate_corpus(out_dir=None, **kwargs):
        calls.append({"out_dir": out_dir, **kwargs})
        if kwargs.get("n_clips") == 0:
            raise ConfigError("n_clips=0 is too small; pass --n-clips 1 or more.")
        return Path(out_dir or tmp_path / "default_corpus")

    module = types.ModuleType("zskit.data.synth")
    module.generate_corpus = generate_corpus
    monkeypatch.setitem(sys.modules, "zskit.data.synth", module)
    return calls


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"zskit {zskit.__version__}"


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage: zskit" in capsys.readouterr().err


def test_data_synth_passes_arguments(fake_synth, tmp_path, capsys):
    out = tmp_path / "corpus"
    argv = f"data synth --out {out} --n-clips 7 --seed 3 --smoke --workers 1".split()
    assert main(argv) == 0
    assert fake_synth == [{"out_dir": out, "n_clips": 7, "seed": 3, "smoke": True, "workers": 1}], (
        fake_synth
    )
    assert str(out) in capsys.readouterr().out


def test_data_synth_defaults(fake_synth):
    assert main(["data", "synth"]) == 0
    assert fake_synth == [{"out_dir": None, "seed": 0, "smoke": False, "workers": None}], (
        "without --n-clips the corpus default must apply"
    )


def test_data_synth_error_is_printed_without_traceback(fake_synth, capsys):
    assert main(["data", "synth", "--n-clips", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zskit: error: n_clips=0 is too small") and "Traceback" not in err, err


def test_data_synth_end_to_end(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(f"data synth --out {out} --n-clips 2 --seed 1 --workers 1".split()) == 0
    assert f"Corpus written to {out}" in capsys.readouterr().out
    clips = sorted((out / "audio").glob("*.flac"))
    assert len(clips) == 2, f"--n-clips 2 must render two clips, found {clips}"
    info = sf.info(clips[0])
    assert info.frames > 0 and info.samplerate > 0, info
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["seed"] == 1 and metadata["n_clips"] == 2, {
        k: metadata.get(k) for k in ("seed", "n_clips")
    }
    assert (out / "manifest.csv").is_file() or (out / "manifest.parquet").is_file(), list(
        out.iterdir()
    )
    assert main(f"data synth --out {out} --n-clips 3 --workers 1".split()) == 2, (
        "another corpus in the folder"
    )
    assert capsys.readouterr().err.startswith(f"zskit: error: {out}")


def test_run_unknown_notebook_lists_available(fixture_notebooks, capsys):
    assert main(["run", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zskit: error: Unknown notebook 'nope'"), err
    assert "01_ok, 02_failing, 03_malformed" in err, err


def test_run_unknown_parameter(fixture_notebooks, tmp_path, capsys):
    assert main(["run", "01", "-p", "scal", "3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no parameter 'scal'" in err and "scale" in err, err


def test_run_unparsable_parameter(fixture_notebooks, tmp_path, capsys):
    assert main(["run", "ok", "-p", "repeats", "many", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'repeats'" in err and "int" in err and "'many'" in err, err


def test_run_ok_notebook_with_parameters(fixture_notebooks, tmp_path, capsys):
    argv = f"run 01 -p scale 3 -p labels x,y --smoke --out {tmp_path}".split()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "01_ok passed" in out and str(tmp_path / "01_ok.ipynb") in out, out
    assert "accuracy, fixture: 1.5 %  (published 0.75, fixture paper, Table 1)" in out, out
    assert read_metrics(tmp_path)["figures"][0]["value"] == 1.5
    received = json.loads((tmp_path / "kernel.json").read_text())["received"]
    assert received["smoke"] is True and received["labels"] == ["x", "y"], received
    assert fixture_notebooks == [], "`zskit run` must not generate the corpus"


def test_run_default_out_is_a_new_run_folder(fixture_notebooks, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "default_runs_dir", lambda: tmp_path)
    assert main(["run", "01", "-p", "scal", "1"]) == 2
    assert list(tmp_path.iterdir()) == [], "a run that cannot start must leave no folder behind"
    assert main(["run", "01"]) == 0
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "01_ok" / "metrics.json").is_file(), list(run_dir.rglob("*"))
    assert str(run_dir / "01_ok" / "01_ok.ipynb") in capsys.readouterr().out


@pytest.mark.parametrize("out", ["afile", "afile/sub"], ids=["a file", "below a file"])
def test_run_into_an_unusable_out_folder_is_an_error_without_traceback(
        fixture_notebooks, tmp_path, capsys, out):
    (tmp_path / "afile").touch()
    assert main(["run", "01", "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zskit: error:") and "afile" in err and "--out" in err, err
    assert "Traceback" not in err


def test_run_with_out_dir_as_a_parameter_writes_there(fixture_notebooks, tmp_path, monkeypatch,
                                                     capsys):
    import papermill

    executed = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda src, dst, **kw: executed.append(dst))
    monkeypatch.setattr(runner, "default_runs_dir", lambda: tmp_path / "runs")
    main(["run", "01", "-p", "out_dir", str(tmp_path / "wanted")])
    assert executed == [str(tmp_path / "wanted" / "01_ok.ipynb")], executed
    capsys.readouterr()
    assert main(["run", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())  # as wrapped for any terminal width
    assert "-p out_dir" in help_text, "the help should say that -p out_dir works"


def test_run_failing_notebook_returns_1(fixture_notebooks, tmp_path, capsys):
    assert main(["run", "02", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "02_failing FAILED: cell 2: ValueError: boom from the failing fixture" in err, err
    assert str(tmp_path / "02_failing.ipynb") in err, err


def test_reproduce_with_a_failure_returns_1(fixture_notebooks, tmp_path, capsys):
    assert main(["reproduce", "--smoke", "--only", "01", "02", "--runs-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert (
        "2 notebook(s)" in out
        and "1 passed, 1 failed" in out
        and "FAILED 02_failing: cell 2" in out
    ), out
    (run_dir,) = tmp_path.iterdir()
    assert f"Results: {run_dir / 'results.md'}" in out and (run_dir / "results.csv").is_file(), out
    assert fixture_notebooks == [True], "reproduce --smoke must make the smoke corpus first"


def test_reproduce_all_passing_returns_0(fixture_notebooks, tmp_path, capsys):
    assert main(["reproduce", "--only", "ok", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 notebook(s)" in out and "1 passed, 0 failed" in out, out
    assert fixture_notebooks == [False]


def test_reproduce_corpus_error_is_reported(fixtures_dir, monkeypatch, tmp_path, capsys):
    def no_corpus(smoke):
        raise DataError("the corpus cannot be rendered here; install tinysoundfont.")

    monkeypatch.setattr(runner, "notebooks_dir", lambda: fixtures_dir)
    monkeypatch.setattr("zskit.data.synth.ensure_corpus", no_corpus)
    assert main(["reproduce", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("zskit: error: the corpus cannot be rendered here")
        and "Traceback" not in err
    ), err
    assert list(tmp_path.iterdir()) == [], "nothing may run when the corpus cannot be made"


def test_encoders_lists_every_weight_set(capsys):
    from zskit.encoders import list_audio_encoders, list_text_encoders

    assert main(["encoders"]) == 0
    out = capsys.readouterr().out
    for name in list_audio_encoders(pretrained=True) + list_text_encoders(pretrained=True):
        assert f"`{name}`" in out, f"zskit encoders does not list {name}"
