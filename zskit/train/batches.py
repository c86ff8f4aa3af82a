"""Batches for ``fit``: the in-memory tensor fast path, and any Dataset or DataLoader.

Both paths shuffle with the same permutation, ``torch.randperm(n)`` from a generator seeded with
``seed + epoch`` and shared between processes like ``DistributedSampler`` does, so tensors and a
``TensorDataset`` of the same tensors give the same batches, and a run can resume mid-epoch.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from zskit.errors import ConfigError, DataError
from zskit.train.distributed import DistInfo, ShardedSampler, shard_indices

SINGLE_PROCESS = DistInfo()

__all__ = [
    "LoaderBatches",
    "TensorBatches",
    "batch_size_of",
    "data_tensor",
    "make_batches",
    "to_device",
]


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside a (nested) tuple, list or dict batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def data_tensor(t: Any) -> torch.Tensor:
    """A tensor of ``t``; NumPy floats (float64 by default) become torch's default float dtype,
    which the model's weights have."""
    if isinstance(t, np.ndarray) and np.issubdtype(t.dtype, np.floating):
        return torch.as_tensor(t, dtype=torch.get_default_dtype())
    return torch.as_tensor(t)


def batch_size_of(batch: Any) -> int:
    """The number of examples in ``batch``: the length of its first tensor (or list)."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.ndim else 1
    if isinstance(batch, Mapping):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for value in batch:
            if isinstance(value, (torch.Tensor, Mapping, list, tuple)):
                return batch_size_of(value)
        return len(batch)
    return 1


def is_tensor_tuple(data: Any) -> bool:
    """True for the fast path: a tuple or list of tensors / arrays of equal length."""
    return (
        isinstance(data, (tuple, list))
        and len(data) > 0
        and all(isinstance(t, (torch.Tensor, np.ndarray)) for t in data)
    )


class TensorBatches:
    """Batches of in-memory tensors held on ``device``: index slices of a seeded permutation.

    No DataLoader and no workers: each batch is ``tensor.index_select(0, idx)``. Under torchrun each
    rank takes its shard of the permutation (:func:`shard_indices`). The batches are already on
    ``device`` (``on_device``), so the loop need not move them.
    """

    on_device = True

    def __init__(
        self,
        tensors: Sequence[torch.Tensor | np.ndarray],
        batch_size: int,
        *,
        device: torch.device,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        dist: DistInfo = SINGLE_PROCESS,
    ) -> None:
        tensors = [data_tensor(t) for t in tensors]
        lengths = {len(t) for t in tensors}
        if len(lengths) != 1:
            shapes = [tuple(t.shape) for t in tensors]
            raise DataError(
                f"the tensors of train/val data have different lengths {shapes}; "
                "pass (X, Y[, mask]) of equal length."
            )
        self.n = lengths.pop()
        if self.n == 0:
            raise DataError("the data tensors are empty; pass at least one example.")
        self.tensors = tuple(t.to(device) for t in tensors)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.drop_last, self.dist = drop_last, dist
        self.per_rank = -(-self.n // dist.world_size)

    def __len__(self) -> int:
        full, rest = divmod(self.per_rank, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """The batches of ``epoch``, leaving out the first ``skip`` (to resume mid-epoch)."""
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.n, generator=gen)
        else:
            order = torch.arange(self.n)
        order = shard_indices(order, self.dist.rank, self.dist.world_size)
        order = order.to(self.tensors[0].device)
        for idx in order.split(self.batch_size)[skip : len(self)]:  # len leaves out a short last
            yield tuple([t.index_select(0, idx) for t in self.tensors])  # batch with drop_last

    def generator_states(self, mid_epoch: bool) -> list[torch.Tensor]:
        """None to keep in a checkpoint: each epoch's order comes from ``seed + epoch``."""
        return []

    def set_generator_states(self, states: Sequence[torch.Tensor]) -> None:
        """Nothing to restore (see :meth:`generator_states`)."""


