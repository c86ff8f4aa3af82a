"""Paper 1's zero-shot evaluation: training-class conditions, runs over label spaces and seeds, mAP
against the random baseline with bootstrap intervals, top-1 classification, and the semantic
distance analysis.

The unit of work is a :class:`Condition`: which classes train the projection and which are tested.
Class folds, the "near" and "distant" conditions, the OpenMIC conditions and the supervised upper
bound are all lists of conditions; :func:`evaluate` runs each one for every label space and seed
and keeps the test-clip scores, and :class:`Evaluation` turns those into tables.

Protocol (paper 1, section VI):

- the projection is trained on the ``train`` split with the labels of the condition's training
  classes only; the ``validation`` split and ~10 % of the training classes select the epoch
  (:class:`~zskit.models.zeroshot.ZeroShotTagger`); the test classes are scored on the
  ``test`` split (or on every clip of another data set, e.g. ESC-50 after training on AudioSet);
- ``clip_policy="paper"`` keeps training clips that contain a test class (its labels are simply
  not used) and, like the paper's balanced sampler, drops clips left with no positive training
  label; ``"strict"`` also drops every training and validation clip that holds a test class
  (testing on another data set: a class the condition left out of training);
- mAP is the macro mean of per-class AP over the test classes with a positive among the evaluated
  clips; the random baseline is the exact expected mAP of a random ranking on the same entries.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from tqdm.auto import tqdm

from zskit import viz
from zskit.data.esc50 import CATEGORY_NAMES
from zskit.errors import ConfigError, DataError
from zskit.label_matching import label_transfer_weights
from zskit.metrics import (
    average_precision_per_class,
    random_average_precision,
    top1_accuracy,
    top1_accuracy_by_group,
    within_group_top1,
)
from zskit.models.zeroshot import (
    CachedLabelEncoder,
    ZeroShotConfig,
    ZeroShotTagger,
    choose_selection_classes,
)

__all__ = [
    "CLIP_POLICIES",
    "DATASETS",
    "PAPER1",
    "PAPER1_PEARSON_R",
    "PAPER1_RANDOM",
    "Condition",
    "Evaluation",
    "TaggingData",
    "create_audio_encoder_by_spec",
    "create_label_encoder",
    "embedded_corpus",
    "evaluate",
    "fold_conditions",
    "near_distant_conditions",
    "openmic_conditions",
    "paper_conditions",
    "pearson_with_ci",
    "pretraining_caveat",
    "proximity_figure",
    "run_condition",
    "supervised_condition",
]

log = logging.getLogger(__name__)

AUDIOSET_CLASS_COUNTS = (521, 527)  # AudioSet's classes in YAMNet's release and in the data set
CLIP_POLICIES = ("paper", "strict")
DATASETS = ("synth", "audioset", "esc50", "openmic")

#: Paper 1's published figures as fractions (the paper prints %), per audio embedding model.
PAPER1: dict[str, dict[str, Any]] = {
    encoder: {
        "zs_map_folds": {"word2vec": w2v[:5], "glove": glove[:5]},  # Table II, folds 0-4
        "zs_map_mean": {"word2vec": w2v[5], "glove": glove[5]},  # Table II, mean over folds
        "supervised_folds": sup[:5],  # Table I: supervised mAP on each fold's training classes
        "supervised_avg": sup[5],  # Table I "avg"
        "supervised_esc50": sup[6], "supervised_openmic": sup[7],
        "supervised_all": sup[8],  # Table I "all": the fully supervised upper bound
        # Table III (Word2Vec): 10-way within each ESC-50 category (keyed by its official name,
        # the corpus' family_name) and "All", the 50-way accuracy
        "esc50_top1": dict(zip([*CATEGORY_NAMES.values(), "All"], esc)),
        "openmic_map": dict(zip(("C\\C_inst", "C\\C_MIC", "C"), openmic)),  # Table IV (Word2Vec)
    }
    for encoder, w2v, glove, sup, esc, openmic in (
        ("vggish", (.0891, .0776, .0915, .0699, .0667, .0790),
         (.0901, .0771, .0915, .0701, .0675, .0793),
         (.3773, .3568, .3624, .3607, .3769, .3612, .3771, .3633, .3831),
         (.385, .385, .215, .538, .508, .315), (.6032, .6743, .7731)),
        ("cnn14", (.0982, .0872, .1041, .0788, .0767, .0890),
         (.0992, .0885, .1027, .0788, .0773, .0893),
         (.3976, .3945, .4028, .4002, .4196, .4029, .4011, .3848, .4086),
         (.458, .422, .304, .543, .567, .358), (.5877, .6835, .787)),
        ("passt", (.1112, .0960, .1044, .0895, .0829, .0968),
         (.1096, .0985, .1062, .0889, .0827, .0972),
         (.4255, .4279, .4373, .4409, .4511, .4365, .4349, .4117, .4523),
         (.438, .483, .350, .590, .590, .405), (.6038, .6904, .8047)),
    )
}
PAPER1_RANDOM = {"audioset_map": 0.004, "openmic_map": 0.40}  # the random baselines it quotes
PAPER1_PEARSON_R = 0.22  # AP gain over random vs nearest-neighbour proximity (section VII.A)


# ---------------------------------------------------------------------------------------------
# Data and conditions


@dataclass(frozen=True)
class TaggingData:
    """Embedded clips with labels: what every condition trains and evaluates on."""

    embeddings: np.ndarray  # (N, D) frozen audio embeddings
    labels: np.ndarray  # (N, C) 0/1
    splits: np.ndarray  # (N,) "train" / "validation" / "test"
    classes: list[str]  # C class ids
    names: list[str]  # C names given to the label encoder
    mask: np.ndarray | None = None  # (N, C) True where a label is known; None: all known
    groups: list[str] | None = None  # parent category of each class (families, ESC-50 categories)

    def __post_init__(self) -> None:
        n, c = np.shape(self.labels)
        if np.shape(self.embeddings)[0] != n or len(self.splits) != n:
            raise DataError(f"embeddings ({np.shape(self.embeddings)[0]} rows), labels ({n}) and "
                            f"splits ({len(self.splits)}) must describe the same clips; embed "
                            "the corpus in manifest order.")
        if len(self.classes) != c or len(self.names) != c:
            raise DataError(f"labels have {c} columns but {len(self.classes)} class ids and "
                            f"{len(self.names)} names were given; pass one of each per column.")
        if self.mask is not None and np.shape(self.mask) != (n, c):
            raise DataError(f"mask has shape {np.shape(self.mask)}, labels {(n, c)}; pass a mask of "
                            "the labels' shape (True where a label is known) or None.")
        if self.groups is not None and len(self.groups) != c:
            raise DataError(f"groups names {len(self.groups)} categories for {c} classes; pass "
                            "one group per label column, or None.")
        repeated = sorted({k for k in self.classes if self.classes.count(k) > 1})
        if repeated:  # index() could only ever reach the last column of each
            raise DataError(f"class ids {repeated[:10]} appear more than once; give every label "
                            "column its own id (merge or rename the repeated columns).")

    @classmethod
    def from_corpus(cls, corpus: Any, embeddings: np.ndarray, *, use_mask: bool = False,
                    group_key: str | None = "family_name") -> TaggingData:
        """From a :class:`~zskit.data.manifest.Corpus` and its embeddings (rows in manifest order).

        ``use_mask``: keep the corpus' partial-label mask (OpenMIC style) for training and
        scoring; otherwise the full truth is used. ``group_key``: the metadata field of each class
        that names its parent category (``family_name`` on the synthetic corpus), or None.
        """
        meta = {c["id"]: c for c in corpus.metadata.get("classes", [])}
        groups = None
        if group_key is not None and all(group_key in meta.get(c, {}) for c in corpus.classes):
            groups = [str(meta[c][group_key]) for c in corpus.classes]
        return cls(embeddings=np.asarray(embeddings, dtype=np.float32),
                   labels=np.asarray(corpus.labels), splits=corpus.manifest["split"].to_numpy(),
                   classes=list(corpus.classes), names=list(corpus.class_names),
                   mask=np.asarray(corpus.mask) if use_mask else None, groups=groups)

    def rows(self, split: str | None) -> np.ndarray:
        """Row indices of ``split`` (all rows for None)."""
        if split is None:
            return np.arange(len(self.splits))
        rows = np.flatnonzero(self.splits == split)
        if not len(rows):
            raise DataError(f"no clip is in split {split!r}; splits present: "
                            f"{sorted(set(self.splits.tolist()))}.")
        return rows

    def index(self, class_ids: Sequence[str]) -> list[int]:
        """Column of each class id; an unknown id raises ConfigError naming it."""
        where = {c: j for j, c in enumerate(self.classes)}
        unknown = [c for c in class_ids if c not in where]
        if unknown:
            raise ConfigError(f"classes {unknown[:5]} are not in this data set "
                              f"({', '.join(self.classes[:6])}, ...); use its class ids.")
        return [where[c] for c in class_ids]

    def group_members(self) -> dict[str, list[str]]:
        """Parent category -> its class ids (in column order); empty without groups."""
        out: dict[str, list[str]] = {}
        for c, g in zip(self.classes, self.groups or []):
            out.setdefault(g, []).append(c)
        return out


@dataclass(frozen=True)
class Condition:
    """One training/test class split: ``train`` classes teach the projection, ``test`` are scored."""

    name: str  # e.g. "fold 0", "near 3", "distant: brass", "C\\C_MIC", "supervised"
    train: tuple[str, ...]  # class ids of the training data
    test: tuple[str, ...]  # class ids of the evaluated data
    kind: str = "zero-shot"  # a label to group conditions by: fold, near, distant, openmic, ...
    keep: tuple[str, ...] = ()  # training classes never held out for model selection
    unseen: bool | None = None  # are the test classes unseen in training? None: compare class ids

    def __post_init__(self) -> None:
        stray = sorted(set(self.keep) - set(self.train))
        if stray:
            raise ConfigError(f"condition {self.name!r}: keep names {stray[:5]}, which are not "
                              "training classes; keep only classes of `train`.")

    @property
    def zero_shot(self) -> bool:
        """True when the test classes are unseen in training: ``unseen`` when set (test classes
        of another data set have other ids, so only the condition's maker knows), else no test
        class id is a training class id."""
        if self.unseen is not None:
            return self.unseen
        return not set(self.train) & set(self.test)


def fold_conditions(data: TaggingData, folds: np.ndarray) -> list[Condition]:
    """One condition per class fold (from :func:`zskit.data.splits.class_folds`): test the fold's
    classes, train on all others (fold -1, the always-train classes, included)."""
    folds = np.asarray(folds)
    if folds.shape != (len(data.classes),):
        raise ConfigError(f"folds must give one fold per class ({len(data.classes)}), got shape "
                          f"{folds.shape}.")
    return [Condition(f"fold {f}", tuple(c for c, g in zip(data.classes, folds) if g != f),
                      tuple(c for c, g in zip(data.classes, folds) if g == f), kind="fold")
            for f in sorted(set(folds.tolist()) - {-1})]


def supervised_condition(data: TaggingData) -> Condition:
    """The supervised upper bound: the same head trained and tested on every class."""
    return Condition("supervised", tuple(data.classes), tuple(data.classes), kind="supervised")


def near_distant_conditions(data: TaggingData, seed: int = 0, rounds: int | None = None,
                            min_group_size: int = 2) -> list[Condition]:
    """"Near" and "distant" conditions over the parent categories (families) of ``data``.

    - distant: one condition per family with at least ``min_group_size`` members, holding the
      whole family out (e.g. all brass): no test class has a relative in training;
    - near: ``rounds`` conditions (default: the largest family's size). The members of every such
      family are dealt in a seeded order to the rounds, one by one, and each round holds out its
      share of every family: with at least two rounds every test class keeps relatives in
      training (cello out, violin in).

    Both cover the same classes, each exactly once, so they can be compared class by class.
    """
    families = {g: m for g, m in data.group_members().items() if len(m) >= min_group_size}
    if not families:
        raise ConfigError("near/distant conditions need parent categories with at least "
                          f"{min_group_size} classes; this data set has none (groups="
                          f"{'none' if data.groups is None else 'all singletons'}).")
    largest = max(len(m) for m in families.values())
    rounds = largest if rounds is None else rounds
    if not 2 <= rounds <= largest:
        raise ConfigError(f"rounds={rounds} must be in [2, {largest}] (the largest family), so "
                          "that every held-out class keeps a relative in training.")
    rng = np.random.default_rng(seed)
    held: list[set[str]] = [set() for _ in range(rounds)]
    for members in families.values():
        for i, j in enumerate(rng.permutation(len(members))):
            held[i % rounds].add(members[j])
    conditions = [Condition(f"near {r}", tuple(c for c in data.classes if c not in test),
                            tuple(c for c in data.classes if c in test), kind="near")
                  for r, test in enumerate(held)]
    for g, members in families.items():
        conditions.append(Condition(
            f"distant: {g}", tuple(c for c in data.classes if c not in members), tuple(members),
            kind="distant"))
    return conditions


def openmic_conditions(data: TaggingData, openmic_classes: Sequence[str], *,
                       instrument_classes: Sequence[str] | None = None,
                       test_classes: Sequence[str] | None = None) -> list[Condition]:
    """Paper 1's OpenMIC conditions as conditions on ``data``'s classes.

    ``openmic_classes``: training classes overlapping OpenMIC's instruments; ``test_classes``:
    what is scored (default: the same classes, the synthetic-corpus analogue). ``C\\C_inst`` is
    added only when ``instrument_classes`` is given (on the synthetic corpus every class is an
    instrument, so it has no training class left).

    In "C" the ``openmic_classes`` are trained (``keep``: never held out for model selection,
    whose exclusion of test classes goes by name, and OpenMIC's names are not AudioSet's), so
    it is not zero-shot; the other two conditions are.
    """
    from zskit.data.splits import openmic_condition

    test = tuple(openmic_classes if test_classes is None else test_classes)
    names = ["C\\C_MIC", "C"] if instrument_classes is None else ["C\\C_inst", "C\\C_MIC", "C"]
    conditions = []
    for name in names:
        train = tuple(openmic_condition(name, data.classes, openmic_classes=openmic_classes,
                                        instrument_classes=instrument_classes))
        trained = set(train)
        conditions.append(Condition(name, train, test, kind="openmic",
                                    keep=tuple(c for c in openmic_classes if c in trained),
                                    unseen=name != "C"))
    return conditions


def paper_conditions(dataset: str, data: TaggingData, *, folds: np.ndarray | None = None,
                     eval_data: TaggingData | None = None, near_rounds: int | None = None,
                     seed: int = 0) -> list[Condition]:
    """The conditions notebook 01 runs for ``dataset`` (see :data:`DATASETS`).

    - ``synth``: the class ``folds``, the supervised upper bound, near/distant over the families
      and the OpenMIC analogue (its 20 OpenMIC-named classes: C\\C_MIC and C);
    - ``audioset``: the class ``folds`` (made with Speech and Music always training) and the
      supervised upper bound;
    - ``esc50``: one transfer condition, AudioSet (``data``) without the reviewed ESC-50 overlap
      list (``data/exclusions/``) -> every class of ``eval_data``;
    - ``openmic``: paper 1's three conditions, C\\C_inst dropping "Musical instrument" and its
      ontology descendants, C\\C_MIC the reviewed OpenMIC overlap list -> ``eval_data``'s classes.
    AudioSet class ids are ontology ids (``/m/...``), as ``prepare_audioset`` writes them.
    """
    if dataset not in DATASETS:
        raise ConfigError(f"dataset={dataset!r} is unknown; use one of {DATASETS}.")
    if dataset in ("synth", "audioset"):
        if folds is None:
            raise ConfigError(f"dataset {dataset!r} needs class folds; pass folds=class_folds(...).")
        conditions = fold_conditions(data, folds) + [supervised_condition(data)]
        if dataset == "synth":
            from zskit.data.gm import OPENMIC_CLASSES

            conditions += near_distant_conditions(data, seed, near_rounds)
            conditions += openmic_conditions(data, [c for c in OPENMIC_CLASSES
                                                    if c in data.classes])
        return conditions
    if eval_data is None:
        raise ConfigError(f"dataset {dataset!r} trains on AudioSet and tests on {dataset}: pass "
                          f"its prepared corpus as eval_data.")
    from zskit.data.ontology import MUSICAL_INSTRUMENT, load_ontology, read_overlap_list

    overlap = set(read_overlap_list(dataset)["mid"])
    if dataset == "esc50":
        return [Condition("ESC-50", tuple(c for c in data.classes if c not in overlap),
                          tuple(eval_data.classes), kind="transfer", unseen=True)]
    ontology = load_ontology()
    instruments = ontology.descendants(MUSICAL_INSTRUMENT) | {MUSICAL_INSTRUMENT}
    return openmic_conditions(data, [c for c in data.classes if c in overlap],
                              instrument_classes=[c for c in data.classes if c in instruments],
                              test_classes=eval_data.classes)


def create_audio_encoder_by_spec(spec: str) -> Any:
    """An audio encoder from ``name`` or ``name.tag`` (a bare name loads its default weights)."""
    from zskit.encoders.registry import create_audio_encoder

    name, _, tag = spec.partition(".")
    return create_audio_encoder(name, pretrained=tag or True)


def pretraining_caveat(spec: str) -> str:
    """A plain statement of what the audio encoder ``name[.tag]`` learnt from labels before the
    projection is trained: an AudioSet-trained encoder has seen labelled examples of every AudioSet
    class, so a "zero-shot" class is unseen by the projection only (paper 1 pre-trained its
    encoders with the test classes excluded)."""
    from zskit.encoders.registry import encoder_spec

    name, _, tag = spec.partition(".")
    weights = encoder_spec("audio", name).pretrained_cfg(tag or True)
    if "audioset" in weights.tag or weights.num_classes in AUDIOSET_CLASS_COUNTS:
        return (f"{spec} was trained on AudioSet's labels, so its embedding has seen labelled "
                "examples of every AudioSet class, including the test classes or their AudioSet "
                "counterparts: only the projection has never seen their labels.")
    if weights.tag == "imagenet":
        return (f"{spec} was trained on ImageNet's image labels only: its embedding has seen no "
                "labelled audio.")
    if weights.num_classes:
        how = ("fine-tuned on" if "fine-tuned" in weights.notes else "trained on")
        return (f"{spec} was {how} the labels of {weights.tag} ({weights.num_classes} classes)"
                f"{' after AudioSet training' if how == 'fine-tuned on' else ''}: test classes "
                "among them are not unseen by the encoder.")
    return f"{spec} ({weights.tag}) was not trained on labelled audio."


def embedded_corpus(corpus_dir: Any, audio_encoder: str = "yamnet.audioset", *,
                    use_mask: bool = False, group_key: str | None = "family_name",
                    cache_dir: Any = None, progress: bool = True) -> TaggingData:
    """Load a corpus folder and embed it with a frozen audio encoder through the embedding cache
    (computed once, then memory-mapped): the usual way to get a :class:`TaggingData`.

    A complete cache of the same clips that also holds logits (notebook 00 writes one for YAMNet)
    is reused as it is (``EmbeddingCache`` looks for one).
    """
    from zskit.cache import EmbeddingCache
    from zskit.data.manifest import load_corpus

    corpus = load_corpus(corpus_dir)
    encoder = create_audio_encoder_by_spec(audio_encoder)
    cache = EmbeddingCache(encoder, corpus, cache_dir=cache_dir, progress=progress).compute()
    return TaggingData.from_corpus(corpus, cache.embeddings, use_mask=use_mask,
                                   group_key=group_key)


def create_label_encoder(spec: str, prompt: str = "{}") -> Any:
    """A label encoder by name: ``glove`` (GloVe 6B 50-d, offline), ``minilm`` (offline, with
    ``prompt``), ``word2vec`` (Google News, downloaded) or any ``name.tag`` of
    :func:`zskit.list_text_encoders` (pretrained=True). Word vectors give a name with no known word a
    zero vector (a constant score) instead of failing."""
    from zskit.encoders.registry import create_text_encoder, encoder_spec

    name, _, tag = spec.partition(".")
    if spec == "glove":
        tag = "6b-50d"
    kind = encoder_spec("text", name).config
    overrides: dict[str, Any] = {}
    if hasattr(kind, "on_unknown"):
        overrides["on_unknown"] = "zero"
    if hasattr(kind, "template"):
        overrides["template"] = prompt
    return create_text_encoder(name, pretrained=tag or True, **overrides)


# ---------------------------------------------------------------------------------------------
# Running conditions


def _known_positive(labels: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    pos = np.asarray(labels) > 0
    return pos if mask is None else pos & np.asarray(mask, dtype=bool)


def run_condition(data: TaggingData, condition: Condition, label_encoder: Any,
                  config: ZeroShotConfig | None = None, *, eval_data: TaggingData | None = None,
                  clip_policy: str = "paper", eval_split: str | None = "test",
                  ) -> tuple[ZeroShotTagger, np.ndarray, np.ndarray]:
    """Train on ``condition.train`` and score ``condition.test``: ``(tagger, eval rows, logits)``.

    ``eval_data`` (default ``data``) holds the test classes and clips; its ``eval_split`` rows are
    scored (None: all rows, e.g. all of ESC-50). Selection classes are never test classes (by
    name) nor ``condition.keep`` classes.
    """
    if clip_policy not in CLIP_POLICIES:
        raise ConfigError(f"clip_policy={clip_policy!r} is unknown; use one of {CLIP_POLICIES}.")
    config = config or ZeroShotConfig()
    target = data if eval_data is None else eval_data
    train_cols = data.index(condition.train)
    test_cols = target.index(condition.test)
    splits = ("train", "validation") if "validation" in set(data.splits) else ("train",)
    rows = {s: data.rows(s) for s in splits}  # no validation split: the last epoch is kept
    if clip_policy == "strict":  # drop clips holding a held-out class: the test classes or,
        # testing on another data set, every class of the training data left out of training
        # (those the condition excluded as overlapping the other data set's classes)
        trained = set(condition.train)
        candidates = test_cols if eval_data is None else range(len(data.classes))
        held = [j for j in candidates if data.classes[j] not in trained]
        for s, r in rows.items():
            keep = ~_known_positive(data.labels[r][:, held], None).any(axis=1)
            if not keep.any():
                raise DataError(f"clip_policy='strict' removed every {s} clip of condition "
                                f"{condition.name!r}: each of the {len(r)} holds a class left out "
                                "of training. Use clip_policy='paper' (keeps them, without those "
                                "labels) or a split with clips free of the held-out classes.")
            rows[s] = r[keep]
    tr, va = rows["train"], rows.get("validation")

    def sub(array: np.ndarray | None, r: np.ndarray) -> np.ndarray | None:
        return None if array is None else np.asarray(array[r][:, train_cols])

    names = [data.names[j] for j in train_cols]
    test_names = [target.names[j] for j in test_cols]
    selection = []  # none when every training class is tested (the supervised upper bound)
    if va is not None and set(names) - set(test_names):
        kept = [data.names[j] for j in data.index(condition.keep)]
        selection = choose_selection_classes(
            names, sub(data.labels, va), sub(data.mask, va), config.selection_fraction,
            config.seed, exclude=test_names + kept)
    val = {} if va is None else {"X_val": data.embeddings[va], "Y_val": sub(data.labels, va),
                                 "mask_val": sub(data.mask, va)}
    tagger = ZeroShotTagger(label_encoder, config).fit(
        data.embeddings[tr], sub(data.labels, tr), names, sub(data.mask, tr),
        selection_classes=selection, **val)
    ev = target.rows(eval_split)
    scores = tagger.decision_function(target.embeddings[ev], test_names, kind="embeddings")
    return tagger, ev, scores


def _nearest(tagger: ZeroShotTagger, test_names: list[str]) -> tuple[list[str], np.ndarray]:
    """Each test name's most similar trained class (cosine of label embeddings) and the cosine.

    A zero label vector (a word-vector encoder's name with no known word, e.g. GloVe 6B's
    "Caterwaul") has no direction: a trained class with one is never the nearest, and a test
    name with one has none (``""`` and NaN), instead of an arbitrary class at cosine 0 that
    would pose as the least proximate point of the semantic-distance analysis.
    """
    weights, sim = label_transfer_weights(tagger.label_embeddings(test_names),
                                          tagger.label_embeddings(tagger.classes_), top_k=1)
    best = weights.argmax(axis=1)
    found = weights.any(axis=1)
    return ([tagger.classes_[j] if ok else "" for j, ok in zip(best, found)],
            np.where(found, sim[np.arange(len(test_names)), best], np.nan))


@dataclass
class Evaluation:
    """Scores of every (label space, seed, condition) run on the same evaluated clips, and tables.

    ``scores[(space, seed, condition)]`` is ``(n_eval, len(condition.test))`` logits,
    ``trained[...]`` the names the run's projection was trained on (selection classes excluded);
    ``per_class`` has one row per run and test class (AP, random AP, positives, nearest trained
    class and its label-space cosine: ``""`` and NaN for a test name with a zero label vector).
    """

    data: TaggingData  # the data set holding the test classes
    eval_rows: np.ndarray
    conditions: dict[str, Condition]
    label_spaces: list[str]
    seeds: list[int]
    scores: dict[tuple[str, int, str], np.ndarray] = field(default_factory=dict)
    trained: dict[tuple[str, int, str], list[str]] = field(default_factory=dict)  # names trained on
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)

    # -- helpers ---------------------------------------------------------------------------------
    def _truth(self, condition: str) -> tuple[np.ndarray, np.ndarray | None]:
        cols = self.data.index(self.conditions[condition].test)
        y = self.data.labels[self.eval_rows][:, cols]
        m = None if self.data.mask is None else self.data.mask[self.eval_rows][:, cols]
        return y, m

    def _check(self, conditions: Sequence[str]) -> list[str]:
        unknown = [c for c in conditions if c not in self.conditions]
        if unknown:
            raise ConfigError(f"conditions {unknown} were not evaluated; choose from "
                              f"{list(self.conditions)}.")
        return list(conditions)

    def _blocks(self, conditions: Sequence[str], classes: Mapping[str, Sequence[str]] | None
                ) -> list[tuple[str, list[int], np.ndarray, np.ndarray | None]]:
        out = []
        for name in self._check(conditions):
            test = list(self.conditions[name].test)
            keep = list(classes[name]) if classes is not None else test
            unknown = [c for c in keep if c not in test]
            if unknown:
                raise ConfigError(f"classes {unknown} are not test classes of {name!r} "
                                  f"({', '.join(test[:6])}, ...); pick from "
                                  f"Evaluation.conditions[{name!r}].test.")
            cols = [test.index(c) for c in keep]
            y, m = self._truth(name)
            out.append((name, cols, y[:, cols], None if m is None else m[:, cols]))
        return out

    def _class_aps(self, space: str, blocks: list) -> np.ndarray:
        """AP of every block class per seed, ``(n_seeds, n_classes)``; NaN without a positive."""
        return np.stack([np.concatenate([
            average_precision_per_class(b[2], self.scores[(space, s, b[0])][:, b[1]], b[3])
            for b in blocks]) for s in self.seeds])

    def _estimate(self, space: str, blocks: list, by: str, n_bootstrap: int,
                  seed: int) -> dict[str, float]:
        """Seed-mean mAP over ``blocks``: the mean of block mAPs (``by="condition"``) or one mAP
        over all their classes (``by="class"``), with a class-bootstrap interval."""
        owner = np.concatenate([np.full(len(b[1]), i) for i, b in enumerate(blocks)])
        aps = self._class_aps(space, blocks)
        defined = ~np.isnan(aps[0])  # the same clips in every seed: the same classes defined
        aps, owner = aps[:, defined], owner[defined]
        if not aps.size:
            raise DataError(f"no test class of {[b[0] for b in blocks]} has a positive among the "
                            "evaluated clips; evaluate more clips.")
        groups = [np.flatnonzero(owner == i) for i in np.unique(owner)]

        def stat(values: np.ndarray) -> np.ndarray:  # (..., n_classes) -> (...)
            if by == "class":
                return values.mean(axis=-1)
            return np.mean([values[..., g].mean(axis=-1) for g in groups], axis=0)

        per_seed = stat(aps)
        rand = [random_average_precision(b[2], b[3]) for b in blocks]
        rand = np.concatenate(rand)[defined]
        row = {"mAP": float(per_seed.mean()),
               "seed std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else np.nan,
               "random mAP": float(stat(rand)), "classes": int(defined.sum())}
        if n_bootstrap:  # resample the test classes of each block, keep their seed-mean APs
            rng = np.random.default_rng(seed)
            mean_ap = aps.mean(axis=0)
            values = []
            for _ in range(n_bootstrap):
                parts = [mean_ap[rng.choice(g, len(g))] for g in groups]
                values.append(np.concatenate(parts).mean() if by == "class"
                              else np.mean([p.mean() for p in parts]))
            low, high = np.quantile(values, [0.025, 0.975])
            row.update({"95% low": float(low), "95% high": float(high)})
        return row

    # -- tables ----------------------------------------------------------------------------------
    def summary(self, conditions: Sequence[str] | None = None, n_bootstrap: int = 0,
                seed: int = 0) -> pd.DataFrame:
        """One row per (label space, condition): seed-mean mAP, its seed std, a 95% interval (with
        ``n_bootstrap``: percentile bootstrap over the test classes, resampling their seed-mean
        APs), the random baseline and the number of test classes with a positive."""
        conditions = list(self.conditions) if conditions is None else conditions
        rows = []
        for space in self.label_spaces:
            for name in self._check(conditions):
                row = self._estimate(space, self._blocks([name], None), "condition",
                                     n_bootstrap, seed)
                rows.append({"label space": space, "condition": name, **row})
        return pd.DataFrame(rows)

    def pooled(self, conditions: Sequence[str], *, by: str = "condition",
               classes: Mapping[str, Sequence[str]] | None = None, n_bootstrap: int = 0,
               seed: int = 0) -> pd.DataFrame:
        """One row per label space for several conditions together.

        ``by="condition"``: the mean of their mAPs (paper 1's mean over folds); ``by="class"``:
        one mAP over all their test classes, each scored by the run that held it out (near vs
        distant). ``classes`` restricts a condition to some of its test classes (e.g. the
        supervised run scored on one fold's classes).
        """
        if by not in ("condition", "class"):
            raise ConfigError(f"by={by!r} must be 'condition' or 'class'.")
        blocks = self._blocks(conditions, classes)
        return pd.DataFrame([{"label space": space,
                              **self._estimate(space, blocks, by, n_bootstrap, seed)}
                             for space in self.label_spaces])

    def paired(self, first: Sequence[str], second: Sequence[str], *,
               names: tuple[str, str] = ("first", "second"), n_bootstrap: int = 0,
               seed: int = 0) -> pd.DataFrame:
        """Class-by-class comparison of two sets of conditions that test the same classes (near
        vs distant). Per label space: the classes scored under both, their mean AP under each,
        the mean difference (first - second) with a class-bootstrap 95% interval, and the share
        of classes that do better under ``first``."""
        first, second = self._check(first), self._check(second)
        pc = self.per_class.dropna(subset=["ap"])
        rows = []
        for space in self.label_spaces:
            here = pc[pc["label space"] == space]
            both = pd.concat({key: here[here["condition"].isin(conds)].groupby("class")["ap"].mean()
                              for key, conds in zip(names, (first, second))}, axis=1, join="inner")
            if both.empty:
                raise ConfigError(f"{first} and {second} share no scored test class; pass "
                                  "conditions that hold out the same classes.")
            diff = (both[names[0]] - both[names[1]]).to_numpy()
            row = {"label space": space, "classes": len(diff),
                   f"mAP {names[0]}": float(both[names[0]].mean()),
                   f"mAP {names[1]}": float(both[names[1]].mean()),
                   "difference": float(diff.mean()), f"{names[0]} better": float((diff > 0).mean())}
            if n_bootstrap:
                rng = np.random.default_rng(seed)
                means = [diff[rng.integers(0, len(diff), len(diff))].mean()
                         for _ in range(n_bootstrap)]
                row["95% low"], row["95% high"] = map(float, np.quantile(means, [0.025, 0.975]))
            rows.append(row)
        return pd.DataFrame(rows)

    def top1(self, conditions: Sequence[str] | None = None, *,
             by_group: bool = False) -> pd.DataFrame:
        """Zero-shot classification of the clips holding exactly one test class.

        Per (label space, condition), seed-mean: ``top-1`` (argmax over all the condition's test
        classes; chance 1/k) and ``within-group top-1`` (argmax over the test classes of the
        clip's parent category, for categories with at least two; paper 1's 10-way ESC-50
        figure). Both count a tie for the top as wrong (:func:`zskit.metrics.top1_accuracy`). ``by_group=True`` gives the within-group accuracy of each parent category.
        """
        conditions = list(self.conditions) if conditions is None else self._check(conditions)
        rows = []
        for name in conditions:
            y, m = self._truth(name)
            single = np.flatnonzero(_known_positive(y, m).sum(axis=1) == 1)
            if not len(single):
                continue
            truth = _known_positive(y, m)[single].argmax(axis=1)  # the one known positive
            test = list(self.conditions[name].test)
            groups = (np.asarray(self.data.groups)[self.data.index(test)]
                      if self.data.groups is not None else np.zeros(len(test), dtype=str))
            sizes = pd.Series(groups).value_counts()
            multi = np.flatnonzero(sizes[groups[truth]].to_numpy() >= 2)
            for space in self.label_spaces:
                runs = [self.scores[(space, s, name)][single] for s in self.seeds]
                if by_group:
                    per = [top1_accuracy_by_group(truth[multi], r[multi], groups, within_group=True)
                           for r in runs]
                    for g in per[0]:
                        rows.append({"label space": space, "condition": name, "group": g,
                                     "clips": int((groups[truth[multi]] == g).sum()),
                                     "classes": int(sizes[g]),
                                     "top-1": float(np.mean([p[g] for p in per])),
                                     "chance": 1.0 / sizes[g]})
                    continue
                acc = [top1_accuracy(truth, r) for r in runs]
                within = [within_group_top1(truth[multi], r[multi], groups) for r in runs]
                rows.append({
                    "label space": space, "condition": name, "clips": len(single),
                    "classes": len(test), "top-1": float(np.mean(acc)), "chance": 1.0 / len(test),
                    "within-group clips": len(multi),
                    "within-group top-1": float(np.mean(within)) if len(multi) else np.nan,
                    "within-group chance": float(np.mean(1.0 / sizes[groups[truth[multi]]]))
                    if len(multi) else np.nan})
        return pd.DataFrame(rows)

    def proximity(self, conditions: Sequence[str] | None = None) -> pd.DataFrame:
        """Per (label space, condition, class), averaged over seeds: AP, random AP, AP gain over
        random, and the nearest trained class with its label-space cosine ("proximity")."""
        conditions = list(self.conditions) if conditions is None else self._check(conditions)
        pc = self.per_class[self.per_class["condition"].isin(conditions)]
        keys = ["label space", "condition", "class"]
        out = pc.groupby(keys, sort=False).agg(
            name=("name", "first"), group=("group", "first"), ap=("ap", "mean"),
            random_ap=("random_ap", "first"), positives=("positives", "first"),
            nearest=("nearest", lambda s: s.mode().iloc[0]), similarity=("similarity", "mean"),
        ).reset_index()
        out["ap_gain"] = out["ap"] - out["random_ap"]
        return out.dropna(subset=["ap"])


def evaluate(data: TaggingData, conditions: Sequence[Condition],
             label_encoders: Mapping[str, Any], config: ZeroShotConfig | None = None, *,
             seeds: Sequence[int] = (0,), eval_data: TaggingData | None = None,
             clip_policy: str = "paper", eval_split: str | None = "test",
             progress: bool = True) -> Evaluation:
    """Run every condition for every label space and seed (``config.seed`` replaced by each seed).

    ``label_encoders``: label-space name -> encoder; each name is encoded once per call, or once
    for good when the encoder is a :class:`~zskit.models.zeroshot.CachedLabelEncoder` (pass the
    same instances to repeated calls). See :func:`run_condition` for the rest.
    """
    config = config or ZeroShotConfig()
    conditions = list(conditions)
    if len({c.name for c in conditions}) != len(conditions):
        raise ConfigError("condition names must be unique; rename the duplicates.")
    if not label_encoders or not seeds:
        raise ConfigError("pass at least one label encoder and one seed.")
    target = data if eval_data is None else eval_data
    result = Evaluation(target, target.rows(eval_split), {c.name: c for c in conditions},
                        list(label_encoders), [int(s) for s in seeds])
    rows = []
    jobs = [(space, s, c) for space in label_encoders for s in result.seeds for c in conditions]
    memo = {space: enc if isinstance(enc, CachedLabelEncoder) else CachedLabelEncoder(enc)
            for space, enc in label_encoders.items()}
    for space, s, cond in tqdm(jobs, desc="zero-shot runs", disable=not progress):
        tagger, _, scores = run_condition(
            data, cond, memo[space], dataclasses.replace(config, seed=s),
            eval_data=eval_data, clip_policy=clip_policy, eval_split=eval_split)
        result.scores[(space, s, cond.name)] = scores
        result.trained[(space, s, cond.name)] = list(tagger.classes_)
        y, m = result._truth(cond.name)
        test_names = [target.names[j] for j in target.index(cond.test)]
        nearest, sim = _nearest(tagger, test_names)
        ap = average_precision_per_class(y, scores, m)
        rand = random_average_precision(y, m)
        groups = (np.asarray(target.groups)[target.index(cond.test)] if target.groups is not None
                  else [None] * len(cond.test))
        for j, c in enumerate(cond.test):
            rows.append({"label space": space, "seed": s, "condition": cond.name,
                         "kind": cond.kind, "class": c, "name": test_names[j], "group": groups[j],
                         "ap": ap[j], "random_ap": rand[j],
                         "positives": int(_known_positive(y[:, j], None if m is None else
                                                          m[:, j]).sum()),
                         "nearest": nearest[j], "similarity": float(sim[j]),
                         "best_epoch": tagger.best_epoch_})
    result.per_class = pd.DataFrame(rows)
    return result


# ---------------------------------------------------------------------------------------------
# Semantic distance


def pearson_with_ci(x: Sequence[float], y: Sequence[float],
                    confidence: float = 0.95) -> dict[str, float]:
    """Pearson r of ``x`` and ``y`` with its Fisher-z confidence interval and two-sided p-value,
    and the least-squares line ``y = slope * x + intercept`` (the AP gain per unit of proximity)."""
    from scipy.stats import pearsonr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 4:
        raise DataError(f"Pearson r with an interval needs at least 4 finite pairs, got "
                        f"{int(ok.sum())}; evaluate more test classes.")
    res = pearsonr(x[ok], y[ok])
    ci = res.confidence_interval(confidence)
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    return {"r": float(res.statistic), "low": float(ci.low), "high": float(ci.high),
            "p": float(res.pvalue), "n": int(ok.sum()), "slope": float(slope),
            "intercept": float(intercept)}


def proximity_figure(table: pd.DataFrame, title: str = "AP gain over random vs proximity"
                     ) -> go.Figure:
    """Scatter of each test class's AP gain over random against its nearest trained class's
    label-space cosine, one trace per parent category, with a least-squares line and Pearson's r
    (:func:`zskit.viz.semantic_distance_figure` on an :meth:`Evaluation.proximity` table)."""
    need = {"similarity", "ap_gain", "name", "nearest"}
    if not need <= set(table.columns):
        raise ConfigError(f"the table lacks columns {sorted(need - set(table.columns))}; pass "
                          "Evaluation.proximity(...) for one label space.")
    groups = table["group"].fillna("classes").astype(str).tolist() if "group" in table else None
    fig = viz.semantic_distance_figure(
        table["similarity"], table["ap_gain"], table["name"].astype(str).tolist(), groups,
        hover=[f"nearest: {m}" for m in table["nearest"]], title=title)
    fig.add_hline(y=0, line={"color": "black", "width": 1})
    return fig
