"""The corpus folder: configuration, labels and mask, manifest and metadata, resume and the pool."""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from zskit.data import captions as cap
from zskit.data.gm import CLASSES, FAMILIES, OPENMIC_CLASSES, class_ids, get_class, hierarchy
from zskit.data.manifest import MANIFEST_NAME, METADATA_NAME, join_list, read_json, write_manifest
from zskit.data.splits import stratified_split
from zskit.data.synth.clips import clip_id, clip_spec
from zskit.data.synth.music import ClipSpec
from zskit.data.synth.render import (
    FLAC_SUBTYPE,
    RenderJob,
    _init_worker,
    _render_job,
    _render_jobs,
    find_soundfont,
    soundfont_info,
)
from zskit.errors import ConfigError, DataError
from zskit.fileio import write_json
from zskit.paths import data_root

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
# The version of the captions and keywords alone: a corpus whose texts are older gets its manifest
# and metadata rewritten in place (the audio is kept). Bump it when the caption wording changes.
CAPTIONS_VERSION = "2"
DEFAULT_CLIPS = 2000
SMOKE_CLIPS = 100
PARAMS_NAME = "params.json"
SPLITS = ("train", "validation", "test")
JOBS_PER_TASK = 8  # clips per worker task: fewer round trips, still a smooth progress bar


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides a corpus' content; recorded in params.json and metadata.json."""

    n_clips: int = DEFAULT_CLIPS
    seed: int = 0
    sample_rate: int = 32000
    clip_seconds: float = 10.0
    max_instruments: int = 4
    p_annotate_positive: float = 0.8
    p_annotate_negative: float = 0.065
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)

    def __post_init__(self) -> None:
        if not isinstance(self.n_clips, (int, np.integer)) or self.n_clips < 1:
            raise ConfigError(f"n_clips={self.n_clips!r}; use a positive integer such as 2000.")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r}; use a non-negative integer.")
        if not isinstance(self.sample_rate, (int, np.integer)) or not (
            8000 <= self.sample_rate <= 96000
        ):
            raise ConfigError(
                f"sample_rate={self.sample_rate!r}; use a whole number of Hz in 8000..96000 "
                "(32000 is the default)."
            )
        if not 1.0 <= self.clip_seconds <= 60.0:
            raise ConfigError(
                f"clip_seconds={self.clip_seconds}; use 1..60 seconds (10 is the default)."
            )
        if not isinstance(self.max_instruments, (int, np.integer)) or not (
            1 <= self.max_instruments <= 4
        ):
            raise ConfigError(f"max_instruments={self.max_instruments!r}; use an integer in 1..4.")
        for name in ("p_annotate_positive", "p_annotate_negative"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}={getattr(self, name)}; use a probability in 0..1.")
        if len(self.split_fractions) != 3 or min(self.split_fractions) <= 0:
            raise ConfigError(
                f"split_fractions={self.split_fractions}; use three positive numbers."
            )

    def params(self) -> dict:
        """The JSON-able parameter record (with the generator version); numpy numbers, which the
        checks above accept, become Python ones."""
        record = {k: _plain(v) for k, v in asdict(self).items()}
        record["split_fractions"] = [_plain(f) for f in self.split_fractions]
        return {"generator_version": GENERATOR_VERSION, **record}


