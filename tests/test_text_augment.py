"""Caption rewrites from keywords (paper 4), caption swap, and paper 5's text noise."""

from __future__ import annotations

import numpy as np
import pytest

from zskit.errors import ConfigError
from zskit.text_augment import (
    KEYWORD_TEMPLATES,
    CaptionSwap,
    Lexicon,
    RewriteError,
    TextNoise,
    default_lexicon,
    instrument_hypernyms,
    make_rewrites,
    misspell,
    template_rewrites,
)

CAPTION = "A slow sad piece played on a cello."
KEYWORDS = ["cello", "bowed strings", "slow", "dark"]


def test_template_rewrites_keep_caption_and_add_keywords():
    rewrites = template_rewrites(CAPTION, KEYWORDS, n=5, rng=np.random.default_rng(0))
    assert len(rewrites) == 5, rewrites
    assert len(set(rewrites)) == 5, f"rewrites repeat: {rewrites}"
    for text in rewrites:
        assert "a slow sad piece played on a cello" in text.lower(), f"caption lost in {text!r}"
        used = [k for k in KEYWORDS if k in text.lower().replace(CAPTION.lower()[:-1], "")]
        assert len(used) >= 2, f"{text!r} mentions fewer than two keywords beyond the caption"
        assert text[0].isupper(), text


def test_template_rewrites_edge_cases():
    assert template_rewrites(CAPTION, [], n=3) == [], "no keyword, nothing to add"
    assert template_rewrites(CAPTION, KEYWORDS, n=0) == []
    one = template_rewrites(CAPTION, ["cello"], n=2, rng=np.random.default_rng(1))
    assert len(one) == 2 and all("cello" in t for t in one)
    many = template_rewrites(CAPTION, KEYWORDS, n=len(KEYWORD_TEMPLATES) + 2,
                             rng=np.random.default_rng(0))
    assert len(many) == len(KEYWORD_TEMPLATES) + 2, "templates cycle when n exceeds them"
    with pytest.raises(ConfigError, match="caption"):
        template_rewrites(CAPTION, KEYWORDS, templates=("only {keywords}",))
    with pytest.raises(ConfigError, match=">= 0"):
        template_rewrites(CAPTION, KEYWORDS, n=-1)


def test_make_rewrites_is_deterministic_and_uses_user_function():
    captions = [["A cello plays.", "", "Music on a cello."], ["Drums keep a beat."]]
    keywords = [["cello", "slow"], ["drums", "fast", "loud"]]
    a = make_rewrites(captions, keywords, n=3, seed=4)
    b = make_rewrites(captions, keywords, n=3, seed=4)
    assert a == b, "same seed, same rewrites"
    assert [len(r) for r in a[0]] == [3, 0, 3], "an empty caption keeps an empty slot"
    assert make_rewrites(captions, keywords, n=3, seed=5) != a, "another seed, other rewrites"

    calls = []

    def rewrite(caption, kws):
        calls.append((caption, tuple(kws)))
        return [f"{caption} ({k})" for k in kws] + ["  "]

    out = make_rewrites(captions, keywords, n=2, rewrite_fn=rewrite)
    assert out[1][0] == ["Drums keep a beat. (drums)", "Drums keep a beat. (fast)"]
    assert ("A cello plays.", ("cello", "slow")) in calls and len(calls) == 3


def test_make_rewrites_errors():
    with pytest.raises(ConfigError, match="keyword lists"):
        make_rewrites([["a"]], [])
    def broken(caption, kws):
        raise TimeoutError("LLM did not answer")

    with pytest.raises(RewriteError, match="a cello.*TimeoutError: LLM did not answer"):
        make_rewrites([["a cello"]], [["x"]], rewrite_fn=broken)
    with pytest.raises(RewriteError, match="list of strings"):
        make_rewrites([["a cello"]], [["x"]], rewrite_fn=lambda c, k: "one string")


