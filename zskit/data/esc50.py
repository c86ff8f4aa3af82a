"""ESC-50 (Piczak, 2015): 2,000 five-second clips, 50 classes in 5 parent categories, 5 folds.

``download_esc50(target_dir)`` fetches the official archive (the GitHub ``master`` zip of
karolpiczak/ESC-50, about 600 MB, CC BY-NC 3.0) and unpacks it; ``prepare_esc50(corpus_dir)``
turns the unpacked folder (``meta/esc50.csv`` + ``audio/*.wav``, 44.1 kHz mono) into a zskit
corpus folder, so ``zskit.data.load_corpus(corpus_dir)`` works on it.

``meta/esc50.csv`` has the columns filename, fold, target, category, esc10, src_file, take;
``category`` is the class (``dog``), ``target`` its index 0-49. Clips from one source recording
share a fold. The five parent categories (paper 1 reports 10-way top-1 within each) are not in
the csv: :data:`CATEGORIES` holds them as a fact table, from the data set's README.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from zskit.data.download import RemoteFile, download_and_extract
from zskit.data.manifest import MANIFEST_NAME, METADATA_NAME, write_json, write_manifest
from zskit.data.prepare import corpus_root
from zskit.errors import ConfigError, DataError

__all__ = [
    "CATEGORIES",
    "CATEGORY_NAMES",
    "CLASS_NAMES",
    "ESC50_ARCHIVE",
    "ESC50_CLASSES",
    "class_category",
    "download_esc50",
    "prepare_esc50",
    "read_esc50_meta",
]

log = logging.getLogger(__name__)

#: The official archive. GitHub builds branch zips on the fly, so no fixed checksum exists.
ESC50_ARCHIVE = RemoteFile(
    "https://github.com/karolpiczak/ESC-50/archive/master.zip",
    filename="ESC-50-master.zip",
    licence="CC BY-NC 3.0 (clips from freesound.org; attribution in the data set's README)",
    mirrors=("https://github.com/karoldvl/ESC-50/archive/master.zip",),
)

#: Parent category id -> the official category name (the README's column headers).
CATEGORY_NAMES: dict[str, str] = {
    "animals": "Animals",
    "natural": "Natural soundscapes & water sounds",
    "human": "Human, non-speech sounds",
    "interior": "Interior/domestic sounds",
    "exterior": "Exterior/urban noises",
}

#: Parent category id -> its 10 classes (csv ``category`` values) in ``target`` order:
#: ``target = 10 * category position + class position`` (dog 0 ... hand_saw 49).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "animals": ("dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep",
                "crow"),
    "natural": ("rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds",
                "water_drops", "wind", "pouring_water", "toilet_flush", "thunderstorm"),
    "human": ("crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps",
              "laughing", "brushing_teeth", "snoring", "drinking_sipping"),
    "interior": ("door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks",
                 "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick",
                 "glass_breaking"),
    "exterior": ("helicopter", "chainsaw", "siren", "car_horn", "engine", "train",
                 "church_bells", "airplane", "fireworks", "hand_saw"),
}

#: The 50 class ids in target order.
ESC50_CLASSES: tuple[str, ...] = tuple(c for members in CATEGORIES.values() for c in members)

#: Class id -> display name as the README writes it (the text label encoders see).
CLASS_NAMES: dict[str, str] = {
    **{c: c.replace("_", " ") for c in ESC50_CLASSES},
    "insects": "insects (flying)",
    "door_wood_knock": "door knock",
    "door_wood_creaks": "door, wood creaks",
    "drinking_sipping": "drinking, sipping",
}

META_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
SAMPLE_RATE = 44100
CLIP_SECONDS = 5.0


def class_category(class_id: str) -> str:
    """The parent category id of an ESC-50 class id (``"dog"`` -> ``"animals"``)."""
    for category, members in CATEGORIES.items():
        if class_id in members:
            return category
    raise ConfigError(f"{class_id!r} is not an ESC-50 class; the classes are {ESC50_CLASSES}.")


def download_esc50(
    target_dir: str | os.PathLike | None = None, *, remote: RemoteFile = ESC50_ARCHIVE,
    progress: bool = True,
) -> Path:
    """Download and unpack ESC-50 under ``target_dir`` (default ``data_root()/esc50``).

    Returns the data set folder (the one holding ``meta/`` and ``audio/``). Safe to re-run: a
    completed extraction is found and nothing is fetched again.
    """
    target = corpus_root(target_dir, "esc50")
    extracted = download_and_extract(remote, target / "extracted", archive_dir=target,
                                      progress=progress)
    return _dataset_folder(extracted)


def _dataset_folder(root: Path) -> Path:
    """``root`` or its single sub-folder that holds ``meta/esc50.csv``."""
    if (root / "meta" / "esc50.csv").is_file():
        return root
    found = sorted(p.parent.parent for p in root.glob("*/meta/esc50.csv"))
    if len(found) != 1:
        raise DataError(f"{root} holds no ESC-50 folder (meta/esc50.csv + audio/); delete it and "
                        "download again.")
    return found[0]


def read_esc50_meta(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check ``meta/esc50.csv`` against the fact table (columns, classes, targets)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; download ESC-50 first (download_esc50).")
    try:
        df = pd.read_csv(path, dtype={"filename": str, "category": str, "src_file": str,
                                      "take": str}, keep_default_na=False)
    except ValueError as err:  # empty file, not UTF-8, broken quoting
        raise DataError(f"Could not read {path} ({err}); it is not ESC-50's meta file. Download "
                        "ESC-50 again (download_esc50).") from None
    missing = [c for c in META_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path} lacks the columns {missing} (it has {list(df.columns)}); it is "
                        "not ESC-50's meta file.")
    unknown = sorted(set(df["category"]) - set(ESC50_CLASSES))
    if unknown:
        raise DataError(f"{path} names classes ESC-50 does not have: {unknown[:5]}; it is not "
                        "ESC-50's meta file. Download ESC-50 again (download_esc50).")
    wrong = df[df["target"] != df["category"].map(ESC50_CLASSES.index)]
    if len(wrong):
        row = wrong.iloc[0]
        raise DataError(f"{path}: {row['filename']} has target {row['target']} for class "
                        f"{row['category']!r}, expected {ESC50_CLASSES.index(row['category'])}.")
    repeated = sorted(set(df["filename"][df["filename"].duplicated()]))
    if repeated:
        raise DataError(f"{path} lists clips more than once ({len(repeated)}, e.g. {repeated[:3]}), "
                        "which would put one clip in two folds; download ESC-50 again.")
    if not set(df["fold"]).issubset({1, 2, 3, 4, 5}):
        raise DataError(f"{path}: folds must be 1-5, found {sorted(set(df['fold']))}.")
    df["esc10"] = df["esc10"].astype(str).str.lower().eq("true")
    return df


def prepare_esc50(corpus_dir: str | os.PathLike, *, split: str = "fold") -> pd.DataFrame:
    """Write ``manifest.csv`` and ``metadata.json`` into an unpacked ESC-50 folder.

    ``split="fold"`` names each clip's split after its fold (``fold1`` ... ``fold5``); any other
    value puts every clip in that one split (e.g. ``"test"`` for zero-shot evaluation). Besides
    the corpus columns the manifest keeps fold, target, esc10, src_file and take, and adds the
    parent ``category``. Metadata classes carry the parent category as ``family`` (so
    ``metadata["hierarchy"]`` groups the 50 classes into the 5 categories). Returns the manifest.
    """
    root = _dataset_folder(Path(corpus_dir))
    meta = read_esc50_meta(root / "meta" / "esc50.csv")
    absent = [f for f in meta["filename"] if not (root / "audio" / f).is_file()]
    if absent:
        raise DataError(f"{len(absent)} of {len(meta)} ESC-50 clips are missing under "
                        f"{root / 'audio'} (e.g. {absent[:3]}); download the data set again.")
    manifest = pd.DataFrame({
        "clip_id": meta["filename"].str.removesuffix(".wav"),
        "path": "audio/" + meta["filename"],
        "split": "fold" + meta["fold"].astype(str) if split == "fold" else split,
        "labels": meta["category"],
        "category": meta["category"].map(class_category),
        "fold": meta["fold"],
        "target": meta["target"],
        "esc10": meta["esc10"],
        "src_file": meta["src_file"],
        "take": meta["take"],
    })
    write_manifest(manifest, root / MANIFEST_NAME)
    write_json(root / METADATA_NAME, {
        "name": "ESC-50",
        "source": "https://github.com/karolpiczak/ESC-50",
        "licence": ESC50_ARCHIVE.licence,
        "sample_rate": SAMPLE_RATE,
        "clip_seconds": CLIP_SECONDS,
        "classes": [{"id": c, "name": CLASS_NAMES[c], "family": class_category(c),
                     "family_name": CATEGORY_NAMES[class_category(c)],
                     "target": i} for i, c in enumerate(ESC50_CLASSES)],
        "families": [{"id": f, "name": CATEGORY_NAMES[f], "classes": list(m)}
                     for f, m in CATEGORIES.items()],
        "hierarchy": {f: list(m) for f, m in CATEGORIES.items()},
        "folds": {f"fold{k}": int((meta["fold"] == k).sum()) for k in range(1, 6)},
    })
    log.info("ESC-50 corpus: %d clips in %s", len(manifest), root)
    return manifest
