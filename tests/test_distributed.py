"""torchrun on 127.0.0.1 with 2 gloo processes: DDP training equals a single process, and sharded
embedding extraction merges into the single-process cache; sharding as DistributedSampler does."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cache import StatsEncoder, _write_clips
from torch import nn
from torch.utils.data import DistributedSampler

from zskit.cache import embed_manifest
from zskit.train import DistInfo, TrainConfig, fit, shard_indices
from zskit.train.batches import LoaderBatches, TensorBatches
from zskit.train.distributed import ShardedSampler
from zskit.train.recipes import BalancedSampler, balanced_loader

TESTS = Path(__file__).resolve().parent


# Shared by this process (the single-process reference) and the torchrun workers, which import them.
def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=gen)
    y = (x @ torch.randn(6, 3, generator=gen) > 0).float()
    return x, y


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


CONFIG = TrainConfig(
    lr=0.05, max_epochs=3, schedule="cosine", warmup_steps=2, grad_clip=1.0, select="last",
    device="cpu", amp="off", progress=False,
)  # fmt: skip

WORKER = """
import dataclasses, sys
from pathlib import Path
import torch, torch.distributed as dist
from torch.utils.data import TensorDataset
from zskit.train import cleanup_distributed, fit
from test_distributed import CONFIG, make_data, make_model

out = Path(sys.argv[1])
config = dataclasses.replace(CONFIG, batch_size=8)  # per process: a global batch of 16
x, y = make_data()
grouped = dataclasses.replace(config, loss_read_every=3)  # losses all-reduced 3 at a time
for name, data, cfg in (("tensors", (x, y), config), ("dataset", TensorDataset(x, y), config),
                        ("grouped", (x, y), grouped)):
    result = fit(make_model(), data, val_data=(x, y), config=cfg, out_dir=out / name)
    state = {"model": result.model.state_dict(), "history": result.history.to_dict("list")}
    torch.save(state, out / f"{name}_rank{dist.get_rank()}.pt")
cleanup_distributed()
"""


EMBED_WORKER = """
import sys
from pathlib import Path
import numpy as np, torch.distributed as dist
from zskit.cache import embed_manifest
from zskit.train import cleanup_distributed
from test_cache import StatsEncoder

out = Path(sys.argv[1])
paths = sorted((out / "audio").glob("*.wav"))
encoder = StatsEncoder()
emb = embed_manifest(encoder, paths, cache_dir=out / "cache", batch_size=2, shard_size=2,
                     progress=False, device="cpu")
rank = dist.get_rank()
np.save(out / f"emb_rank{rank}.npy", np.asarray(emb))
(out / f"calls_rank{rank}.txt").write_text(str(encoder.calls))
cleanup_distributed()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(worker: str, folder: Path) -> None:
    """Run ``worker`` (Python source) as 2 gloo processes on 127.0.0.1 with ``folder`` as argv[1]."""
    script = folder / "worker.py"
    script.write_text(worker)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]),
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(script), str(folder),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize("n, world", [(10, 2), (11, 2), (7, 3), (2, 4)])
def test_shard_indices_match_distributed_sampler(n, world):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(5))
    dataset = list(range(n))
    for rank in range(world):
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=5)
        want = list(sampler)
        got = shard_indices(order, rank, world).tolist()
        assert got == want, f"n={n}, world={world}, rank={rank}: {got} != DistributedSampler {want}"


def test_rank_batches_together_form_the_global_batch():
    x = torch.arange(32).float()[:, None]
    single = TensorBatches((x,), 8, device=torch.device("cpu"), shuffle=True, seed=3)
    ranks = [
        TensorBatches(
            (x,), 4, device=torch.device("cpu"), shuffle=True, seed=3, dist=DistInfo(r, 2)
        )
        for r in range(2)
    ]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 4
    for step, (whole, *parts) in enumerate(zip(single.epoch(1), *(r.epoch(1) for r in ranks))):
        union = torch.cat([p[0] for p in parts]).flatten().sort().values
        assert torch.equal(union, whole[0].flatten().sort().values), (
            f"step {step}: shards != global batch"
        )


