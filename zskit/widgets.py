"""ipywidgets apps for playing with zero-shot tagging and retrieval in a notebook.

- :class:`ZeroShotExplorer`: type class names (comma-separated) and get, for each, the clips a
  trained :class:`~zskit.models.zeroshot.ZeroShotTagger` ranks highest, with audio players and
  scores; choose the audio encoder and the label space.
- :class:`RetrievalSearch`: type a sentence and get the top clips of a
  :class:`~zskit.search.EmbeddingIndex`, embedded by anything with ``encode_text``.
- :class:`FoldExplorer`: pick classes to hold out, retrain the projection on cached embeddings and
  see each held-out class's AP against its semantic proximity to the training classes.

Each app is a plain object whose state lives in its widgets and in a few attributes, so Python can
drive it like a user does: set ``app.query.value = "cello, tuba"`` (or call ``app.run()``) and read
``app.results``. Errors a user can cause (an empty query, a word the label space does not know)
appear as a message in the app (``app.error``), not as a traceback. Showing ``app`` (last
expression of a cell) displays it.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from IPython.display import display

from zskit._arrays import to_numpy
from zskit.errors import ConfigError, DataError, ZskitError

__all__ = ["Clips", "FoldExplorer", "RetrievalSearch", "ZeroShotExplorer"]

RESULT_CLASS = "zskit-result"  # CSS class of every result row (browser tests look for it)
MAX_TOP_K = 50  # most results an app shows per query


@dataclass(frozen=True)
class Clips:
    """What the apps show about each clip (one entry per row of the embeddings)."""

    ids: list[str]
    paths: list[Path]
    captions: list[str]  # one caption per clip ("" when there is none)
    truth: list[list[str]]  # the class names present in each clip (empty when unknown)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not n or any(len(x) != n for x in (self.paths, self.captions, self.truth)):
            raise DataError(f"Clips needs one id, path, caption and truth list per clip and at least "
                            f"one clip; got {n} ids, {len(self.paths)} paths, "
                            f"{len(self.captions)} captions, {len(self.truth)} truth lists.")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_corpus(cls, corpus: Any) -> Clips:
        """From a :class:`~zskit.data.manifest.Corpus` (rows in manifest order)."""
        names = corpus.class_names
        return cls(ids=[str(i) for i in corpus.manifest["clip_id"]], paths=list(corpus.paths),
                   captions=[c[0] if c else "" for c in corpus.captions],
                   truth=[[n for n, v in zip(names, row) if v] for row in corpus.labels])

    def subset(self, rows: Sequence[int]) -> Clips:
        """The clips at ``rows``, in that order (e.g. a test split's rows, to rank only those)."""
        rows = [int(i) for i in rows]
        bad = [i for i in rows if not 0 <= i < len(self)]
        if bad:
            raise DataError(f"rows {bad[:5]} are out of range for {len(self)} clips; pass row "
                            "numbers of these clips (e.g. TaggingData.rows('test')).")
        return Clips(ids=[self.ids[i] for i in rows], paths=[self.paths[i] for i in rows],
                     captions=[self.captions[i] for i in rows],
                     truth=[self.truth[i] for i in rows])

    def player(self, row: int) -> widgets.Audio:
        """An audio player holding clip ``row``'s file as stored (loaded when shown).

        A file that cannot be read is a DataError, which an app shows as its message.
        """
        path = Path(self.paths[row])
        try:
            value = path.read_bytes()
        except OSError as err:
            raise DataError(f"cannot read clip {self.ids[row]!r} at {path} ({err}); restore the "
                            "file (e.g. ensure_corpus again) or pass players=False.") from err
        return widgets.Audio(value=value, format=path.suffix.lstrip(".").lower(),
                             autoplay=False, controls=True, layout={"width": "320px"})


def _encode_function(model: Any) -> Callable[[list[str]], Any]:
    """``model.encode_text`` if it has one (a DualEncoder), else ``model`` if it is callable."""
    encode = getattr(model, "encode_text", model)
    if not callable(encode):
        raise ConfigError(f"{type(model).__name__} has no encode_text(texts); pass a DualEncoder, "
                          "a text encoder's encode, or another function texts -> embeddings.")
    return encode


def _top_k_box(top_k: int) -> widgets.BoundedIntText:
    """The "top k" box. A start value outside 1..MAX_TOP_K is an error: the box would clamp it
    silently, and a notebook would report precision@k for a k it did not use."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) \
            or not 1 <= top_k <= MAX_TOP_K:
        raise ConfigError(f"top_k={top_k!r} must be an int from 1 to {MAX_TOP_K}.")
    return widgets.BoundedIntText(value=int(top_k), min=1, max=MAX_TOP_K, description="top k",
                                  layout={"width": "160px"})


class _App:
    """Shared frame: controls on top, then a message line, a progress bar and the results."""

    def __init__(self, controls: Sequence[widgets.Widget], players: bool) -> None:
        self.players = players
        self.error: str | None = None
        self.message = widgets.HTML()
        self.progress = widgets.FloatProgress(min=0.0, max=1.0, layout={"visibility": "hidden"})
        self.output = widgets.VBox()
        self.widget = widgets.VBox([*controls, self.message, self.progress, self.output])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _show_error(self, text: str) -> None:
        self.error = text
        self.message.value = f'<span style="color:#b00020">{html.escape(text)}</span>'
        self.output.children = ()

    def _guarded(self, work: Callable[[], str]) -> bool:
        """Run ``work`` (it returns a status line); a ZskitError becomes the app's message."""
        self.error = None
        self.message.value = ""
        try:
            status = work()
        except ZskitError as err:
            self._show_error(str(err))
            return False
        finally:
            self.progress.layout.visibility = "hidden"
        self.message.value = html.escape(status)
        return True

    def _step(self, value: float, what: str) -> None:
        self.progress.layout.visibility = "visible"
        self.progress.value, self.progress.description = value, what

    def _rows(self, clips: Clips, frame: pd.DataFrame, score_label: str) -> list[widgets.Widget]:
        """One line per result: rank, clip, score, what it holds, a player."""
        out = []
        for _, r in frame.iterrows():
            truth = ", ".join(clips.truth[r["row"]]) or "unknown"
            mark = " ✓" if r.get("hit", False) else ""
            text = widgets.HTML(
                f"<b>{r['rank']}.</b> {html.escape(str(r['clip']))} · {score_label} "
                f"<b>{r['score']:.3f}</b>{mark}<br><small>holds: {html.escape(truth)}"
                + (f" · {html.escape(r['caption'])}" if r.get("caption") else "") + "</small>",
                layout={"width": "520px"})
            row = widgets.HBox([text, clips.player(r["row"])] if self.players else [text])
            row.add_class(RESULT_CLASS)
            out.append(row)
        return out


class ZeroShotExplorer(_App):
    """Type class names, get the clips a zero-shot tagger ranks highest for each.

    ``taggers[(audio_encoder, label_space)]`` are fitted
    :class:`~zskit.models.zeroshot.ZeroShotTagger` s; ``embeddings[audio_encoder]`` ``(N, D)`` are
    the clips' embeddings by that encoder, rows matching ``clips``. Any name can be typed, seen in
    training or not; ``results`` holds one row per (class, rank) with the probability, the clip and
    whether the clip really holds that class (``hit``, when its truth is known).
    """

    def __init__(self, clips: Clips, taggers: Mapping[tuple[str, str], Any],
                 embeddings: Mapping[str, Any], *, top_k: int = 5, players: bool = True) -> None:
        if not taggers:
            raise ConfigError("taggers is empty; pass {(audio_encoder, label_space): tagger}.")
        for enc, _ in taggers:
            if enc not in embeddings:
                raise ConfigError(f"no embeddings for audio encoder {enc!r}; pass "
                                  f"embeddings[{enc!r}] = the clips' (N, D) embeddings.")
            if len(embeddings[enc]) != len(clips):
                raise ConfigError(f"embeddings[{enc!r}] has {len(embeddings[enc])} rows for "
                                  f"{len(clips)} clips; embed the same clips in the same order.")
        self.clips, self.taggers = clips, dict(taggers)
        # a private float32 copy: cached embeddings are read-only memory maps (or tensors,
        # maybe on a GPU)
        self.embeddings = {k: np.array(to_numpy(v), dtype=np.float32)
                           for k, v in embeddings.items()}
        self.query = widgets.Text(placeholder="class names, comma-separated, e.g. cello, tuba",
                                  description="classes", continuous_update=False,
                                  layout={"width": "520px"})
        self.audio_encoder = widgets.Dropdown(options=list(dict.fromkeys(k[0] for k in taggers)),
                                              description="audio")
        self.label_space = widgets.Dropdown(options=list(dict.fromkeys(k[1] for k in taggers)),
                                            description="labels")
        self.top_k = _top_k_box(top_k)
        self.button = widgets.Button(description="Rank clips", button_style="primary")
        self.results = pd.DataFrame()
        super().__init__([widgets.HBox([self.query, self.button]),
                          widgets.HBox([self.audio_encoder, self.label_space, self.top_k])],
                         players)
        self.query.observe(lambda _: self.run(), names="value")
        for w in (self.audio_encoder, self.label_space, self.top_k):
            w.observe(lambda _: self.run() if self.query.value.strip() else None, names="value")
        self.button.on_click(lambda _: self.run())

    def rank(self, text: str) -> pd.DataFrame:
        """The ``top_k`` clips for every comma-separated name in ``text`` (raises ZskitError)."""
        names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        if not names:
            raise ConfigError("type at least one class name, e.g. 'cello, tuba' (comma-separated).")
        key = (self.audio_encoder.value, self.label_space.value)
        if key not in self.taggers:
            raise ConfigError(f"no tagger was trained for audio encoder {key[0]!r} with label "
                              f"space {key[1]!r}; trained: {sorted(self.taggers)}.")
        probs = self.taggers[key].predict_proba(self.embeddings[key[0]], names, kind="embeddings")
        k = min(int(self.top_k.value), len(self.clips))
        rows = []
        for j, name in enumerate(names):
            for rank, i in enumerate(np.argsort(-probs[:, j], kind="stable")[:k], start=1):
                truth = self.clips.truth[i]
                rows.append({"class": name, "rank": rank, "clip": self.clips.ids[i],
                             "score": float(probs[i, j]), "row": int(i),
                             "hit": name.lower() in {t.lower() for t in truth},
                             "caption": self.clips.captions[i]})
        return pd.DataFrame(rows)

    def run(self) -> pd.DataFrame:
        """Rank for the current query and show the results (or the error) in the app."""
        def work() -> str:
            self._step(0.3, "scoring")
            self.results = self.rank(self.query.value)
            children: list[widgets.Widget] = []
            for name, part in self.results.groupby("class", sort=False):
                children.append(widgets.HTML(f"<h4>{html.escape(str(name))}</h4>"))
                children += self._rows(self.clips, part, "P")
            self.output.children = tuple(children)
            hits, n = int(self.results["hit"].sum()), self.results["class"].nunique()
            return (f"{n} class{'es' if n > 1 else ''} × top {int(self.top_k.value)} clips; "
                    f"{hits} of {len(self.results)} really hold the class named.")

        if not self._guarded(work):
            self.results = pd.DataFrame()
        return self.results


class RetrievalSearch(_App):
    """Type a sentence, get the clips whose embeddings are closest to it.

    ``model``: anything with ``encode_text(texts) -> (n, dim)`` (a
    :class:`~zskit.models.dual_encoder.DualEncoder`) or such a function itself (e.g. a sentence
    encoder's ``encode`` when ``index`` holds audio mapped into its space). ``index``: a
    :class:`~zskit.search.EmbeddingIndex` whose row ``i`` is clip ``i`` of ``clips``.
    """

    def __init__(self, clips: Clips, model: Any, index: Any, *, top_k: int = 5,
                 players: bool = True) -> None:
        from zskit.search import AudioSearch

        if len(index) != len(clips):
            raise ConfigError(f"the index holds {len(index)} rows for {len(clips)} clips; index "
                              "the clips' embeddings in the same order.")
        self.clips = clips
        self.engine = AudioSearch(_encode_function(model), index)
        self.query = widgets.Text(placeholder="describe a sound, e.g. a slow cello melody",
                                  description="search", continuous_update=False,
                                  layout={"width": "520px"})
        self.top_k = _top_k_box(top_k)
        self.button = widgets.Button(description="Search", button_style="primary")
        self.results = pd.DataFrame()
        super().__init__([widgets.HBox([self.query, self.button, self.top_k])], players)
        self.query.observe(lambda _: self.run(), names="value")
        self.top_k.observe(lambda _: self.run() if self.query.value.strip() else None,
                           names="value")
        self.button.on_click(lambda _: self.run())

    def search(self, text: str) -> pd.DataFrame:
        """The ``top_k`` clips for ``text``: rank, clip, score (cosine), row, caption."""
        if not text.strip():
            raise ConfigError("the query is empty; type a sentence, e.g. 'a slow cello melody'.")
        frame = self.engine.search(text, k=int(self.top_k.value))
        rows = frame["row"].to_numpy()
        return pd.DataFrame({
            "rank": frame["rank"].to_numpy(), "clip": [self.clips.ids[i] for i in rows],
            "score": frame["score"].to_numpy(dtype=float), "row": rows,
            "caption": [self.clips.captions[i] for i in rows],
            "holds": [", ".join(self.clips.truth[i]) for i in rows]})

    def run(self) -> pd.DataFrame:
        """Search for the current query and show the results (or the error) in the app."""
        def work() -> str:
            self._step(0.3, "searching")
            self.results = self.search(self.query.value)
            self.output.children = tuple(self._rows(self.clips, self.results, "cosine"))
            return f"top {len(self.results)} of {len(self.clips)} clips for {self.query.value!r}"

        if not self._guarded(work):
            self.results = pd.DataFrame()
        return self.results


class FoldExplorer(_App):
    """Hold classes out, retrain the projection on cached embeddings, see AP vs proximity.

    ``data``: a :class:`~zskit.zeroshot_eval.TaggingData` (embeddings from the cache);
    ``label_encoders``: label-space name -> text encoder. ``train()`` trains a
    :class:`~zskit.models.zeroshot.ZeroShotTagger` on the other classes (train split, selection
    on validation) and scores the held-out ones on the test split. ``table`` then has one row per
    held-out class with a test positive (AP, random AP, gain, nearest training class and its
    label-space cosine), ``figure`` the gain against that cosine and ``seconds`` the time taken.
    """

    NO_FAMILY = "(choose classes)"

    def __init__(self, data: Any, label_encoders: Mapping[str, Any], config: Any = None, *,
                 held_out: Sequence[str] = ()) -> None:
        if not label_encoders:
            raise ConfigError("label_encoders is empty; pass {name: text encoder}.")
        self.data, self.label_encoders, self.config = data, dict(label_encoders), config
        self.held_out = widgets.SelectMultiple(
            options=list(zip(data.names, data.classes)), rows=12, description="hold out",
            layout={"width": "360px"})
        self.family = widgets.Dropdown(
            options=[self.NO_FAMILY, *data.group_members()], description="family")
        self.label_space = widgets.Dropdown(options=list(label_encoders), description="labels")
        self.button = widgets.Button(description="Retrain projection", button_style="primary")
        self.plot = widgets.Output()
        self.table = pd.DataFrame()
        self.figure: go.Figure | None = None
        self.seconds = float("nan")
        super().__init__([widgets.HBox([self.held_out, widgets.VBox(
            [self.family, self.label_space, self.button])])], players=False)
        self.widget.children = (*self.widget.children, self.plot)
        self.family.observe(lambda change: self.hold_out_family(change["new"]), names="value")
        self.held_out.observe(lambda _: self._forget_family(), names="value")
        self.button.on_click(lambda _: self.train())
        data.index(list(held_out))  # an unknown class id raises a ConfigError naming it
        self.held_out.value = tuple(held_out)

    def hold_out_family(self, family: str) -> None:
        """Select every class of ``family`` (the "distant" case: no relative left in training)."""
        if family != self.NO_FAMILY:
            self.held_out.value = tuple(self.data.group_members()[family])

    def _forget_family(self) -> None:
        """Show no family once the selection is no longer exactly one, so that the dropdown does
        not name classes that are not held out, and choosing that family again selects it."""
        family = self.family.value
        if (family != self.NO_FAMILY
                and set(self.held_out.value) != set(self.data.group_members()[family])):
            self.family.value = self.NO_FAMILY

    def train(self) -> pd.DataFrame:
        """Retrain with the selected classes held out; update table, figure and message."""
        from zskit import viz
        from zskit.zeroshot_eval import Condition, evaluate

        def work() -> str:
            held = list(self.held_out.value)
            if not held:
                raise ConfigError("pick at least one class to hold out (or a family).")
            if len(held) == len(self.data.classes):
                raise ConfigError("every class is held out; leave some classes to train on.")
            space = self.label_space.value
            condition = Condition("held out", tuple(c for c in self.data.classes if c not in held),
                                  tuple(held), kind="custom")
            self._step(0.2, "training")
            tic = time.perf_counter()
            ev = evaluate(self.data, [condition], {space: self.label_encoders[space]},
                          self.config, progress=False)
            self.seconds = time.perf_counter() - tic
            self._step(0.9, "plotting")
            table = ev.proximity()
            if table.empty:
                raise DataError("none of the held-out classes has a positive among the test "
                                "clips, so no AP can be measured; hold out other classes.")
            self.table = table[["name", "group", "ap", "random_ap", "ap_gain", "nearest",
                                "similarity"]].sort_values("similarity", ignore_index=True)
            self.figure = viz.semantic_distance_figure(
                self.table["similarity"], self.table["ap_gain"], self.table["name"],
                self.table["group"] if self.data.groups is not None else None,
                hover=[f"nearest training class: {n}" for n in self.table["nearest"]],
                title=f"{space}: held-out classes, AP gain vs proximity")
            self.plot.clear_output()
            with self.plot:
                display(self.figure)
            shown = self.table.rename(columns={"random_ap": "random AP", "ap_gain": "AP gain"})
            self.output.children = (widgets.HTML(shown.round(3).to_html(index=False)),)
            return (f"trained on {len(condition.train)} classes in {self.seconds:.1f} s; "
                    f"{len(self.table)} of {len(held)} held-out classes have test positives; "
                    f"mean AP {self.table['ap'].mean():.3f} (random "
                    f"{self.table['random_ap'].mean():.3f}).")

        if not self._guarded(work):
            self.table, self.figure, self.seconds = pd.DataFrame(), None, float("nan")
            self.plot.clear_output()
        return self.table