class _ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can leave out the first ``skip`` indices of an epoch."""

    skip = 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return super().__len__() - self.skip


class LoaderBatches:
    """Batches from a Dataset (in a DataLoader with a per-epoch seeded sampler) or a DataLoader.

    A DataLoader is used as is; under torchrun it is rebuilt so that each rank loads its share
    (``_distributed_loader``: balanced sampling stays balanced). Its batches are on the CPU
    (``on_device`` is False): the loop moves them; ``pin_memory`` (set for a CUDA device)
    page-locks a Dataset's batches for that copy.
    """

    on_device = False

    def __init__(
        self,
        data: Dataset | DataLoader,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        num_workers: int = 0,
        drop_last: bool = False,
        dist: DistInfo = SINGLE_PROCESS,
        pin_memory: bool = False,
    ) -> None:
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)  # worker seeds: not the global RNG
        self.sampler: _ResumableSampler | None = None
        self._borrowers: list[Any] = []  # a caller's DataLoader / sampler without generator
        self._own_generators: list[torch.Generator] = []  # ... and the generators they came with
        self._epoch_start: list[torch.Tensor] = []  # the states of those as this epoch began
        if isinstance(data, DataLoader):
            self.loader = _distributed_loader(data, seed, dist) if dist.enabled else data
            # A DataLoader or random sampler (RandomSampler, WeightedRandomSampler, ...) without
            # a generator of its own draws from torch's global generator each epoch (its workers'
            # base seed; the sampler's order), so a resumed run would draw at another point than
            # the uninterrupted one: fit lends them its generator, reseeded per epoch, for the
            # length of each epoch (the caller's loader is left as it was, ready for another fit
            # with another seed). Generators of their own run on from epoch to epoch: checkpoints
            # keep their states (generator_states).
            users = [obj for obj in (self.loader, *_samplers(self.loader))
                     if hasattr(obj, "generator")]
            self._borrowers = [obj for obj in users if obj.generator is None]
            self._own_generators = list({id(obj.generator): obj.generator for obj in users
                                         if obj.generator is not None}.values())
        else:
            if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
                raise ConfigError(
                    f"cannot train on {type(data).__name__}: pass tensors (X, Y[, mask]), a "
                    "map-style Dataset or a DataLoader."
                )
            self.sampler = _ResumableSampler(
                data, num_replicas=dist.world_size, rank=dist.rank, shuffle=shuffle, seed=seed
            )
            self.loader = DataLoader(
                data,
                batch_size=batch_size,
                sampler=self.sampler,
                num_workers=num_workers,
                drop_last=drop_last,
                generator=self.generator,
                pin_memory=pin_memory,
                persistent_workers=False,
            )
        try:
            self.length = len(self.loader)
        except TypeError as exc:
            raise ConfigError(
                "the training DataLoader has no length (an IterableDataset?); fit needs the "
                "number of batches per epoch: pass a map-style Dataset or give it a __len__."
            ) from exc

    def __len__(self) -> int:
        return self.length

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Any]:
        """The batches of ``epoch``, leaving out the first ``skip`` (to resume mid-epoch)."""
        for sampler in _samplers(self.loader):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
        self.generator.manual_seed(self.seed + epoch)
        if self.sampler is not None and self.loader.num_workers == 0:
            self.sampler.skip = skip * self.loader.batch_size  # nothing loaded for skipped ones
            try:
                yield from self.loader
            finally:
                self.sampler.skip = 0
        else:  # a DataLoader given as is, or workers: skipped batches are still loaded, so that
            # each worker (its own random generators, batches taken in turn) draws for the
            # batches after them what it drew in the uninterrupted run (random crops, say)
            for obj in self._borrowers:
                obj.generator = self.generator
            self._epoch_start = [g.get_state() for g in self._own_generators]
            try:
                yield from itertools.islice(self.loader, skip, None)
            finally:
                for obj in self._borrowers:
                    obj.generator = None

    def generator_states(self, mid_epoch: bool) -> list[torch.Tensor]:
        """For a checkpoint: the states of the caller's own generators (DataLoader, sampler) at
        the start of this epoch when it is left ``mid_epoch`` (a resumed run draws it again from
        its start), else as they are now (ready for the next epoch)."""
        if mid_epoch:
            return list(self._epoch_start)
        return [g.get_state() for g in self._own_generators]

    def set_generator_states(self, states: Sequence[torch.Tensor]) -> None:
        """Restore the states saved by :meth:`generator_states` (to resume a run)."""
        for generator, state in zip(self._own_generators, states):
            generator.set_state(state)


def _samplers(loader: DataLoader) -> list[Any]:
    """The loader's sampler and, when the caller gave a ``batch_sampler``, the sampler inside it
    (the loader's own ``sampler`` is then a stand-in that is never drawn from)."""
    inner = getattr(loader.batch_sampler, "sampler", None)
    return [s for s in dict.fromkeys((loader.sampler, inner)) if s is not None]


def _distributed_loader(loader: DataLoader, seed: int, dist: DistInfo) -> DataLoader:
    """The same DataLoader sharded across ranks: a ``DistributedSampler`` kept as it is; a
    sequential or random sampler replaced by a ``DistributedSampler``; any other sampler (e.g.
    ``BalancedSampler``) kept and its draws sharded (:class:`ShardedSampler`), which needs it to
    draw the same indices on every rank (seeded, as ``BalancedSampler`` is)."""
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    if loader.batch_size is None:
        raise ConfigError(
            "under torchrun fit cannot shard a DataLoader built with a custom batch_sampler; "
            "give it a DistributedSampler-based sampler yourself or pass the Dataset."
        )
    if isinstance(loader.sampler, (RandomSampler, SequentialSampler)):
        sampler: Sampler[int] = DistributedSampler(
            loader.dataset,
            num_replicas=dist.world_size,
            rank=dist.rank,
            shuffle=isinstance(loader.sampler, RandomSampler),
            seed=seed,
        )
    else:
        sampler = ShardedSampler(loader.sampler, dist.rank, dist.world_size)
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        worker_init_fn=loader.worker_init_fn,
    )


def make_batches(
    data: Any,
    batch_size: int,
    *,
    device: torch.device,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    dist: DistInfo = SINGLE_PROCESS,
) -> TensorBatches | LoaderBatches:
    """The fast path for a tuple of tensors, a DataLoader-based path otherwise."""
    if is_tensor_tuple(data):
        return TensorBatches(
            data,
            batch_size,
            device=device,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            dist=dist,
        )
    if isinstance(data, (torch.Tensor, np.ndarray)):
        raise ConfigError(
            "train/val data is a single tensor; pass a tuple (X, Y[, mask]) so targets come "
            "with the inputs."
        )
    return LoaderBatches(
        data,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        num_workers=num_workers,
        drop_last=drop_last,
        dist=dist,
        pin_memory=device.type == "cuda",  # page-locked batches copy to a GPU without a wait
    )