@pytest.mark.timeout(120)
def test_two_process_gloo_run_matches_single_process(tmp_path):
    _torchrun(WORKER, tmp_path)

    x, y = make_data()
    one_process = dataclasses.replace(CONFIG, batch_size=16)  # the same global batch
    reference = fit(make_model(), (x, y), val_data=(x, y), config=one_process)
    histories = {}
    for name in ("tensors", "dataset", "grouped"):
        r0, r1 = (torch.load(tmp_path / f"{name}_rank{r}.pt", weights_only=True) for r in (0, 1))
        histories[name] = r0["history"]
        for key, value in r0["model"].items():
            assert torch.equal(value, r1["model"][key]), f"{name}: ranks disagree on {key}"
            want = reference.model.state_dict()[key]
            assert torch.allclose(value, want, atol=1e-5), (
                f"{name}: DDP vs single process differ on {key} by {(value - want).abs().max():.2e}"
            )
        assert r0["history"] == r1["history"], f"{name}: ranks recorded different histories"
        assert r0["history"]["step"] == [4, 8, 12], (
            f"{name}: 64 examples / (2 x 8) = 4 steps per epoch"
        )
        ckpt = torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)
        assert len(ckpt["rng"]) == 2, "the checkpoint must hold both ranks' RNG states"
        written = sorted(p.name for p in (tmp_path / name).iterdir())
        assert written == ["checkpoint.pt", "model.pt"], f"{name}: unexpected files {written}"
    assert histories["grouped"]["train_loss"] == histories["tensors"]["train_loss"], (
        "losses read 3 steps at a time gave another train_loss than reading every step"
    )


@pytest.mark.timeout(120)
def test_two_process_embedding_merges_into_the_single_process_cache(tmp_path):
    paths = _write_clips(tmp_path / "audio", 11, (0.1, 0.4))  # 6 shards of 2 rows (the last: 1)
    _torchrun(EMBED_WORKER, tmp_path)
    alone = StatsEncoder()
    reference = embed_manifest(alone, paths, cache_dir=tmp_path / "alone", batch_size=2,
                               shard_size=2, progress=False, device="cpu")
    for rank in (0, 1):
        got = np.load(tmp_path / f"emb_rank{rank}.npy")
        np.testing.assert_array_equal(got, reference,
                                      err_msg=f"rank {rank}: sharded cache != single process")
        calls = int((tmp_path / f"calls_rank{rank}.txt").read_text())
        assert calls == 3, f"rank {rank} ran the encoder {calls} times; its 3 shards need 3"
    assert alone.calls == 6, f"the single process needs 6 calls, made {alone.calls}"
    (folder,) = (tmp_path / "cache" / "statsencoder").iterdir()
    left = sorted(p.name for p in folder.iterdir() if p.name != ".merge.lock")  # empty lock file
    assert left == ["complete.json", "embeddings.npy", "key.json"], f"after the merge: {left}"


def test_sharded_sampler_splits_one_balanced_draw_between_ranks():
    labels = np.zeros((12, 3), dtype=np.float32)
    labels[:10, 0], labels[10, 1], labels[11, 2] = 1, 1, 1  # two rare classes
    whole = BalancedSampler(labels, num_samples=9, seed=4)
    ranks = [ShardedSampler(BalancedSampler(labels, num_samples=9, seed=4), r, 2) for r in (0, 1)]
    for epoch in (0, 3):
        for s in (whole, *ranks):
            s.set_epoch(epoch)
        drawn = list(whole)
        shards = [list(r) for r in ranks]
        assert [len(s) for s in shards] == [len(r) for r in ranks] == [5, 5], "equal shares"
        padded = drawn + drawn[:1]  # 9 draws padded to 10, as DistributedSampler pads
        assert shards[0] == padded[0::2] and shards[1] == padded[1::2], (
            f"epoch {epoch}: shards {shards} are not the one draw {drawn} split by rank")
    first = list(whole)  # epoch 3
    whole.set_epoch(0)
    assert list(whole) != first, "each epoch draws anew"


def test_fit_keeps_balanced_sampling_under_torchrun():
    labels = np.zeros((12, 3), dtype=np.float32)
    labels[:10, 0], labels[10, 1], labels[11, 2] = 1, 1, 1
    x = torch.arange(12).float()[:, None]
    whole = LoaderBatches(balanced_loader((x, labels), labels, 4, seed=2), 4, shuffle=True)
    ranks = [LoaderBatches(balanced_loader((x, labels), labels, 2, seed=2), 2, shuffle=True,
                           dist=DistInfo(r, 2)) for r in (0, 1)]
    assert all(isinstance(r.loader.sampler, ShardedSampler) for r in ranks), "balanced kept"
    for epoch in (0, 1):
        drawn = torch.cat([b[0] for b in whole.epoch(epoch)]).flatten().sort().values
        shards = torch.cat([b[0] for r in ranks for b in r.epoch(epoch)]).flatten().sort().values
        assert torch.equal(shards, drawn), f"epoch {epoch}: the ranks together draw {shards}"
