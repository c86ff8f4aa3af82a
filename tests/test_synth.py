"""The synthetic corpus: classes, rendering truth, determinism, resume, mask, captions, splits."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import os
import re
import shutil
import sys
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from zskit.data import captions as cap
from zskit.data import gm, synth
from zskit.data.manifest import load_corpus
from zskit.data.splits import stratified_split
from zskit.data.synth import ClipSpec, Note, Stem, clip_spec, generate_corpus, render_clip
from zskit.data.synth import corpus as synth_corpus
from zskit.data.synth import render as synth_render
from zskit.data.synth.patterns import ROLE_PATTERNS
from zskit.errors import ConfigError, DataError, DependencyError

pretty_midi = pytest.importorskip("pretty_midi")
pytest.importorskip("tinysoundfont")

TIM = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
SOUNDFONTS = [TIM] + ([synth.FLUID_R3] if synth.FLUID_R3.is_file() else [])
SR = 32000
N_CLIPS, SECONDS = 16, 3.0


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """A tiny corpus rendered once by two worker processes."""
    out = tmp_path_factory.mktemp("synth") / "corpus"
    return generate_corpus(
        out,
        n_clips=N_CLIPS,
        seed=7,
        clip_seconds=SECONDS,
        soundfont=TIM,
        workers=2,
        progress=False,
    )


def _read(path: Path) -> np.ndarray:
    audio, sr = sf.read(path, dtype="float32")
    assert sr == SR, f"{path} has sample rate {sr}, expected {SR}"
    return audio


def _single(class_id: str, notes: list[Note], program: int = 0, duration: float = 3.5) -> ClipSpec:
    return ClipSpec(stems=(Stem(class_id, tuple(notes), program),), duration=duration)


# ----------------------------------------------------------------------------- class table


def test_class_table_covers_openmic_and_a_wider_pool():
    ids = gm.class_ids()
    openmic = [
        "accordion",
        "banjo",
        "bass",
        "cello",
        "clarinet",
        "cymbals",
        "drums",
        "flute",
        "guitar",
        "mallet_percussion",
        "mandolin",
        "organ",
        "piano",
        "saxophone",
        "synthesizer",
        "trombone",
        "trumpet",
        "ukulele",
        "violin",
        "voice",
    ]
    assert list(gm.OPENMIC_CLASSES) == openmic, "OpenMIC's 20 ids, in OpenMIC's order"
    assert 40 <= len(ids) <= 60, f"{len(ids)} classes; zero-shot folds need ~40-50"
    assert len(set(ids)) == len(ids), "class ids must be unique"
    names = [c.name for c in gm.CLASSES]
    assert len(set(names)) == len(names), "display names must be unique"
    for c in gm.CLASSES:
        assert c.family in gm.FAMILIES, f"{c.id} has unknown family {c.family}"
        assert re.fullmatch(r"[a-z][a-z ]*", c.name), f"{c.id}: display name {c.name!r}"
        assert bool(c.programs) != bool(c.drum_notes), f"{c.id}: programs xor drum keys"
        assert all(0 <= p < 128 for p in c.programs + c.drum_notes), f"{c.id}: GM numbers 0-127"
        assert set(c.roles) <= set(gm.ROLES), f"{c.id}: unknown role in {c.roles}"
        if c.programs:
            assert 12 <= c.high - c.low <= 64, f"{c.id}: range {c.low}-{c.high} not realistic"


def test_no_two_classes_share_a_sound_outside_an_exclusive_group():
    owners: dict[tuple[str, int], list[gm.InstrumentClass]] = {}
    for c in gm.CLASSES:
        for p in c.programs:
            owners.setdefault(("program", p), []).append(c)
        for k in c.drum_notes:
            owners.setdefault(("key", k), []).append(c)
    for sound, classes in owners.items():
        groups = {c.exclusive for c in classes}
        assert len(classes) == 1 or (len(groups) == 1 and None not in groups), (
            f"{sound} is used by {[c.id for c in classes]} without a shared exclusive group"
        )


def test_hierarchy_covers_every_class_once():
    tree = gm.hierarchy()
    members = [c for children in tree.values() for c in children]
    assert sorted(members) == sorted(gm.class_ids()), "every class in exactly one family"
    matrix, families = gm.family_matrix()
    assert (matrix.sum(axis=1) == 1).all(), "each class row has one family"
    labels = np.random.default_rng(0).random((50, len(gm.class_ids()))) < 0.05
    brute = np.array(
        [
            [any(labels[i, gm.class_ids().index(c)] for c in tree[f]) for f in families]
            for i in range(50)
        ]
    )
    np.testing.assert_array_equal(gm.to_families(labels), brute, "family = max over its classes")
    with pytest.raises(ConfigError, match="kazoo.*accordion"):
        gm.get_class("kazoo")


@pytest.mark.parametrize("soundfont", SOUNDFONTS, ids=lambda p: p.name)
def test_every_class_sounds_across_its_range(soundfont):
    renderer = synth.Renderer(soundfont, 16000)
    for c in gm.CLASSES:
        if c.is_drum:
            cases = [(0, k) for k in c.drum_notes]
        else:
            cases = [(p, k) for p in c.programs for k in (c.low, (c.low + c.high) // 2, c.high)]
        for program, key in cases:
            audio = renderer.render_stem(Stem(c.id, (Note(0.0, 0.25, key, 100),), program), 6000)
            assert np.abs(audio).max() > 1e-3, f"{c.id} program {program} key {key} is silent"


# ----------------------------------------------------------------------------- rendering truth


@pytest.mark.parametrize("soundfont", SOUNDFONTS, ids=lambda p: p.name)
def test_energy_follows_the_flute_notes(soundfont):
    spec = _single("flute", [Note(0.5, 1.0, 72, 100), Note(2.0, 2.5, 76, 100)], program=73)
    audio = render_clip(spec, sample_rate=SR, soundfont=soundfont)

    def level(t0, t1):
        return float(np.sqrt(np.mean(audio[int(t0 * SR) : int(t1 * SR)] ** 2)))

    sounding = min(level(0.6, 0.9), level(2.1, 2.4))
    silent = max(level(0.0, 0.45), level(1.4, 1.9), level(3.0, 3.5))
    assert sounding > 0.01, f"flute notes too quiet: RMS {sounding}"
    assert sounding > 100 * silent, f"notes {sounding:.2e} vs gaps {silent:.2e}: under 40 dB apart"


@pytest.mark.parametrize("soundfont", SOUNDFONTS, ids=lambda p: p.name)
@pytest.mark.parametrize(
    ("class_id", "program", "key"),
    [
        ("flute", 73, 69),
        ("cello", 42, 48),
        ("trumpet", 56, 65),
        ("piano", 0, 60),
        ("bass", 33, 40),
        ("violin", 40, 76),
    ],
)
def test_single_note_has_the_right_pitch(soundfont, class_id, program, key):
    spec = _single(class_id, [Note(0.1, 1.1, key, 100)], program=program, duration=1.5)
    audio = render_clip(spec, sample_rate=SR, soundfont=soundfont)[int(0.2 * SR) : int(1.0 * SR)]
    f_ref = librosa.midi_to_hz(key)
    f0 = np.median(librosa.yin(audio, fmin=f_ref / 2.2, fmax=f_ref * 2.2, sr=SR, frame_length=4096))
    assert abs(12 * np.log2(f0 / f_ref)) < 1.0, (
        f"{class_id} key {key}: f0 {f0:.1f} Hz vs {f_ref:.1f}"
    )
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    peak = np.fft.rfftfreq(len(audio), 1 / SR)[np.argmax(spectrum)]
    harmonic = peak / f_ref
    assert round(harmonic) >= 1 and abs(harmonic - round(harmonic)) < 0.03 * round(harmonic), (
        f"{class_id}: spectral peak {peak:.1f} Hz is no harmonic of {f_ref:.1f} Hz"
    )


@pytest.mark.parametrize("soundfont", SOUNDFONTS, ids=lambda p: p.name)
def test_drum_hits_are_broadband_onsets(soundfont):
    hits = [0.5, 1.25, 2.0, 2.75]
    notes = [Note(t, t + 0.2, k, 110) for t, k in zip(hits, [36, 38, 42, 38])]
    audio = render_clip(_single("drums", notes), sample_rate=SR, soundfont=soundfont)
    onsets = librosa.onset.onset_detect(y=audio, sr=SR, units="time", hop_length=256)
    for t in hits:
        assert np.min(np.abs(onsets - t)) < 0.03, f"no onset within 30 ms of the hit at {t} s"
    spec = np.abs(librosa.stft(audio, n_fft=1024, hop_length=256)) ** 2
    high = spec[librosa.fft_frequencies(sr=SR, n_fft=1024) > 2000].sum(axis=0)
    times = librosa.frames_to_time(np.arange(len(high)), sr=SR, hop_length=256)
    for t in hits:
        after = high[(times >= t) & (times < t + 0.08)].mean()
        before = high[(times >= t - 0.15) & (times < t - 0.03)].mean()
        assert after > 100 * before, f"hit at {t} s: energy above 2 kHz rose under 20 dB"


def test_mix_is_exactly_the_labelled_stems():
    spec = clip_spec(3, seed=11, clip_seconds=SECONDS)
    mix, stems = synth.Renderer(TIM, SR).render(spec)
    assert sorted(stems) == sorted(spec.classes), "one stem per labelled class"
    total = np.sum(list(stems.values()), axis=0)
    for class_id, stem in stems.items():
        assert np.sqrt(np.mean(stem**2)) > 1e-3, f"labelled {class_id} is inaudible"
    scale = float(mix @ total / (total @ total))
    np.testing.assert_allclose(mix, scale * total, atol=1e-5, err_msg="mix = gain x sum of stems")


def test_missing_tinysoundfont_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "tinysoundfont", None)
    with pytest.raises(DependencyError, match="--no-deps"):
        synth.Renderer(TIM, SR)


def test_soundfont_choice(tmp_path):
    assert synth.find_soundfont(TIM) == TIM, "an explicit SoundFont wins"
    expected = synth.FLUID_R3 if synth.FLUID_R3.is_file() else TIM
    assert synth.find_soundfont() == expected, "FluidR3 when installed, else TimGM6mb"
    with pytest.raises(DataError, match="nope.sf2"):
        synth.find_soundfont(tmp_path / "nope.sf2")
    info = synth.soundfont_info(TIM)
    assert info["name"] == "TimGM6mb.sf2", f"SoundFont name {info}"
    assert re.fullmatch(r"[0-9a-f]{16}", info["sha256"]), f"sha256 prefix {info}"


def test_rendering_with_the_fallback_soundfont_says_so(tmp_path, monkeypatch, caplog):
    """Without Debian's FluidR3 (and no SoundFont asked for) the corpus is rendered with
    TimGM6mb and a warning says how to get the better one; an explicit choice is not warned."""
    monkeypatch.setattr("zskit.data.synth.render.FLUID_R3", tmp_path / "absent.sf2")
    monkeypatch.delenv("ZSKIT_SOUNDFONT", raising=False)
    with caplog.at_level("WARNING", logger="zskit.data.synth.corpus"):
        generate_corpus(tmp_path / "a", n_clips=1, clip_seconds=1.0, workers=1, progress=False)
    assert "apt-get install fluid-soundfont-gm" in caplog.text, caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="zskit.data.synth.corpus"):
        generate_corpus(tmp_path / "b", n_clips=1, clip_seconds=1.0, soundfont=TIM, workers=1,
                        progress=False)
    assert "fluid-soundfont-gm" not in caplog.text, caplog.text


# ----------------------------------------------------------------------------- clip specs


def test_specs_respect_ranges_groups_and_timing():
    counts = []
    for i in range(150):
        spec = clip_spec(i, seed=3, clip_seconds=10.0)
        counts.append(len(spec.stems))
        groups = [gm.get_class(s.class_id).exclusive for s in spec.stems]
        groups = [g for g in groups if g]
        assert len(groups) == len(set(groups)), f"clip {i} holds two classes of one group"
        assert len(spec.classes) == len(spec.stems), f"clip {i} repeats a class"
        for stem in spec.stems:
            c = gm.get_class(stem.class_id)
            assert stem.notes, f"clip {i}: {c.id} has no notes"
            assert c.is_drum or stem.program in c.programs, f"clip {i}: {c.id} program"
            by_key: dict[int, list[Note]] = {}
            for n in stem.notes:
                ok = n.pitch in c.drum_notes if c.is_drum else c.low <= n.pitch <= c.high
                assert ok, f"clip {i}: {c.id} plays key {n.pitch} outside its range"
                assert 0 <= n.start < n.end <= 10.0, f"clip {i}: note {n} outside the clip"
                assert 1 <= n.velocity <= 127, f"clip {i}: velocity {n.velocity}"
                by_key.setdefault(n.pitch, []).append(n)
            for key, notes in by_key.items():
                notes.sort(key=lambda n: n.start)
                assert all(a.end <= b.start for a, b in itertools.pairwise(notes)), (
                    f"clip {i}: {c.id} key {key} overlaps itself (a note-off would cut it)"
                )
    assert set(counts) == {1, 2, 3, 4}, f"instruments per clip: {sorted(set(counts))}"
    assert 2.0 < np.mean(counts) < 2.8, f"mean instruments per clip {np.mean(counts):.2f}"


def test_clip_content_depends_only_on_seed_and_index():
    assert clip_spec(5, seed=1) == clip_spec(5, seed=1), "same (seed, index), same spec"
    assert clip_spec(5, seed=1) != clip_spec(5, seed=2), "another seed, another clip"
    assert clip_spec(5, seed=1) != clip_spec(6, seed=1), "another index, another clip"
    a = render_clip(clip_spec(2, seed=1, clip_seconds=SECONDS), sample_rate=SR, soundfont=TIM)
    b = render_clip(clip_spec(2, seed=1, clip_seconds=SECONDS), sample_rate=SR, soundfont=TIM)
    c = render_clip(clip_spec(2, seed=2, clip_seconds=SECONDS), sample_rate=SR, soundfont=TIM)
    assert np.array_equal(a, b), "rendering is deterministic"
    assert not np.allclose(a, c, atol=1e-3), "different seeds give different audio"


def test_config_is_validated():
    with pytest.raises(ConfigError, match="n_clips"):
        synth.SynthConfig(n_clips=0)
    with pytest.raises(ConfigError, match="sample_rate"):
        synth.SynthConfig(sample_rate=1000)


# ----------------------------------------------------------------------------- the corpus folder


def test_corpus_audio_is_audible_and_not_clipped(corpus_dir):
    corpus = load_corpus(corpus_dir)
    assert len(corpus) == N_CLIPS, f"{len(corpus)} clips, expected {N_CLIPS}"
    for path in corpus.paths:
        audio = _read(path)
        assert audio.shape == (int(SECONDS * SR),), f"{path}: shape {audio.shape}"
        rms = float(np.sqrt(np.mean(audio**2)))
        assert rms > 0.005, f"{path}: RMS {rms:.4f}, nearly silent"
        assert np.abs(audio).max() <= 0.951, f"{path}: peak {np.abs(audio).max():.3f} > 0.95"


def test_corpus_labels_are_the_rendered_classes(corpus_dir):
    corpus = load_corpus(corpus_dir)
    assert corpus.classes == gm.class_ids(), "label columns follow the class table"
    for i, row in corpus.manifest.iterrows():
        spec = clip_spec(i, seed=7, clip_seconds=SECONDS)
        truth = [c for c, v in zip(corpus.classes, corpus.labels[i]) if v]
        assert truth == spec.classes, f"{row['clip_id']}: labels {truth} vs rendered {spec.classes}"
        families = {gm.get_class(c).family for c in truth}
        assert set(row["families"].split(";")) == families, f"{row['clip_id']}: families"


def test_parallel_and_serial_runs_write_identical_audio(corpus_dir, tmp_path):
    def serial_run(out: Path, n_clips: int, seed: int) -> Path:
        return generate_corpus(
            out, n_clips, seed, clip_seconds=SECONDS, soundfont=TIM, workers=1, progress=False
        )

    serial = serial_run(tmp_path / "serial", 3, 7)
    for i in range(3):
        name = f"audio/{synth.clip_id(i)}.flac"
        assert np.array_equal(_read(serial / name), _read(corpus_dir / name)), f"{name} differs"
    other = serial_run(tmp_path / "other", 1, 8)
    name = f"audio/{synth.clip_id(0)}.flac"
    assert not np.array_equal(_read(other / name), _read(corpus_dir / name)), "seed 8 == seed 7"


def test_resume_renders_only_what_is_missing(corpus_dir, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(corpus_dir, copy)
    removed = [synth.clip_id(2), synth.clip_id(9)]
    for clip in removed:
        (copy / "audio" / f"{clip}.flac").unlink()
    (copy / "manifest.csv").unlink()
    (copy / "metadata.json").unlink()
    (copy / "audio" / f".{synth.clip_id(4)}.999.tmp").write_bytes(b"half a clip")

    rendered: list[int] = []
    real = synth_corpus._render_job
    monkeypatch.setattr(
        synth_corpus, "_render_job", lambda job: rendered.append(job[0]) or real(job)
    )
    kwargs = {
        "n_clips": N_CLIPS,
        "seed": 7,
        "clip_seconds": SECONDS,
        "soundfont": TIM,
        "workers": 1,
        "progress": False,
    }
    generate_corpus(copy, **kwargs)
    assert sorted(rendered) == [2, 9], f"re-rendered {rendered}, expected only the two deleted"
    assert not list((copy / "audio").glob(".*.tmp")), "stale temporary files are removed"
    for clip in removed:
        name = f"audio/{clip}.flac"
        assert np.array_equal(_read(copy / name), _read(corpus_dir / name)), f"{name} differs"
    pd.testing.assert_frame_equal(load_corpus(copy).manifest, load_corpus(corpus_dir).manifest)

    rendered.clear()
    stamps = {p: p.stat().st_mtime_ns for p in copy.rglob("*")}
    assert generate_corpus(copy, **kwargs) == copy, "a re-run returns the same folder"
    assert rendered == [], "a complete corpus is not rendered again"
    assert stamps == {p: p.stat().st_mtime_ns for p in copy.rglob("*")}, "nothing rewritten"


def test_captions_of_an_older_zskit_are_rewritten_and_the_audio_kept(
    corpus_dir, tmp_path, monkeypatch
):
    copy = tmp_path / "copy"
    shutil.copytree(corpus_dir, copy)
    table = pd.read_csv(copy / "manifest.csv")
    table["caption_1"] = "an ukulele plays"  # as an older zskit wrote
    table.to_csv(copy / "manifest.csv", index=False)
    meta = json.loads((copy / "metadata.json").read_text())
    del meta["captions_version"]
    (copy / "metadata.json").write_text(json.dumps(meta))
    audio = {p: p.stat().st_mtime_ns for p in (copy / "audio").iterdir()}
    monkeypatch.setattr(synth_corpus, "_render_missing",
                        lambda *_: pytest.fail("no clip may be rendered again"))
    generate_corpus(copy, n_clips=N_CLIPS, seed=7, clip_seconds=SECONDS, soundfont=TIM,
                    workers=1, progress=False)
    pd.testing.assert_frame_equal(load_corpus(copy).manifest, load_corpus(corpus_dir).manifest)
    rewritten = json.loads((copy / "metadata.json").read_text())
    assert rewritten["captions_version"] == synth_corpus.CAPTIONS_VERSION
    assert rewritten["soundfont"] == meta["soundfont"], "the rendering SoundFont stays recorded"
    assert audio == {p: p.stat().st_mtime_ns for p in (copy / "audio").iterdir()}


def test_other_parameters_in_a_used_folder_are_refused(corpus_dir, tmp_path):
    with pytest.raises(DataError, match=r"n_clips.*--out"):
        generate_corpus(
            corpus_dir,
            n_clips=N_CLIPS + 1,
            seed=7,
            clip_seconds=SECONDS,
            soundfont=TIM,
            progress=False,
        )
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="stranger.*no zskit synth corpus"):
        generate_corpus(stranger, n_clips=2, soundfont=TIM, progress=False)


def test_ensure_corpus_defaults_to_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSKIT_DATA", str(tmp_path))
    assert synth.default_corpus_dir(smoke=True) == tmp_path / "synth-smoke", "smoke folder"
    assert synth.default_corpus_dir() == tmp_path / "synth", "default folder under ZSKIT_DATA"
    out = synth.ensure_corpus(
        smoke=True, n_clips=2, clip_seconds=1.0, soundfont=TIM, workers=1, progress=False
    )
    assert out == tmp_path / "synth-smoke", f"ensure_corpus wrote to {out}"
    assert len(load_corpus(out)) == 2, "the requested two clips"


def test_metadata_records_classes_hierarchy_and_provenance(corpus_dir):
    meta = load_corpus(corpus_dir).metadata
    assert [c["id"] for c in meta["classes"]] == gm.class_ids(), "metadata lists every class"
    assert all(c["family"] in meta["hierarchy"] for c in meta["classes"]), (
        "every class has a family"
    )
    assert meta["soundfont"]["name"] == "TimGM6mb.sf2", f"SoundFont {meta['soundfont']}"
    assert len(meta["soundfont"]["sha256"]) == 16, "sha256 prefix recorded"
    assert (meta["sample_rate"], meta["seed"], meta["n_clips"]) == (SR, 7, N_CLIPS), "params"
    assert sum(meta["splits"].values()) == N_CLIPS, f"split sizes {meta['splits']}"
    assert meta["params"]["generator_version"] == synth.GENERATOR_VERSION, "version recorded"
    assert "created" in meta, "creation time recorded"
    assert 0 < meta["mask"]["density"] < 1, f"mask density {meta['mask']}"


# ----------------------------------------------------------- mask, captions, splits


def test_mask_hides_part_of_the_truth_at_the_documented_density():
    config = synth.SynthConfig(n_clips=600, seed=5)
    classes = gm.class_ids()
    labels = np.array([np.isin(classes, clip_spec(i, 5).classes) for i in range(600)])
    mask = np.stack([synth.annotation_mask(labels[i], config, i) for i in range(600)])
    assert mask.any(axis=1).all(), "every clip has at least one annotated label"
    pos_rate, neg_rate = mask[labels].mean(), mask[~labels].mean()
    assert abs(pos_rate - config.p_annotate_positive) < 0.05, f"positives annotated {pos_rate:.3f}"
    assert abs(neg_rate - config.p_annotate_negative) < 0.01, f"negatives annotated {neg_rate:.3f}"
    assert 0.08 < mask.mean() < 0.12, f"mask density {mask.mean():.3f}, OpenMIC-like is ~0.10"
    assert (labels & ~mask).any(), "some true positives stay unannotated"
    again = synth.annotation_mask(labels[3], config, 3)
    np.testing.assert_array_equal(again, mask[3], "the mask is seeded by (seed, index)")


def test_corpus_captions_and_keywords(corpus_dir):
    corpus = load_corpus(corpus_dir)
    names = corpus.class_names
    for i, five in enumerate(corpus.captions):
        assert len(five) == 5, f"clip {i}: {len(five)} captions"
        assert len(set(five)) == 5, f"clip {i}: repeated captions {five}"
        present = [n for n, v in zip(names, corpus.labels[i]) if v]
        for text in five:
            assert any(n in text for n in present), f"clip {i}: {text!r} names none of {present}"
            assert text[0].isupper() and text.endswith("."), f"clip {i}: {text!r}"
        keywords = corpus.manifest["keywords"][i].split(";")
        assert set(present) <= set(keywords), f"clip {i}: keywords {keywords} miss {present}"


def test_caption_grammar():
    assert cap.noun_phrase("organ") == "an organ", "article before a vowel"
    assert cap.noun_phrase("drums") == "drums", "no article before a plural"
    facts = cap.CaptionFacts(("drums",), ("beat",), ("percussion",), 150, "dark", "middle", "loud")
    rng = np.random.default_rng(0)
    texts = [t for _ in range(30) for t in cap.make_captions(facts, rng)]
    assert not any("drums keeps" in t or "drums plays" in t for t in texts), "plural verb for drums"
    assert not any(re.search(r"\ba [aeiou]", t) for t in texts), "'an' before vowels"
    same = cap.make_captions(facts, np.random.default_rng(1))
    assert same == cap.make_captions(facts, np.random.default_rng(1)), "seeded captions repeat"
    with pytest.raises(ConfigError):
        cap.make_captions(facts, rng, n=0)


def test_splits_partition_the_corpus(corpus_dir):
    manifest = load_corpus(corpus_dir).manifest
    assert set(manifest["split"]) == set(synth.SPLITS), "three splits at this size"
    assert manifest["clip_id"].is_unique, "each clip appears once, in one split"


def test_stratified_split_keeps_every_class_in_every_split():
    rng = np.random.default_rng(0)
    labels = rng.random((2000, 49)) < 2.4 / 49
    labels[np.arange(2000), rng.integers(49, size=2000)] = True
    split = stratified_split(labels, (0.7, 0.15, 0.15), np.random.default_rng(1))
    assert set(np.unique(split)) == {0, 1, 2}, "every row gets one of three splits"
    sizes = np.bincount(split) / len(split)
    np.testing.assert_allclose(sizes, [0.7, 0.15, 0.15], atol=0.02, err_msg="split sizes")
    for s in range(3):
        counts = labels[split == s].sum(axis=0)
        assert counts.min() > 0, f"split {s} misses classes {np.flatnonzero(counts == 0)}"
        share = counts / labels.sum(axis=0)
        assert np.all(np.abs(share - sizes[s]) < 0.1), f"split {s}: class shares {share.round(2)}"


def test_generated_files_are_atomic(corpus_dir):
    leftovers = [p for p in corpus_dir.rglob(".*") if p.is_file()]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    assert os.path.isfile(corpus_dir / "params.json"), "params.json records the parameters"


def test_zskit_soundfont_variable_chooses_the_soundfont(monkeypatch, tmp_path):
    chosen = tmp_path / "my.sf2"
    chosen.write_bytes(b"RIFF")
    monkeypatch.setenv("ZSKIT_SOUNDFONT", str(chosen))
    assert synth.find_soundfont() == chosen, "ZSKIT_SOUNDFONT must win over the installed SoundFonts"
    assert synth.find_soundfont(tmp_path / "my.sf2") == chosen
    monkeypatch.setenv("ZSKIT_SOUNDFONT", str(tmp_path / "missing.sf2"))
    with pytest.raises(DataError, match="missing.sf2"):
        synth.find_soundfont()


# ----------------------------------------------------------- the package and its parameters


def test_package_keeps_the_public_names_of_the_old_module():
    import zskit.data

    for name in synth.__all__:
        assert hasattr(synth, name), f"zskit.data.synth.{name} is missing"
    for name, module in zskit.data._EXPORTS.items():
        if module == "synth":
            assert getattr(zskit.data, name) is getattr(synth, name), f"zskit.data.{name}"
    assert set(ROLE_PATTERNS) == set(gm.ROLES), "one pattern per role of the class table"


def test_generate_corpus_defaults_are_the_config_defaults():
    signature = inspect.signature(generate_corpus).parameters
    fields = {f.name: f.default for f in dataclasses.fields(synth.SynthConfig)}
    assert set(fields) <= set(signature), (
        f"SynthConfig fields missing from generate_corpus: {sorted(set(fields) - set(signature))}"
    )
    for name in set(fields) - {"n_clips"}:  # n_clips=None means 2,000 (100 with smoke)
        assert signature[name].default == fields[name], (
            f"{name}: generate_corpus default {signature[name].default!r} vs {fields[name]!r}"
        )
    with pytest.raises(ConfigError, match="p_annotate_positive"):
        synth.SynthConfig(p_annotate_positive=1.5)


def test_content_parameters_reach_the_corpus(tmp_path):
    out = generate_corpus(
        tmp_path / "solo",
        n_clips=6,
        seed=1,
        clip_seconds=1.0,
        max_instruments=1,
        split_fractions=(0.5, 0.25, 0.25),
        p_annotate_positive=1.0,
        p_annotate_negative=0.0,
        soundfont=TIM,
        workers=1,
        progress=False,
    )
    corpus = load_corpus(out)
    assert (corpus.manifest["n_instruments"] == 1).all(), "max_instruments=1: one per clip"
    np.testing.assert_array_equal(
        corpus.mask, corpus.labels, "p_positive=1, p_negative=0: exactly the positives annotated"
    )
    params = corpus.metadata["params"]
    assert params["split_fractions"] == [0.5, 0.25, 0.25], f"recorded {params}"
    assert (params["max_instruments"], params["p_annotate_negative"]) == (1, 0.0), f"{params}"


def test_rerun_reuses_the_recorded_soundfont_hash(tmp_path, monkeypatch):
    soundfont = tmp_path / "copy.sf2"
    shutil.copyfile(TIM, soundfont)
    kwargs = {"n_clips": 1, "clip_seconds": 1.0, "soundfont": soundfont, "progress": False}
    out = generate_corpus(tmp_path / "corpus", workers=1, **kwargs)
    recorded = json.loads((out / "params.json").read_text())["soundfont_file"]
    assert recorded["size"] == soundfont.stat().st_size, f"size recorded in params.json {recorded}"

    hashed: list[str] = []
    real = synth_render._sha256.__wrapped__  # past the per-process cache
    monkeypatch.setattr(synth_render, "_sha256", lambda *key: hashed.append(key[0]) or real(*key))
    assert generate_corpus(out, **kwargs) == out, "a re-run returns the folder"
    assert hashed == [], "re-running a finished corpus must not read the SoundFont again"

    stat = soundfont.stat()
    os.utime(soundfont, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert generate_corpus(out, **kwargs) == out, "same content, newer mtime: still this corpus"
    assert hashed == [str(soundfont)], f"a touched SoundFont is hashed again once: {hashed}"


def test_every_part_plays_in_very_short_clips():
    """Sparse parts (a cymbal crash per bar, a late entry) can miss a 1 s clip; they are redrawn
    so that no labelled instrument is silent."""
    empty = [
        (i, stem.class_id)
        for i in range(300)
        for stem in clip_spec(i, seed=5, clip_seconds=1.0).stems
        if not stem.notes
    ]
    assert not empty, f"clips with a labelled instrument that plays no note: {empty[:5]}"
