"""Training a head on cached embeddings: ``fit()``'s tensor fast path against the loops users
would otherwise write, in one run.

Four loops train the same head (linear, or a 2-layer MLP with 256 hidden units; AdamW, masked BCE)
on the same in-memory tensors (synthetic clip embeddings and multi-hot labels) for the same number
of epochs, at several batch sizes:

- ``fit``: ``zskit.train.fit(model, (X, Y))``: index slices of a seeded permutation, no DataLoader,
  AdamW with torch's fused step where this torch has one (CPU: torch >= 2.4);
- DataLoader: the textbook loop over ``DataLoader(TensorDataset(X, Y), batch_size,
  shuffle=True)``, which fetches and collates one example at a time, with the same optimiser as
  ``fit`` (fused AdamW): the ratio to it is what the data path alone is worth;
- DataLoader, default AdamW: the same loop with ``torch.optim.AdamW(params, lr)`` as most code
  writes it (torch's default, unfused step on a CPU): what a user gains by switching to ``fit``;
- bare loop: a hand-written loop over index slices of ``torch.randperm`` with nothing else (no
  schedule, no loss check, no bookkeeping) and the same optimiser as ``fit``: the floor.

Prints samples/s of each (best of ``--repeats``) and the ratios. The DataLoader's cost is per
example, the others' per batch, so the gap grows with the batch size and shrinks as the head's own
compute grows. A first table times the batches alone (one epoch of batches, no training): the
fast path's ``TensorBatches`` against the DataLoader. The column "data share" is the part of
the DataLoader loop's time that its batches alone take: by Amdahl's law, no data path can make a
loop with the same training step faster than 1 / (1 - share).

Times are process CPU time by default (``--clock cpu``): with one torch thread that is the work
done, and it does not count the time the process waits for a core on a machine shared with other
work, which makes wall times swing by 10-30 % from one run to the next. ``--clock wall`` times
the wall clock instead.

On a GPU (``--device cuda``, e.g. on Colab; or ``mps``) the step costs tens of microseconds, so
the data path decides more of the ratio. There ``fit``, the bare loop and the batches hold the
tensors on the device; the DataLoader loops keep them on the CPU and move each batch with
``.to(device)``, as the textbook loop does. Times are then wall times, with the device
synchronised before each clock read.

    .venv/bin/python benchmarks/bench_fit.py [--clips 20000] [--dim 512] [--batches 64 256 1024]
                                             [--device cpu|cuda|mps]
"""

from __future__ import annotations

import argparse
import os
import time
import timeit

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zskit.devices import resolve_device
from zskit.losses import masked_bce
from zskit.train import TrainConfig, fit
from zskit.train.batches import TensorBatches
from zskit.train.loop import _has_fused_kernel

DEVICE = torch.device("cpu")  # set by main() from --device
FUSED: bool | None = None  # torch's fused AdamW step where DEVICE has a kernel (set by main())


def make_model(head: str, dim: int, n_classes: int) -> nn.Module:
    torch.manual_seed(0)
    if head == "linear":
        return nn.Linear(dim, n_classes).to(DEVICE)
    return nn.Sequential(nn.Linear(dim, 256), nn.ReLU(), nn.Linear(256, n_classes)).to(DEVICE)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor) -> None:
    loss = masked_bce(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def bare_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int,
              lr: float) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, fused=FUSED)
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        order = order.to(x.device)
        for a in range(0, len(x), batch):
            idx = order[a:a + batch]
            train_step(model, optimizer, x.index_select(0, idx), y.index_select(0, idx))


def dataloader_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int,
                    lr: float, fit_optimizer: bool = True) -> None:
    """``fit_optimizer``: the same AdamW step as ``fit`` (fused where it can), else torch's
    default."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr,
                                  fused=FUSED if fit_optimizer else None)
    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=batch, shuffle=True)
    for _ in range(epochs):
        for xb, yb in loader:
            train_step(model, optimizer, xb.to(DEVICE), yb.to(DEVICE))


def default_adamw_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int,
                       epochs: int, lr: float) -> None:
    dataloader_loop(model, x, y, batch, epochs, lr, fit_optimizer=False)


def fit_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int,
             lr: float) -> None:
    config = TrainConfig(lr=lr, batch_size=batch, max_epochs=epochs, device=str(DEVICE),
                         amp="off", progress=False, select="last")
    fit(model, (x, y), config=config)


def synced_wall() -> float:
    """Wall time after the device has finished its queued work (CUDA and MPS run ahead)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
    elif DEVICE.type == "mps":
        torch.mps.synchronize()
    return time.perf_counter()


