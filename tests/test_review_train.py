"""Regression tests of the training review: resume with DataLoader workers, with a caller's
seeded or weighted samplers and under the plateau schedule; NaN monitors; callbacks without
on_step_end; decay settings that cannot hold."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from test_train import QUIET, Recorder, _assert_same, _data, _model, _weights
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
)

from zskit.errors import ConfigError
from zskit.train import Callback, TrainConfig, fit, loop
from zskit.train.recipes import BalancedSampler


class NoisyItems(Dataset):
    """Each item drawn with noise from torch's generator, as a random crop or gain would be."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i] + 0.5 * torch.randn(self.x.shape[1]), self.y[i]


def test_resume_with_dataloader_workers_draws_what_the_uninterrupted_run_drew(tmp_path):
    """A worker's generator advances with every batch it loads; skipping the resumed epoch's
    first batches in the sampler left the worker drawing the noise of those batches for the
    later ones, so the resumed run trained on other data than the uninterrupted one."""
    x, y = _data(40)
    config = dataclasses.replace(QUIET, lr=0.05, batch_size=8, max_epochs=2, num_workers=1,
                                 select="last")

    def run(name, **kw):
        return fit(_model(seed=1), NoisyItems(x, y), config=config, out_dir=tmp_path / name, **kw)

    full = run("full")
    run("parts", callbacks=[Recorder(stop_at=7)])  # batch 2 of epoch 2 (5 batches per epoch)
    resumed = run("parts", resume=True)
    _assert_same(_weights(resumed.model), _weights(full.model), "weights after resume")


def test_a_nan_epoch_is_never_the_best_one():
    """A NaN monitor (e.g. a val loss that overflowed in the first epoch) compared false with
    everything after it: later, better epochs never replaced it and early stopping ended an
    improving run, keeping the NaN epoch's weights."""
    x, y = _data(16)
    values = iter([math.nan, 2.0, 1.0, 0.5])
    rec = Recorder()
    config = dataclasses.replace(QUIET, max_epochs=4, batch_size=8, monitor="val_metric",
                                 early_stopping_patience=2)
    result = fit(_model(), (x, y), val_data=(x, y), metric_fn=lambda m, d: next(values),
                 config=config, callbacks=[rec])
    assert not result.stopped_early, "an improving run was stopped early"
    assert (result.best_epoch, result.best_value) == (4, 0.5)
    _assert_same(_weights(result.model), rec.epochs[3], "selected weights vs epoch 4")


def test_a_callback_without_on_step_end_keeps_losses_read_in_groups(monkeypatch):
    """Callback's own no-op on_step_end made every Callback subclass force a read of the loss
    at each step (a wait for the GPU), though only a callback that defines it needs one."""
    kept = []
    read = loop._Run._read_losses

    def spy(self):
        kept.append(len(self.kept_losses))
        return read(self)

    monkeypatch.setattr(loop._Run, "_read_losses", spy)

    class EpochsOnly(Callback):
        def on_epoch_end(self, state, row):
            pass

    x, y = _data(32)
    config = dataclasses.replace(QUIET, batch_size=8, max_epochs=2, loss_read_every=4)
    fit(_model(), (x, y), config=config, callbacks=[EpochsOnly()])
    assert max(kept) == 4, f"losses were not kept on the device in groups of 4: {kept}"
    kept.clear()
    fit(_model(), (x, y), config=config, callbacks=[Recorder()])  # defines on_step_end
    assert max(kept) == 0, "a callback with on_step_end must get every step's loss"


@pytest.mark.parametrize("fields", [
    {"decay_start": 5, "decay_end": 5},
    {"decay_start": 6, "decay_end": 2},
    {"decay_start": -1},
    {"decay_end": 0},
])
def test_decay_settings_that_cannot_hold_are_refused(fields):
    """decay_end at or before decay_start made the linear decay a drop to min_lr at once."""
    with pytest.raises(ConfigError, match="decay_"):
        TrainConfig(schedule="linear", **fields)


