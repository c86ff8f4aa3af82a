"""Paper 1 on the default corpus: embedding once vs training the projection and scoring all folds.

    .venv/bin/python benchmarks/bench_zeroshot.py [--smoke] [--seeds 1] [--threads 1]
                                                  [--label-encoder glove] [--skip-embedding]

Times, in one run: YAMNet embedding the corpus into a fresh temporary embedding cache (what the
first run of notebook 01 pays once), then, for one label space, one projection run alone and every
class fold trained and scored (``n_folds`` x ``seeds`` runs of
:class:`~zskit.models.zeroshot.ZeroShotTagger`) from the cached embeddings. The issue's target:
once embeddings are cached, training the projection and evaluating all folds takes seconds.
Prints the ratio of that time to the embedding time. ``--threads`` sets torch's CPU threads for
the whole run (0: torch's default).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from zskit.cache import EmbeddingCache
from zskit.data.manifest import load_corpus
from zskit.data.splits import class_folds
from zskit.data.synth import ensure_corpus
from zskit.encoders.registry import create_audio_encoder
from zskit.models.zeroshot import ZeroShotConfig
from zskit.zeroshot_eval import (
    TaggingData,
    create_label_encoder,
    evaluate,
    fold_conditions,
    run_condition,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="the ~100-clip smoke corpus")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    ap.add_argument("--label-encoder", default="glove")
    ap.add_argument("--skip-embedding", action="store_true",
                    help="use the warm default cache instead of timing a cold embedding")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    corpus = load_corpus(ensure_corpus(smoke=args.smoke, progress=False))
    encoder = create_audio_encoder("yamnet", pretrained="audioset")
    embed_s = None
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_embedding:
            t0 = time.perf_counter()
            EmbeddingCache(encoder, corpus, cache_dir=tmp, progress=False).compute()
            embed_s = time.perf_counter() - t0
        embeddings = EmbeddingCache(encoder, corpus, cache_dir=None if args.skip_embedding
                                    else tmp, progress=False).compute().embeddings
        t0 = time.perf_counter()
        data = TaggingData.from_corpus(corpus, embeddings)
        label_encoder = {args.label_encoder: create_label_encoder(args.label_encoder)}
        setup_s = time.perf_counter() - t0

        conditions = fold_conditions(data, class_folds(data.labels[data.rows("train")],
                                                       args.folds))
        config = ZeroShotConfig()
        run_condition(data, conditions[0], label_encoder[args.label_encoder],
                      ZeroShotConfig(epochs=1))  # first use of the optimiser imports torch parts
        t0 = time.perf_counter()
        run_condition(data, conditions[0], label_encoder[args.label_encoder], config)
        one_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ev = evaluate(data, conditions, label_encoder, config, seeds=range(args.seeds),
                      progress=False)
        folds_s = time.perf_counter() - t0
    mean = ev.pooled([c.name for c in conditions]).iloc[0]

    print(f"corpus: {len(data.labels)} clips ({len(data.rows('train'))} train), "
          f"{len(data.classes)} classes; torch threads {torch.get_num_threads()}")
    if embed_s is not None:
        print(f"embedding with YAMNet (cold cache):               {embed_s:8.1f} s "
              f"({1000 * embed_s / len(data.labels):.0f} ms/clip)")
    print(f"label encoder {args.label_encoder!r} + data:                  {setup_s:8.1f} s")
    print(f"one projection run ({config.epochs} epochs + scoring):          {one_s:8.2f} s")
    print(f"all {len(conditions)} folds x {args.seeds} seed(s) = {len(ev.scores)} runs:          "
          f"{folds_s:8.1f} s  (mean ZS mAP {mean['mAP']:.3f}, random {mean['random mAP']:.3f})")
    if embed_s is not None:
        print(f"training + scoring all folds / embedding the corpus = {folds_s / embed_s:.3f}")


if __name__ == "__main__":
    main()
