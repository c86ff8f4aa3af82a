"""The embedded default corpus: polyphonic instrument clips rendered from a General MIDI SoundFont.

Each clip holds 1-4 instruments (classes of ``zskit.data.gm``) playing scale-based melodies, chords,
arpeggios, strums, bass lines or drum patterns in one key and tempo. Every instrument is rendered as
its own stem with tinysoundfont and mixed, so its labels are exactly the instruments it holds.

- Audio: mono FLAC (16-bit) at 32 kHz by default, high enough for every encoder (16 and 32 kHz
  front ends resample down). Each stem is levelled to its active RMS plus a random gain (-6..0 dB);
  the mix is set to a loudness drawn from its dynamics (-30..-15 dBFS) and peak-limited to 0.95.
- Determinism: clip ``i`` depends only on ``(seed, i)``: its music on
  ``np.random.default_rng([seed, i])``, its annotation mask on ``[seed, i, 1]`` and its captions on
  ``[seed, i, 2]``; parallel, resumed and repeated runs write identical audio.
- Partial labels, OpenMIC-style: OpenMIC-2018 has ~41,000 crowd answers over 20,000 clips x 20
  classes (about 2 annotated labels per clip, ~10% of all entries). Here a clip's positives are
  annotated with probability 0.8 and each negative with 0.065, which with ~49 classes and ~2.4
  instruments per clip also annotates ~10% of the entries, about 40% of them positive; every clip
  has at least one annotated label. ``labels`` is the truth, ``annotated`` the mask.
- Splits: 70/15/15 train/validation/test by iterative stratification over the labels (Sechidis et
  al., 2011), so every class appears in every split at the default size.
- Layout: ``audio/<clip_id>.flac``, ``manifest.csv``, ``metadata.json`` (written last; with all
  clips present it marks the corpus complete) and ``params.json`` (written first; lets an
  interrupted run resume and refuses a different set of parameters).

Modules, in the order data flows through them:

- ``music``: ``Note``, ``Stem``, ``ClipSpec`` and the scale, key and dynamics tables;
- ``patterns``: one note generator per playing style (melody, chords, strum, bass, beat, ...);
- ``clips``: ``clip_spec(index, seed)``, the whole content of one clip;
- ``render``: SoundFont lookup, ``Renderer`` (stems, levels, mix) and the worker jobs;
- ``corpus``: ``SynthConfig``, the annotation mask, manifest and metadata, ``generate_corpus``.
"""

from zskit.data.manifest import Corpus, load_corpus
from zskit.data.synth.clips import clip_id, clip_spec
from zskit.data.synth.corpus import (
    DEFAULT_CLIPS,
    GENERATOR_VERSION,
    PARAMS_NAME,
    SMOKE_CLIPS,
    SPLITS,
    SynthConfig,
    annotation_mask,
    default_corpus_dir,
    ensure_corpus,
    generate_corpus,
)
from zskit.data.synth.music import ClipSpec, Note, Stem
from zskit.data.synth.render import FLUID_R3, Renderer, find_soundfont, render_clip, soundfont_info

__all__ = [
    "DEFAULT_CLIPS",
    "FLUID_R3",
    "GENERATOR_VERSION",
    "PARAMS_NAME",
    "SMOKE_CLIPS",
    "SPLITS",
    "ClipSpec",
    "Corpus",
    "Note",
    "Renderer",
    "Stem",
    "SynthConfig",
    "annotation_mask",
    "clip_id",
    "clip_spec",
    "default_corpus_dir",
    "ensure_corpus",
    "find_soundfont",
    "generate_corpus",
    "load_corpus",
    "render_clip",
    "soundfont_info",
]