@pytest.mark.parametrize("warmup_steps", [0, 2])
def test_a_resumed_plateau_run_keeps_the_reduced_lr(warmup_steps, tmp_path):
    """After the warm-up LambdaLR is no longer stepped, so its step count stays at the warm-up
    length; resume took that for "still warming up" and set the peak lr again, undoing every
    cut ReduceLROnPlateau had made."""
    x, y = _data(16)
    config = dataclasses.replace(QUIET, lr=0.1, batch_size=8, max_epochs=5, schedule="plateau",
                                 plateau_patience=1, plateau_factor=0.5, optimizer="sgd",
                                 warmup_steps=warmup_steps, monitor="val_metric")

    def lrs(out, **kw):
        rec = Recorder(stop_at=kw.pop("stop_at", None))
        fit(_model(), (x, y), val_data=(x, y), metric_fn=lambda m, d: 1.0, config=config,
            callbacks=[rec], out_dir=tmp_path / out, **kw)
        return rec.lrs

    full = lrs("full")
    assert full[6:] == pytest.approx([0.05] * 4), f"the test needs a cut at step 7: {full}"
    parts = lrs("parts", stop_at=7) + lrs("parts", resume=True)
    assert parts == pytest.approx(full), f"resumed {parts} vs uninterrupted {full}"


def _seeded():
    return torch.Generator().manual_seed(0)


_SAMPLED = {
    "DataLoader(shuffle=True, generator=g)": lambda ds: DataLoader(
        ds, batch_size=8, shuffle=True, generator=_seeded()),
    "WeightedRandomSampler": lambda ds: DataLoader(
        ds, batch_size=8, sampler=WeightedRandomSampler(torch.linspace(0.1, 1.0, len(ds)), len(ds))),
    "SubsetRandomSampler(generator=g)": lambda ds: DataLoader(
        ds, batch_size=8, sampler=SubsetRandomSampler(range(len(ds)), generator=_seeded())),
    "batch_sampler=BatchSampler(RandomSampler)": lambda ds: DataLoader(
        ds, batch_sampler=BatchSampler(RandomSampler(range(len(ds))), 8, drop_last=False)),
}


@pytest.mark.parametrize("kind", list(_SAMPLED))
def test_resume_with_a_callers_random_sampler_matches_an_uninterrupted_run(kind, tmp_path):
    """A generator of the caller's own runs on from epoch to epoch and was not in the checkpoint
    (a resumed run drew epoch 1's order again), and samplers other than RandomSampler, or inside
    a batch_sampler, without a generator drew from torch's global one at another point than the
    uninterrupted run."""
    x, y = _data(40)
    config = dataclasses.replace(QUIET, lr=0.05, batch_size=8, max_epochs=3, select="last")

    def run(name, **kw):
        return fit(_model(seed=1), _SAMPLED[kind](TensorDataset(x, y)), config=config,
                   out_dir=tmp_path / name, **kw)

    full = run("full")
    run("parts", callbacks=[Recorder(stop_at=7)])  # mid-epoch 2
    resumed = run("parts", resume=True)
    _assert_same(_weights(resumed.model), _weights(full.model), f"{kind}: weights after resume")


def test_a_sampler_inside_a_callers_batch_sampler_gets_each_epoch():
    """fit called set_epoch on the loader's stand-in SequentialSampler only, so a balanced
    sampler inside a batch_sampler drew the same clips in every epoch."""
    x, y = _data(40)
    y[:, 0] = 1 - y[:, 1]  # every clip has a positive (balanced sampling needs one)
    sampler = BalancedSampler(y)
    loader = DataLoader(TensorDataset(x, y), batch_sampler=BatchSampler(sampler, 8, False))
    fit(_model(), loader, config=dataclasses.replace(QUIET, batch_size=8, max_epochs=3))
    assert sampler.epoch == 2, f"the balanced sampler was left at epoch {sampler.epoch}"


def test_the_plateau_schedule_waits_for_the_end_of_the_warm_up():
    """ReduceLROnPlateau was stepped in the warm-up too: its cut applied to one step (a dip in the
    ramp), then the warm-up overwrote it, and the stalls it had counted cut the lr just after."""
    x, y = _data(16)
    rec = Recorder()
    config = dataclasses.replace(QUIET, lr=0.1, batch_size=8, max_epochs=5, schedule="plateau",
                                 plateau_patience=0, plateau_factor=0.5, warmup_steps=6,
                                 monitor="val_metric", optimizer="sgd")
    fit(_model(), (x, y), val_data=(x, y), metric_fn=lambda m, d: 1.0, config=config,
        callbacks=[rec])  # 2 steps per epoch; the monitor never improves
    ramp = [0.1 * (k + 1) / 6 for k in range(6)]
    # epoch 3's end (step 6) is the plateau's first look; epoch 4's end its first stall
    assert rec.lrs == pytest.approx(ramp + [0.1, 0.1, 0.05, 0.05]), rec.lrs