def test_caption_swap_rate_matches_p():
    swap = CaptionSwap(0.3)
    rng = np.random.default_rng(0)
    out = [swap("orig", ["r1", "r2"], rng) for _ in range(20000)]
    rate = np.mean([o != "orig" for o in out])
    assert abs(rate - 0.3) < 0.015, f"swap rate {rate:.3f}, expected 0.3"
    assert {o for o in out if o != "orig"} == {"r1", "r2"}, "both rewrites are used"
    assert swap("orig", [], rng) == "orig", "no rewrite, no swap"
    assert CaptionSwap(0.0)("orig", ["r"], rng) == "orig"
    with pytest.raises(ConfigError, match="0.3"):
        CaptionSwap(1.5)


def test_misspell_changes_one_word_and_keeps_short_words():
    rng = np.random.default_rng(0)
    for _ in range(200):
        out = misspell("cello", rng)
        assert out != "cello" and out[0] == "c", out
        assert abs(len(out) - 5) <= 1, out
    assert misspell("a", rng) == "a" and misspell("to", rng) == "to"


def test_text_noise_perturbs_each_caption_with_probability_p():
    texts = [f"Someone plays a violin softly number {i}." for i in range(50)]
    noise = TextNoise(p=0.2)
    out = noise(texts, np.random.default_rng(0))
    assert out == noise(texts, np.random.default_rng(0)), "the same rng state gives the same batch"
    assert 0 < sum(a != b for a, b in zip(texts, out)) < 25
    assert TextNoise(p=0.0)(texts, np.random.default_rng(0)) == texts
    assert TextNoise(p=1.0)(texts[:1], np.random.default_rng(0)) != texts[:1]
    # batches of one caption: about a fifth perturbed (round(0.2 * 1) = 0 perturbed none)
    rng = np.random.default_rng(1)
    share = np.mean([noise(texts[:1], rng) != texts[:1] for _ in range(400)])
    assert 0.14 < share < 0.26, share


def test_text_noise_never_replaces_a_word_inside_a_matched_phrase():
    lex = Lexicon(synonyms={}, hypernyms={"french horn": ("brass instrument",),
                                          "horn": ("noisemaker",), "french": ("romance",),
                                          "tune": ("music",)})
    noise = TextNoise(p=1.0, kinds=("hypernym",), lexicon=lex)
    rng = np.random.default_rng(0)
    seen = {noise.perturb("A French horn plays a tune.", rng) for _ in range(100)}
    assert seen == {"A brass instrument plays a tune.", "A French horn plays a music."}, seen
    assert noise.perturb("The horn.", rng) == "The noisemaker."
    assert noise.perturb("French horn. French horn", rng) in {
        "Brass instrument. French horn", "French horn. Brass instrument"}, (
        "a capital at a sentence start is kept")


@pytest.mark.parametrize("kind, expected", [
    ("synonym", {"Somebody plays a violin.", "A person plays a violin.",
                 "Someone performs a violin."}),
    ("hypernym", {"Someone plays a bowed string instrument.",
                  "Someone plays a musical instrument."}),
])
def test_text_noise_synonyms_and_hypernyms(kind, expected):
    noise = TextNoise(p=1.0, kinds=(kind,))
    rng = np.random.default_rng(0)
    seen = {noise.perturb("Someone plays a violin.", rng) for _ in range(200)}
    assert seen == expected, f"{kind}: got {seen}"


def test_text_noise_custom_lexicon_phrases_and_fallback():
    lex = Lexicon(synonyms={"french horn": ("horn",)}, hypernyms={})
    noise = TextNoise(p=1.0, kinds=("synonym",), lexicon=lex)
    assert noise.perturb("A French horn sounds.", np.random.default_rng(0)) == "A horn sounds.", (
        "the capital of a name inside a sentence is not carried over")
    assert noise.perturb("Nothing here.", np.random.default_rng(0)) == "Nothing here.", (
        "no applicable perturbation leaves the caption unchanged")
    with pytest.raises(ConfigError, match="choose from"):
        TextNoise(kinds=("antonym",))


def test_default_lexicon_covers_every_synth_instrument():
    hyper = instrument_hypernyms()
    from zskit.data.gm import CLASSES

    missing = [c.name for c in CLASSES if c.name.lower() not in hyper]
    assert not missing, f"instruments without hypernyms: {missing}"
    assert hyper["violin"][0] == "bowed string instrument"
    assert hyper["trumpet"][0] == "brass instrument"
    assert "dog" in default_lexicon().hypernyms