def _plain(value):
    """A numpy scalar as the Python number JSON can write; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


# ----------------------------------------------------------------------------- labels and tables


def annotation_mask(positives: np.ndarray, config: SynthConfig, index: int) -> np.ndarray:
    """OpenMIC-style mask of clip ``index`` (which labels were "checked"), from its positives."""
    rng = np.random.default_rng([config.seed, index, 1])
    p = np.where(positives, config.p_annotate_positive, config.p_annotate_negative)
    mask = rng.random(len(positives)) < p
    if not mask.any():
        mask[int(rng.choice(np.flatnonzero(positives)))] = True
    return mask


def _caption_facts(spec: ClipSpec) -> cap.CaptionFacts:
    names = tuple(get_class(s.class_id).name for s in spec.stems)
    families = tuple(dict.fromkeys(FAMILIES[get_class(s.class_id).family] for s in spec.stems))
    return cap.CaptionFacts(
        names,
        tuple(s.role for s in spec.stems),
        families,
        spec.tempo,
        spec.mood,
        spec.register,
        spec.dynamics,
    )


def _manifest(
    specs: list[ClipSpec], config: SynthConfig
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The manifest table, the true labels and the annotation mask of all clips."""
    classes = class_ids()
    labels = np.array([np.isin(classes, s.classes) for s in specs], dtype=bool)
    mask = np.stack([annotation_mask(labels[i], config, i) for i in range(len(specs))])
    split = stratified_split(
        labels, config.split_fractions, np.random.default_rng([config.seed, 0, 0, 3])
    )
    rows = []
    for i, spec in enumerate(specs):
        facts = _caption_facts(spec)
        captions = cap.make_captions(facts, np.random.default_rng([config.seed, i, 2]))
        stems = sorted(spec.stems, key=lambda s: classes.index(s.class_id))
        row = {
            "clip_id": clip_id(i),
            "path": f"audio/{clip_id(i)}.flac",
            "duration": spec.duration,
            "sample_rate": config.sample_rate,
            "split": SPLITS[split[i]],
            "labels": join_list(spec.classes),
            "annotated": join_list(c for c, m in zip(classes, mask[i]) if m),
            "families": join_list(dict.fromkeys(get_class(c).family for c in spec.classes)),
            "n_instruments": len(spec.stems),
            "programs": join_list(
                f"{s.class_id}:{'kit' if get_class(s.class_id).is_drum else s.program}"
                for s in stems
            ),
            "roles": join_list(f"{s.class_id}:{s.role}" for s in stems),
            "tempo": spec.tempo,
            "beats_per_bar": spec.beats_per_bar,
            "key": spec.key,
            "scale": spec.scale,
            "mood": spec.mood,
            "register": spec.register,
            "dynamics": spec.dynamics,
            "loudness_db": spec.loudness_db,
            **{f"caption_{k + 1}": text for k, text in enumerate(captions)},
            "keywords": join_list(cap.make_keywords(facts)),
        }
        rows.append(row)
    return pd.DataFrame(rows), labels, mask


def _metadata(
    config: SynthConfig, soundfont: dict, labels: np.ndarray, mask: np.ndarray, table: pd.DataFrame
) -> dict:
    """metadata.json: parameters, SoundFont, classes and hierarchy, mask and split statistics."""
    annotated = mask.sum()
    return {
        "name": "zskit synth",
        "generator": "zskit.data.synth",
        "generator_version": GENERATOR_VERSION,
        "captions_version": CAPTIONS_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": config.params(),
        "soundfont": soundfont,
        "n_clips": config.n_clips,
        "sample_rate": config.sample_rate,
        "clip_seconds": config.clip_seconds,
        "seed": config.seed,
        "audio": {"dir": "audio", "format": "FLAC", "subtype": FLAC_SUBTYPE, "channels": 1},
        "classes": [
            {
                "id": c.id,
                "name": c.name,
                "family": c.family,
                "family_name": FAMILIES[c.family],
                "gm_programs": list(c.programs),
                "gm_drum_notes": list(c.drum_notes),
                "midi_range": [c.low, c.high],
                "roles": list(c.roles),
                "openmic": c.openmic,
                "exclusive_group": c.exclusive,
            }
            for c in CLASSES
        ],
        "openmic_classes": list(OPENMIC_CLASSES),
        "families": [
            {"id": f, "name": FAMILIES[f], "classes": members} for f, members in hierarchy().items()
        ],
        "hierarchy": hierarchy(),
        "mask": {
            "p_annotate_positive": config.p_annotate_positive,
            "p_annotate_negative": config.p_annotate_negative,
            "density": round(float(annotated / mask.size), 4),
            "annotated_per_clip": round(float(annotated / len(mask)), 3),
            "positive_share": round(float((mask & labels).sum() / annotated), 4),
        },
        "splits": {s: int((table["split"] == s).sum()) for s in SPLITS},
        "class_counts": {c: int(n) for c, n in zip(class_ids(), labels.sum(axis=0))},
        "files": {"manifest": MANIFEST_NAME, "audio": "audio/<clip_id>.flac"},
    }


# ----------------------------------------------------------------------------- corpus folders


def default_corpus_dir(smoke: bool = False) -> Path:
    """``data_root()/synth`` (or ``synth-smoke``)."""
    return data_root() / ("synth-smoke" if smoke else "synth")


