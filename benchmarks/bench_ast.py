"""How the cost of AST grows with patch overlap, and what PaSST's structured patchout saves.

On 10 s inputs (AST: 1,024 frames x 128 Kaldi bins; PaSST: 998 frames x 128 mels, as the
released models), all in one run on random weights of one width:

- AST forward (inference) at overlap 0, 2, 4, 6 (strides 16, 14, 12, 10: 512, 657, 850 and 1,212
  patches, paper 2's Table 5): clips/s and tokens/s, and the cost relative to overlap 0;
- PaSST-S (stride 10, 1,188 patches) training steps (forward + backward) with structured patchout
  (4 frequency rows and 50 time columns dropped: 392 patches) and without; the speed-up.

Sizes: ``--size base`` is ViT-Base (768-d, 12 blocks: the papers' models; slow on a CPU), ``small``
(192-d, 4 blocks, the default) keeps the papers' sequence lengths at a CPU-friendly width.

    .venv/bin/python benchmarks/bench_ast.py [--size small] [--batch 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from zskit.encoders.audio.ast import ASTEncoder, ASTEncoderConfig
from zskit.encoders.audio.passt import PaSST, PaSSTConfig

SIZES = {"small": {"embed_dim": 192, "depth": 4, "num_heads": 3},
         "base": {"embed_dim": 768, "depth": 12, "num_heads": 12}}


def best_of(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (after one untimed warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    size = SIZES[args.size]
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}; size {args.size} {size}; batch {args.batch}")

    fbank = torch.randn(args.batch, 1024, 128)
    base = None
    print("AST forward (inference), 10 s = 1,024 frames x 128 bins")
    for overlap in (0, 2, 4, 6):
        stride = 16 - overlap
        cfg = ASTEncoderConfig(embed_dim=size["embed_dim"], depth=size["depth"],
                               num_heads=size["num_heads"], mlp_dim=4 * size["embed_dim"],
                               frequency_stride=stride, time_stride=stride, num_classes=0)
        model = ASTEncoder(cfg).eval()
        with torch.inference_mode():
            seconds = best_of(lambda m=model: m.forward_fbank(fbank), args.repeats)
        clips = args.batch / seconds
        base = base or seconds
        print(f"  overlap {overlap}: {cfg.num_patches:5d} patches | {clips:7.2f} clips/s | "
              f"{clips * cfg.num_patches:9.0f} tokens/s | cost x{seconds / base:5.2f} of overlap 0")

    spec = torch.randn(args.batch, 1, 128, 998)
    print("PaSST-S training step (forward + backward), 998 frames x 128 mels")
    times = {}
    for patchout in (False, True):
        cfg = PaSSTConfig(embed_dim=size["embed_dim"], depth=size["depth"],
                          num_heads=size["num_heads"], num_classes=0,
                          **({} if patchout else {"s_patchout_t": 0, "s_patchout_f": 0}))
        model = PaSST(cfg).train()

        def step(m=model):
            m.zero_grad(set_to_none=True)
            m.forward_spectrogram(spec).embedding.sum().backward()

        times[patchout] = best_of(step, args.repeats)
        rows = cfg.freq_positions - cfg.s_patchout_f
        cols = cfg.time_patches(998) - cfg.s_patchout_t
        clips = args.batch / times[patchout]
        print(f"  patchout {'on ' if patchout else 'off'}: {rows * cols:5d} patches | "
              f"{clips:7.2f} clips/s | {clips * rows * cols:9.0f} tokens/s")
    print(f"  structured patchout speed-up: x{times[False] / times[True]:.2f}")


if __name__ == "__main__":
    main()
