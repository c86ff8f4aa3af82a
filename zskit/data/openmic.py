"""OpenMIC-2018 (Humphrey, Durand and McFee, 2018): 20,000 ten-second clips, 20 instruments.

``download_openmic(target_dir)`` fetches the Zenodo archive ``openmic-2018-v1.0.0.tgz`` (2.6 GB,
md5-checked) and unpacks it; ``prepare_openmic(corpus_dir)`` turns the unpacked ``openmic-2018/``
folder into a zskit corpus folder. Every function here also accepts the folder that contains
``openmic-2018/``; ``zskit.data.load_corpus`` does not, so pass it
``openmic_dataset_folder(corpus_dir)``.

The archive holds ``openmic-2018.npz`` with ``X`` (N, 10, 128) uint8 VGGish features (one frame
per 0.96 s), ``Y_true`` (N, 20) aggregated label confidences (0.5 where unobserved), ``Y_mask``
(N, 20) which labels were observed and ``sample_key`` (N,); ``class-map.json`` (name -> column);
``partitions/split01_train.csv`` and ``split01_test.csv`` (one sample key per line) and the audio
as ``audio/<first 3 characters of the key>/<key>.ogg``.

Labels are partial: a clip is positive for a class when it was observed (``Y_mask``) and
``Y_true >= 0.5``; the manifest's ``annotated`` column carries the mask, so ``Corpus.mask`` is
``Y_mask``. :func:`openmic_vggish_embeddings` serves the released VGGish features as an
embedding source aligned with the manifest (mean over the 10 frames), so experiments can run
without the audio.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zskit.data.download import RemoteFile, download_and_extract
from zskit.data.manifest import (
    MANIFEST_NAME,
    METADATA_NAME,
    atomic_write_bytes,
    join_list,
    read_manifest,
    write_json,
    write_manifest,
)
from zskit.data.prepare import corpus_root
from zskit.data.splits import stratified_split
from zskit.errors import ConfigError, DataError

__all__ = [
    "OPENMIC_ARCHIVE",
    "OpenMICArrays",
    "audio_path",
    "download_openmic",
    "load_openmic_arrays",
    "openmic_dataset_folder",
    "openmic_vggish_embeddings",
    "prepare_openmic",
    "read_class_map",
    "read_partition",
]

log = logging.getLogger(__name__)

#: The Zenodo record 1432913 archive. The md5 and size are those Zenodo lists for the file.
OPENMIC_ARCHIVE = RemoteFile(
    "https://zenodo.org/records/1432913/files/openmic-2018-v1.0.0.tgz",
    md5="e4ccf187e2bb5ab2e115416e8aafe7f4",
    size=2_623_376_754,
    licence="CC BY 4.0 (labels and features); audio from the Free Music Archive under the "
            "Creative Commons licence of each track (openmic-2018-metadata.csv)",
)

NPZ_NAME = "openmic-2018.npz"
CLASS_MAP_NAME = "class-map.json"
POSITIVE_THRESHOLD = 0.5  # Y_true >= 0.5 on an observed label is a positive (the data set's rule)
VGGISH_HOP_SECONDS = 0.96
# VGGish's released features are PCA-whitened, clipped to [-2, 2] and quantised to 0..255.
_QUANT_MIN, _QUANT_MAX = -2.0, 2.0


@dataclass(frozen=True)
class OpenMICArrays:
    """The contents of ``openmic-2018.npz``."""

    X: np.ndarray  # (N, 10, 128) uint8 VGGish features
    Y_true: np.ndarray  # (N, C) float label confidences
    Y_mask: np.ndarray  # (N, C) bool, True where the label was observed
    sample_key: np.ndarray  # (N,) str


def audio_path(sample_key: str) -> str:
    """The audio file of a sample key, relative to the data set folder."""
    return f"audio/{sample_key[:3]}/{sample_key}.ogg"


def download_openmic(
    target_dir: str | os.PathLike | None = None, *, remote: RemoteFile = OPENMIC_ARCHIVE,
    progress: bool = True,
) -> Path:
    """Download (md5-checked) and unpack OpenMIC-2018 under ``target_dir``.

    Default ``data_root()/openmic``. Returns the data set folder (the one holding
    ``openmic-2018.npz``). Safe to re-run: a completed extraction is found and nothing is
    fetched again.
    """
    target = corpus_root(target_dir, "openmic")
    extracted = download_and_extract(remote, target / "extracted", archive_dir=target,
                                      progress=progress)
    return openmic_dataset_folder(extracted)


def openmic_dataset_folder(root: str | os.PathLike) -> Path:
    """The OpenMIC-2018 folder (the one holding ``openmic-2018.npz``): ``root`` itself or its
    single sub-folder that holds it, so the folder ``openmic-2018/`` unpacks into (e.g.
    ``<target>/extracted``) works too. ``load_corpus`` needs this folder once
    :func:`prepare_openmic` has written its manifest there."""
    root = Path(root)
    if (root / NPZ_NAME).is_file():
        return root
    found = sorted(p.parent for p in root.glob(f"*/{NPZ_NAME}"))
    if len(found) != 1:
        raise DataError(f"{root} holds no OpenMIC-2018 folder (openmic-2018.npz, class-map.json, "
                        "partitions/); download it with download_openmic().")
    return found[0]


def read_class_map(corpus_dir: str | os.PathLike) -> list[str]:
    """Class names in column order, from ``class-map.json`` (name -> column index)."""
    path = openmic_dataset_folder(corpus_dir) / CLASS_MAP_NAME
    try:
        mapping = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; the OpenMIC folder is incomplete. Download "
                        "it again.") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); download the data set again.") from None
    if not isinstance(mapping, dict):
        raise DataError(f"{path} holds a {type(mapping).__name__}, not OpenMIC's class map "
                        "(an object: class name -> column); download the data set again.")
    if sorted(mapping.values()) != list(range(len(mapping))):
        raise DataError(f"{path} must map each class to a distinct column 0..{len(mapping) - 1}; "
                        f"found {sorted(mapping.values())}.")
    return sorted(mapping, key=mapping.__getitem__)


def read_partition(path: str | os.PathLike) -> list[str]:
    """The sample keys of a split file (one per line; a ``sample_key`` header is skipped)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"Split file {path} does not exist; OpenMIC ships partitions/"
                        "split01_train.csv and split01_test.csv.") from None
    keys = [line.strip().strip('"') for line in lines if line.strip()]
    return keys[1:] if keys and keys[0] == "sample_key" else keys