def _file_stamp(path: Path) -> dict:
    """Size and modification time of a file: when both are unchanged, so is its hash."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _soundfont_record(path: Path, out: Path) -> dict:
    """Name, sha256 prefix and path of the SoundFont.

    The hash recorded in ``out/params.json`` is reused when that record names the same path, size
    and modification time, so re-running on a finished corpus does not read a 141 MB SoundFont.
    """
    params_path = out / PARAMS_NAME
    if params_path.is_file():
        started = read_json(params_path)
        recorded = started.get("soundfont") or {}
        same_file = started.get("soundfont_file") == _file_stamp(path)
        if same_file and recorded.get("path") == str(path) and "sha256" in recorded:
            return {"name": path.name, "sha256": recorded["sha256"], "path": str(path)}
    return {**soundfont_info(path), "path": str(path)}


def _differences(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return "; ".join(
        f"{k}: existing {old.get(k)!r}, requested {new.get(k)!r}"
        for k in keys
        if old.get(k) != new.get(k)
    )


def _check_folder(out: Path, params: dict, soundfont: dict, explicit_soundfont: bool) -> bool:
    """True when ``out`` already holds this corpus complete; DataError when it holds another.

    A complete corpus made with another SoundFont is accepted unless ``soundfont=`` was explicit;
    an unfinished one is resumed only with the SoundFont it was started with.
    """
    hint = "Choose another output folder (--out) or delete this one."
    meta_path, params_path = out / METADATA_NAME, out / PARAMS_NAME
    if meta_path.is_file() and (out / MANIFEST_NAME).is_file():
        meta = read_json(meta_path)
        if meta.get("params") != params:
            changes = _differences(meta.get("params") or {}, params)
            raise DataError(f"{out} holds a corpus with other parameters ({changes}). {hint}")
        recorded = meta.get("soundfont", {})
        if explicit_soundfont and recorded.get("sha256") != soundfont["sha256"]:
            raise DataError(
                f"{out} was rendered with SoundFont {recorded}, not {soundfont}. {hint}"
            )
        audio = out / "audio"
        if all((audio / f"{clip_id(i)}.flac").is_file() for i in range(params["n_clips"])):
            return True
    if params_path.is_file():
        started = read_json(params_path)
        if started.get("params") != params:
            changes = _differences(started.get("params") or {}, params)
            raise DataError(
                f"{out} holds an unfinished corpus with other parameters ({changes}). {hint}"
            )
        recorded = started.get("soundfont", {})
        if recorded.get("sha256") != soundfont["sha256"]:
            raise DataError(
                f"{out} holds an unfinished corpus rendered with SoundFont {recorded}; this run "
                f"found {soundfont}. Resume it with soundfont={recorded.get('path')!r}, or: "
                f"{hint}"
            )
        return False
    if out.exists() and any(out.iterdir()):
        raise DataError(
            f"{out} is not empty and holds no zskit synth corpus (no {PARAMS_NAME}). {hint}"
        )
    return False


# ----------------------------------------------------------------------------- generation


def generate_corpus(
    out_dir: str | Path | None = None,
    n_clips: int | None = None,
    seed: int = 0,
    *,
    smoke: bool = False,
    sample_rate: int = 32000,
    clip_seconds: float = 10.0,
    max_instruments: int = 4,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    p_annotate_positive: float = 0.8,
    p_annotate_negative: float = 0.065,
    soundfont: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Render the corpus into ``out_dir`` (default ``default_corpus_dir(smoke)``) and return it.

    ``n_clips`` defaults to 2,000 (100 with ``smoke``); the other content parameters are those of
    ``SynthConfig``. A complete corpus with the same parameters is returned untouched (without
    re-hashing the SoundFont), except that captions written by an older zskit are rewritten (the
    audio is kept); an interrupted one is resumed (clips on disk are kept); a folder holding
    other parameters raises DataError. ``workers`` processes (default: all CPUs) each load the
    SoundFont once.
    """
    if n_clips is None:
        n_clips = SMOKE_CLIPS if smoke else DEFAULT_CLIPS
    config = SynthConfig(
        n_clips=n_clips,
        seed=seed,
        sample_rate=sample_rate,
        clip_seconds=float(clip_seconds),
        max_instruments=max_instruments,
        p_annotate_positive=p_annotate_positive,
        p_annotate_negative=p_annotate_negative,
        split_fractions=tuple(split_fractions),
    )
    out = Path(out_dir).expanduser() if out_dir is not None else default_corpus_dir(smoke)
    sf_path = find_soundfont(soundfont)
    sf_record = _soundfont_record(sf_path, out)
    params = config.params()
    explicit = bool(soundfont or os.environ.get("ZSKIT_SOUNDFONT"))
    if _check_folder(out, params, sf_record, explicit_soundfont=explicit):
        meta = read_json(out / METADATA_NAME)
        if meta.get("captions_version") == CAPTIONS_VERSION:
            logger.info("%s already holds the complete corpus; nothing to do.", out)
            return out
        logger.info("%s: rewriting captions made by an older zskit (the audio is kept).", out)
        sf_record = meta.get("soundfont", sf_record)  # the SoundFont the audio was rendered with
    else:
        audio_dir = out / "audio"
        audio_dir.mkdir(parents=True, exist_ok=True)
        started = {"params": params, "soundfont": sf_record, "soundfont_file": _file_stamp(sf_path)}
        write_json(out / PARAMS_NAME, started)
        for stale in audio_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        missing = [
            i for i in range(config.n_clips) if not (audio_dir / f"{clip_id(i)}.flac").is_file()
        ]
        logger.info(
            "Rendering %d of %d clips into %s with %s",
            len(missing), config.n_clips, out, sf_path.name,
        )
        if missing and not explicit and sf_path.name == "TimGM6mb.sf2":
            logger.warning(
                "FluidR3_GM.sf2 is not installed (apt-get install fluid-soundfont-gm); rendering "
                "with pretty_midi's TimGM6mb.sf2, which sounds less realistic (metadata.json and "
                "every figure's data name it)."
            )
        _render_missing(missing, config, str(sf_path), audio_dir, workers, progress)

    specs = [
        clip_spec(i, config.seed, config.clip_seconds, config.max_instruments)
        for i in range(config.n_clips)
    ]
    table, labels, mask = _manifest(specs, config)
    write_manifest(table, out / MANIFEST_NAME)
    write_json(out / METADATA_NAME, _metadata(config, sf_record, labels, mask, table))
    return out