def time_batches(x: torch.Tensor, y: torch.Tensor, batch: int, repeats: int, clock
                 ) -> tuple[float, float]:
    """Seconds for one epoch of batches (best of ``repeats``): TensorBatches, DataLoader."""
    fast = TensorBatches((x, y), batch, device=DEVICE, shuffle=True)
    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=batch, shuffle=True)
    t_fast = min(timeit.repeat(lambda: sum(1 for _ in fast.epoch(0)), number=1, repeat=repeats,
                               timer=clock))
    t_loader = min(timeit.repeat(lambda: sum(1 for _ in ((xb.to(DEVICE), yb.to(DEVICE))
                                                         for xb, yb in loader)),
                                 number=1, repeat=repeats, timer=clock))
    return t_fast, t_loader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--heads", nargs="+", default=["linear", "mlp"], choices=["linear", "mlp"])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: steady timings on a machine shared with other work)")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="process CPU time (default) or wall time (always wall off the CPU)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    args = ap.parse_args()
    global DEVICE, FUSED
    DEVICE = resolve_device(args.device)
    FUSED = _has_fused_kernel(torch.optim.AdamW, DEVICE, torch.float32) or None
    clock = time.process_time if args.clock == "cpu" and DEVICE.type == "cpu" else synced_wall
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.clips, args.dim, generator=gen).to(DEVICE)
    y = (torch.rand(args.clips, args.classes, generator=gen) < 0.1).float().to(DEVICE)
    samples = args.clips * args.epochs
    print(f"torch threads {torch.get_num_threads()}; {args.clips} x {args.dim} embeddings, "
          f"{args.classes} classes, {args.epochs} epoch(s) per run; samples/s, best of "
          f"{args.repeats} ({args.clock} time)")
    print(f"device {DEVICE}; fused AdamW step: {bool(FUSED)}; clock: "
          f"{'process CPU time' if clock is time.process_time else 'wall, synchronised'}")
    print("batches alone: batch | TensorBatches | DataLoader | ratio")
    loader_epoch = {}
    for batch in args.batches:
        t_fast, loader_epoch[batch] = time_batches(x, y, batch, args.repeats, clock)
        print(f"{batch:19d} | {args.clips / t_fast:13.0f} | {args.clips / loader_epoch[batch]:10.0f}"
              f" | {loader_epoch[batch] / t_fast:5.1f}x")
    loops = {"fit": fit_loop, "DataLoader": dataloader_loop, "default": default_adamw_loop,
             "bare": bare_loop}
    print("head    batch |     fit | DataLoader | DL, default AdamW |    bare | fit/DL | data share"
          " | fit/DL default | fit/bare | load")
    for head in args.heads:
        for batch in args.batches:
            best = {name: float("inf") for name in loops}
            for _ in range(args.repeats):  # interleaved, so load changes hit every loop alike
                for name, loop in loops.items():
                    model = make_model(head, args.dim, args.classes)
                    t0 = clock()
                    loop(model, x, y, batch, args.epochs, args.lr)
                    best[name] = min(best[name], clock() - t0)
            rate = {name: samples / seconds for name, seconds in best.items()}
            share = args.epochs * loader_epoch[batch] / best["DataLoader"]
            print(f"{head:<7} {batch:5d} | {rate['fit']:7.0f} | {rate['DataLoader']:10.0f} | "
                  f"{rate['default']:17.0f} | {rate['bare']:7.0f} | "
                  f"{rate['fit'] / rate['DataLoader']:5.2f}x | {share:10.0%} | "
                  f"{rate['fit'] / rate['default']:13.2f}x | {rate['fit'] / rate['bare']:8.3f} | "
                  f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