def load_openmic_arrays(corpus_dir: str | os.PathLike) -> OpenMICArrays:
    """Read ``openmic-2018.npz`` and check its shapes against each other."""
    path = openmic_dataset_folder(corpus_dir) / NPZ_NAME
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = OpenMICArrays(
                X=npz["X"], Y_true=npz["Y_true"], Y_mask=npz["Y_mask"].astype(bool),
                sample_key=npz["sample_key"].astype(str),
            )
    except KeyError as err:
        raise DataError(f"{path} lacks the array {err}; it needs X, Y_true, Y_mask and "
                        "sample_key. Download the data set again.") from None
    except (OSError, ValueError) as err:
        raise DataError(f"Could not read {path} ({err}); download the data set again.") from None
    n = len(arrays.sample_key)
    if arrays.X.ndim != 3 or len(arrays.X) != n:
        raise DataError(f"{path}: X has shape {arrays.X.shape}, expected ({n}, frames, 128).")
    if arrays.Y_true.shape != arrays.Y_mask.shape or len(arrays.Y_true) != n:
        raise DataError(f"{path}: Y_true {arrays.Y_true.shape} and Y_mask {arrays.Y_mask.shape} "
                        f"must both be ({n}, classes).")
    return arrays


def prepare_openmic(
    corpus_dir: str | os.PathLike,
    *,
    partition: str = "split01",
    validation_fraction: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Write ``manifest.csv`` and ``metadata.json`` into an unpacked OpenMIC-2018 folder.

    Rows follow ``openmic-2018.npz`` (so the VGGish features align with them). Splits come from
    ``partitions/<partition>_train.csv`` and ``_test.csv``; ``validation_fraction`` > 0 moves that
    share of the training clips to a ``validation`` split by iterative stratification on the
    positives (paper 3 holds out 15%). Columns: clip_id (sample key), path, split, labels
    (observed positives), annotated (observed classes), relevance (``class:Y_true`` of the
    observed classes) and has_audio. Missing audio files are listed in ``missing_audio.txt`` and
    logged, not fatal: the released features still work. Returns the manifest.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ConfigError(f"validation_fraction={validation_fraction} must be in [0, 1).")
    root = openmic_dataset_folder(corpus_dir)
    classes = read_class_map(root)
    arrays = load_openmic_arrays(root)
    if arrays.Y_true.shape[1] != len(classes):
        raise DataError(f"{root}: Y_true has {arrays.Y_true.shape[1]} columns but class-map.json "
                        f"names {len(classes)} classes; the files do not belong together.")
    keys = list(arrays.sample_key)
    split = np.full(len(keys), "unused", dtype=object)
    index = {k: i for i, k in enumerate(keys)}
    for name in ("train", "test"):
        part = read_partition(root / "partitions" / f"{partition}_{name}.csv")
        unknown = [k for k in part if k not in index]
        if unknown:
            raise DataError(f"{partition}_{name}.csv lists {len(unknown)} sample keys that are "
                            f"not in {NPZ_NAME} (e.g. {unknown[:3]}); the files do not belong "
                            "together.")
        split[[index[k] for k in part]] = name
    if (split == "unused").any():
        log.warning("%d OpenMIC clips are in neither split of %s; their split is 'unused'",
                    int((split == "unused").sum()), partition)
    positive = arrays.Y_mask & (arrays.Y_true >= POSITIVE_THRESHOLD)
    if validation_fraction > 0:
        train = np.flatnonzero(split == "train")
        part = stratified_split(positive[train], (1 - validation_fraction, validation_fraction),
                                np.random.default_rng(seed))
        split[train[part == 1]] = "validation"
    paths = [audio_path(k) for k in keys]
    has_audio = np.array([(root / p).is_file() for p in paths])
    manifest = pd.DataFrame({
        "clip_id": keys,
        "path": paths,
        "split": split,
        "labels": [join_list(c for c, p in zip(classes, row) if p) for row in positive],
        "annotated": [join_list(c for c, m in zip(classes, row) if m) for row in arrays.Y_mask],
        "relevance": [join_list(f"{c}:{y:.4f}" for c, y, m in zip(classes, yt, ym) if m)
                      for yt, ym in zip(arrays.Y_true, arrays.Y_mask)],
        "has_audio": has_audio,
    })
    missing = [p for p, ok in zip(paths, has_audio) if not ok]
    atomic_write_bytes(root / "missing_audio.txt", "".join(f"{p}\n" for p in missing).encode())
    if missing:
        log.warning("%d of %d OpenMIC audio files are missing under %s (listed in "
                    "missing_audio.txt); the VGGish features still cover every clip",
                    len(missing), len(paths), root)
    write_manifest(manifest, root / MANIFEST_NAME)
    write_json(root / METADATA_NAME, {
        "name": "OpenMIC-2018",
        "source": "https://zenodo.org/records/1432913",
        "licence": OPENMIC_ARCHIVE.licence,
        "partition": partition,
        "validation_fraction": validation_fraction,
        "seed": seed,
        "positive_rule": f"Y_mask and Y_true >= {POSITIVE_THRESHOLD}",
        "splits": {s: int((split == s).sum()) for s in dict.fromkeys(split)},
        "n_missing_audio": len(missing),
        "vggish": {"file": NPZ_NAME, "frames": int(arrays.X.shape[1]),
                   "dim": int(arrays.X.shape[2]), "hop_seconds": VGGISH_HOP_SECONDS},
        "classes": [{"id": c, "name": c.replace("_", " "), "index": i}
                    for i, c in enumerate(classes)],
    })
    return manifest


def openmic_vggish_embeddings(
    corpus_dir: str | os.PathLike,
    clip_ids: list[str] | None = None,
    *,
    dequantize: bool = True,
) -> np.ndarray:
    """The released VGGish features as ``(N, 128)`` float32 clip embeddings (mean over frames).

    Rows follow ``clip_ids`` (default: the manifest's clip_id column, so they align with
    ``load_corpus(corpus_dir)`` and its splits). ``dequantize`` maps the uint8 codes back to
    VGGish's [-2, 2] range before averaging.
    """
    root = openmic_dataset_folder(corpus_dir)
    if clip_ids is None:
        clip_ids = read_manifest(root / MANIFEST_NAME, ["clip_id"])["clip_id"].astype(str).tolist()
    arrays = load_openmic_arrays(root)
    index = {k: i for i, k in enumerate(arrays.sample_key)}
    unknown = [k for k in clip_ids if k not in index]
    if unknown:
        raise DataError(f"{len(unknown)} clip ids are not OpenMIC sample keys (e.g. "
                        f"{unknown[:3]}); pass ids from this data set's manifest.")
    frames = arrays.X[[index[k] for k in clip_ids]].astype(np.float32)
    if dequantize:
        frames = frames * np.float32((_QUANT_MAX - _QUANT_MIN) / 255.0) + np.float32(_QUANT_MIN)
    return frames.mean(axis=1)