def ensure_corpus(smoke: bool = False, **kwargs) -> Path:
    """The corpus folder (``out_dir`` or the default one), generating only what is missing."""
    out_dir = kwargs.pop("out_dir", None)
    return generate_corpus(
        out_dir if out_dir is not None else default_corpus_dir(smoke), smoke=smoke, **kwargs
    )


# ----------------------------------------------------------------------------- the process pool


def _render_missing(
    missing: list[int],
    config: SynthConfig,
    soundfont: str,
    audio_dir: Path,
    workers: int | None,
    progress: bool,
) -> None:
    """Render clips ``missing`` in ``workers`` processes, or here if one worker (or the pool fails)."""
    from tqdm.auto import tqdm

    jobs = [
        RenderJob(
            i,
            config.seed,
            config.clip_seconds,
            config.max_instruments,
            config.sample_rate,
            soundfont,
            str(audio_dir / f"{clip_id(i)}.flac"),
        )
        for i in missing
    ]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    with tqdm(total=len(jobs), desc="synth corpus", unit="clip", disable=not progress) as bar:
        if workers > 1:
            try:
                _render_in_pool(jobs, workers, soundfont, config.sample_rate, bar)
                return
            except BrokenProcessPool as err:
                # e.g. a script read from stdin, which spawned workers cannot re-import
                logger.warning(
                    "Worker processes failed (%s); rendering the rest in this process.", err
                )
        for job in jobs:
            if not Path(job.path).is_file():
                _render_job(job)
                bar.update()


def _render_in_pool(
    jobs: list[RenderJob], workers: int, soundfont: str, sample_rate: int, bar
) -> None:
    chunks = [jobs[k : k + JOBS_PER_TASK] for k in range(0, len(jobs), JOBS_PER_TASK)]
    ctx = multiprocessing.get_context("spawn")  # safe beside threads (torch) in the parent
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(soundfont, sample_rate)
    ) as pool:
        for done in as_completed([pool.submit(_render_jobs, chunk) for chunk in chunks]):
            bar.update(len(done.result()))
