"""Distributed data parallel under ``torchrun``: process group, sharding and small collectives.

``fit`` and ``EmbeddingCache.compute`` call :func:`setup_distributed`, which joins the process
group that ``torchrun`` describes in the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) with gloo on CPU and nccl on CUDA. A single process (no torchrun)
runs with world size 1 and no group. The group is left open for later calls; end a script with
:func:`cleanup_distributed`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = [
    "DistInfo",
    "ShardedSampler",
    "barrier",
    "cleanup_distributed",
    "setup_distributed",
    "shard_indices",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's rank, the number of processes and its local (per-node) rank."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_type: str) -> DistInfo:
    """Join the torchrun process group (creating it when needed); world size 1 without torchrun."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or not dist.is_available():
        return DistInfo()
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def cleanup_distributed() -> None:
    """Destroy the process group if one is open (call once at the end of a torchrun script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_indices(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's share of ``order``, exactly as ``DistributedSampler`` (drop_last=False) does.

    Pad by repeating from the start to a multiple of ``world_size``, then take every
    ``world_size``-th index from ``rank``. Batch b of every rank's shard together make up batch b
    of ``order`` with a batch size ``world_size`` times larger.
    """
    if world_size <= 1:
        return order
    total = -(-len(order) // world_size) * world_size
    if total > len(order):
        repeats = -(-total // len(order))
        order = order.repeat(repeats)[:total]
    return order[rank:total:world_size]


class ShardedSampler(Sampler[int]):
    """This rank's share of another sampler's draws (e.g. a balanced sampler), sharded as
    :func:`shard_indices` shards them.

    Every rank must draw the same indices, so the inner sampler has to be seeded the same on
    every process (``zskit.train.BalancedSampler`` seeds each epoch with ``seed + epoch``);
    :meth:`set_epoch` is passed on to it.
    """

    def __init__(self, sampler: Sampler[int], rank: int, world_size: int) -> None:
        self.sampler, self.rank, self.world_size = sampler, rank, world_size

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        order = torch.as_tensor(list(self.sampler), dtype=torch.long)
        return iter(shard_indices(order, self.rank, self.world_size).tolist())

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.world_size)


def barrier(info: DistInfo) -> None:
    """Wait until every process gets here (a no-op for one process)."""
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``value`` over all processes (a no-op for one process)."""
    if not info.enabled:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, indexed by rank."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
