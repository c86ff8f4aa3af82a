"""zskit.train: schedules against hand-computed values, the fit loop, checkpoints and resume."""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from zskit.devices import module_device, resolve_amp, resolve_device
from zskit.errors import ConfigError, DataError
from zskit.train import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    Callback,
    TrainConfig,
    TrainingError,
    atomic_save,
    cosine_decay,
    exponential_warmup,
    fit,
    linear_decay,
    linear_warmup,
    load_checkpoint,
    loop,
    lr_factor,
    predict,
    step_decay,
)
from zskit.train.batches import TensorBatches
from zskit.train.recipes import balanced_loader, mixup_loss

QUIET = TrainConfig(progress=False, device="cpu", amp="off")


def _data(n=40, d=6, k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = (x @ torch.randn(d, k, generator=gen) > 0).float()
    return x, y


def _model(d=6, k=3, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, k))


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(a, b, what, atol=0.0):
    assert a.keys() == b.keys(), f"{what}: different keys"
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=atol), (
            f"{what}: {key} differs by {(a[key] - b[key]).abs().max():.3g}"
        )


class Recorder(Callback):
    """Records the lr and weights of every step and epoch end; can stop or crash at a step."""

    def __init__(self, stop_at=None, crash_at=None):
        self.lrs, self.steps, self.epochs, self.rows = [], [], [], []
        self.stop_at, self.crash_at = stop_at, crash_at

    def on_step_end(self, state, loss):
        self.lrs.append(state.lr)
        self.steps.append(_weights(state.model))
        if state.step == self.stop_at:
            state.should_stop = True
        if state.step == self.crash_at:
            raise RuntimeError(f"simulated crash at step {state.step}")

    def on_epoch_end(self, state, row):
        self.epochs.append(_weights(state.model))
        self.rows.append(row)


# -- schedules ----------------------------------------------------------------------------------
def test_warmups_by_hand():
    assert [linear_warmup(k, 4) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert linear_warmup(0, 0) == 1.0, "no warm-up must give factor 1"
    assert exponential_warmup(0, 4) == pytest.approx(math.exp(-5 * 0.75**2))
    assert exponential_warmup(1, 4) == pytest.approx(math.exp(-5 * 0.5**2))
    assert exponential_warmup(3, 4) == 1.0 and exponential_warmup(9, 4) == 1.0


def test_decays_by_hand():
    assert cosine_decay(2, 2, 6, 0.1) == 1.0
    assert cosine_decay(3, 2, 6, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.sqrt(0.5)))
    assert cosine_decay(4, 2, 6, 0.1) == pytest.approx(0.55)
    assert cosine_decay(6, 2, 6, 0.1) == pytest.approx(0.1) and cosine_decay(
        9, 2, 6, 0.1
    ) == pytest.approx(0.1)
    assert linear_decay(50, 50, 100, 0.005) == 1.0
    assert linear_decay(75, 50, 100, 0.005) == pytest.approx(0.5025)
    assert linear_decay(100, 50, 100, 0.005) == 0.005 and linear_decay(130, 50, 100, 0.005) == 0.005
    # AST: full AudioSet halves every epoch after the 2nd, balanced every 5 after the 10th;
    # ESC-50 and Speech Commands x0.85 every epoch after the 5th
    assert [step_decay(e, 2, 1, 0.5) for e in range(5)] == [1, 1, 0.5, 0.25, 0.125]
    assert [step_decay(e, 10, 5, 0.5) for e in (9, 10, 14, 15, 24)] == [1, 0.5, 0.5, 0.25, 0.125]
    assert [step_decay(e, 5, 1, 0.85) for e in (4, 5, 6)] == pytest.approx([1, 0.85, 0.85**2])


def test_paper_recipes_as_factors():
    spe = 10  # batches per epoch
    # paper 1: exponential warm-up over 5 epochs, linear decay to 1e-7 between epochs 50 and 100
    p1 = TrainConfig(
        lr=2e-5,
        warmup="exponential",
        warmup_epochs=5,
        schedule="linear",
        decay_start=50,
        decay_end=100,
        min_lr=1e-7,
    )
    f = lr_factor(p1, spe, 130 * spe)
    assert f(0) == pytest.approx(math.exp(-5 * (1 - 1 / 50) ** 2))
    assert f(49) == 1.0 and f(500) == 1.0
    assert f(750) == pytest.approx(1 + (1e-7 / 2e-5 - 1) * 0.5)
    assert f(1000) == pytest.approx(1e-7 / 2e-5) and f(1299) == pytest.approx(1e-7 / 2e-5)
    # paper 4: one warm-up epoch, then cosine from 2e-5 to 1e-7 over the remaining 15 epochs
    p4 = TrainConfig(lr=2e-5, warmup_epochs=1, schedule="cosine", min_lr=1e-7)
    f = lr_factor(p4, spe, 16 * spe)
    final = 1e-7 / 2e-5
    assert f(0) == pytest.approx(0.1) and f(9) == 1.0 and f(10) == 1.0
    assert f(85) == pytest.approx(final + (1 - final) * 0.5)  # half-way through the cosine


def test_fit_applies_the_schedule_per_step():
    x, y = _data(16)
    rec = Recorder()
    config = dataclasses.replace(
        QUIET,
        lr=0.1,
        batch_size=4,
        max_epochs=4,
        schedule="step",
        warmup_steps=2,
        step_after=2,
        gamma=0.5,
        optimizer="sgd",
    )
    fit(_model(), (x, y), config=config, callbacks=[rec])
    want = [0.05] + [0.1] * 7 + [0.05] * 4 + [0.025] * 4  # 4 steps per epoch
    assert rec.lrs == pytest.approx(want), f"per-step lr {rec.lrs} != hand-computed {want}"


def test_plateau_reduces_after_patience_and_keeps_warmup():
    x, y = _data(16)
    rec = Recorder()
    config = dataclasses.replace(
        QUIET,
        lr=0.1,
        batch_size=8,
        max_epochs=5,
        schedule="plateau",
        plateau_patience=1,
        plateau_factor=0.5,
        warmup_steps=2,
        monitor="val_metric",
        optimizer="sgd",
    )
    result = fit(
        _model(),
        (x, y),
        val_data=(x, y),
        metric_fn=lambda m, d: 1.0,
        config=config,
        callbacks=[rec],
    )
    # epoch 1 sets the best; epochs 2, 3 stall (3 > patience 1 -> x0.5); epochs 4, 5 stall again
    assert rec.lrs == pytest.approx([0.05, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])
    assert result.history["lr"].tolist() == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])


# -- the loop -----------------------------------------------------------------------------------
def test_fit_learns_and_reports_history():
    x, y = _data(64)
    metric = {"calls": 0}

    def accuracy(model, data):
        metric["calls"] += 1
        return {"acc": float(((predict(model, data) > 0).float() == data[1]).float().mean())}

    config = dataclasses.replace(QUIET, lr=0.02, batch_size=16, max_epochs=6, progress=True)
    result = fit(_model(), (x, y), val_data=(x, y), metric_fn=accuracy, config=config)
    h = result.history
    assert list(h.columns) == [
        "epoch",
        "step",
        "train_loss",
        "val_loss",
        "val_acc",
        "lr",
        "seconds",
    ]
    assert len(h) == 6 and metric["calls"] == 6 and h["step"].tolist() == [4, 8, 12, 16, 20, 24]
    assert h["train_loss"].iloc[-1] < 0.8 * h["train_loss"].iloc[0], (
        f"did not learn: {h['train_loss'].tolist()}"
    )
    assert result.best_epoch == int(h["val_loss"].idxmin()) + 1
    assert result.steps == 24


def test_tensor_fast_path_equals_dataset_and_dataloader_paths():
    x, y = _data(40)
    config = dataclasses.replace(QUIET, lr=0.05, batch_size=8, max_epochs=3, select="last")
    fast = fit(_model(), (x, y), config=config).model
    dataset = fit(_model(), TensorDataset(x, y), config=config).model
    sampler = DistributedSampler(TensorDataset(x, y), num_replicas=1, rank=0, seed=config.seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, sampler=sampler)
    from_loader = fit(_model(), loader, config=config).model
    _assert_same(_weights(fast), _weights(dataset), "tensors vs Dataset", atol=1e-6)
    _assert_same(_weights(fast), _weights(from_loader), "tensors vs DataLoader", atol=1e-6)


def test_default_loss_ignores_masked_labels_and_param_groups_apply():
    x, y = _data(32)
    mask = torch.rand(y.shape, generator=torch.Generator().manual_seed(1)) > 0.3
    garbage = torch.where(mask, y, 1 - y)  # differs from y only where the label is unknown
    config = dataclasses.replace(QUIET, batch_size=8, max_epochs=2, select="last")
    a = fit(_model(), (x, y, mask), config=config).model
    b = fit(_model(), (x, garbage, mask), config=config).model
    _assert_same(_weights(a), _weights(b), "labels under mask=False changed training")
    model = _model()
    first = _weights(model)["0.weight"]
    groups = [{"params": model[0].parameters(), "lr": 0.0}, {"params": model[3].parameters()}]
    trained = fit(model, (x, y), config=config, param_groups=groups).model
    assert torch.equal(trained[0].weight, first), "a parameter group with lr=0 must not move"
    assert not torch.equal(trained[3].weight, _model()[3].weight), "the other group did not train"


class _NoFusedSGD(torch.optim.SGD):
    """SGD as on a torch without fused kernels: ``fused=True`` fails at the first step."""

    def step(self, closure=None):
        if self.param_groups[0]["fused"]:
            raise RuntimeError("fused=True requires params of supported devices")
        return super().step(closure)


def test_fused_optimizer_where_available_and_the_default_otherwise(monkeypatch):
    """fit takes torch's fused optimiser step when this torch has the kernel (probed once per
    class, device and dtype), torch's default step otherwise, with the same result."""
    cpu_fused = loop._has_fused_kernel(torch.optim.AdamW, torch.device("cpu"), torch.float32)
    assert not loop._has_fused_kernel(_NoFusedSGD, torch.device("cpu"), torch.float32)
    x, y = _data(32)
    used = []

    class Spy(Callback):
        def on_train_start(self, state):
            used.append(state.optimizer.param_groups[0]["fused"])

    config = dataclasses.replace(QUIET, batch_size=8, max_epochs=3, select="last")
    fused = fit(_model(), (x, y), config=config, callbacks=[Spy()]).model
    monkeypatch.setattr(loop, "_has_fused_kernel", lambda *_: False)
    default = fit(_model(), (x, y), config=config, callbacks=[Spy()]).model
    assert used == [True if cpu_fused else None, None], f"fused flags {used}"
    _assert_same(_weights(fused), _weights(default), "fused vs default AdamW", atol=1e-6)


def test_fast_path_batches_are_not_moved_and_constant_lr_counts_steps(tmp_path, monkeypatch):
    """The tensor fast path's batches are already on the device, so the loop does not pass
    them through to_device (a Dataset's batches still go there); a constant schedule skips
    LambdaLR's per-step work but its saved state still counts the steps, as a stepped one."""
    moved = []

    def spy(batch, device):
        moved.append(len(batch))
        return batch

    monkeypatch.setattr(loop, "to_device", spy)
    x, y = _data(40)
    rec = Recorder()
    config = dataclasses.replace(QUIET, lr=0.05, batch_size=8, max_epochs=3, select="last")
    fast = fit(_model(), (x, y), val_data=(x, y), config=config, callbacks=[rec],
               out_dir=tmp_path)
    assert moved == [], "fast-path batches went through to_device"
    assert rec.lrs == [0.05] * 15, "a constant schedule must keep the lr"
    schedule = load_checkpoint(tmp_path / CHECKPOINT_FILE)["schedule"]["per_step"]
    assert schedule["last_epoch"] == 15 and schedule["_last_lr"] == [0.05]
    loader = fit(_model(), TensorDataset(x, y), config=config).model
    assert len(moved) == 15, "a Dataset's batches must be moved to the device"
    _assert_same(_weights(fast.model), _weights(loader), "tensors vs Dataset", atol=1e-6)


def test_predict_keeps_order():
    x, _ = _data(30)
    model = _model()
    out = predict(model, x, batch_size=7)
    assert torch.allclose(out, model(x), atol=1e-6), "predict must return model(x) in order"
    assert not out.requires_grad, "predict runs without autograd"


def test_predict_resolves_device_names_and_needs_no_parameters():
    """device='auto' goes through zskit.devices.resolve_device (torch.device('auto') would raise);
    a model without parameters (a fixed transform) runs on the CPU instead of StopIteration."""
    x, _ = _data(10)
    model = _model().to(resolve_device("auto")).train()
    auto = predict(model, x, batch_size=4, device="auto")
    assert torch.allclose(auto, model.cpu().eval()(x).detach(), atol=1e-5), "device='auto'"
    assert torch.equal(predict(nn.Softmax(dim=1), x, batch_size=3), torch.softmax(x, dim=1))
    assert module_device(nn.Softmax(dim=1)) is None and module_device(model) == torch.device("cpu")
    with pytest.raises(ConfigError, match="tpu"):
        predict(model, x, device="tpu:0")
    model.train()
    predict(model, x, device="cpu")
    assert model.training, "predict restores the training mode"


def test_max_steps_stops_mid_epoch():
    x, y = _data(40)
    config = dataclasses.replace(QUIET, batch_size=8, max_epochs=10, max_steps=7)
    result = fit(_model(), (x, y), config=config)
    assert result.steps == 7
    assert result.history["epoch"].tolist() == pytest.approx([1.0, 1.4]), (
        "5 steps per epoch: 7 steps = 1.4 epochs"
    )


def test_grad_clip_bounds_the_update():
    x, y = _data(16)
    before = _weights(_model())
    config = dataclasses.replace(
        QUIET, lr=1.0, optimizer="sgd", momentum=0.0, grad_clip=0.01, max_steps=1, batch_size=16
    )
    after = _weights(fit(_model(), (x, y), config=config).model)
    change = torch.cat([(after[k] - before[k]).flatten() for k in before]).norm()
    assert float(change) == pytest.approx(0.01, rel=1e-4), (
        f"update norm {float(change)} != lr x grad_clip"
    )


def test_bf16_autocast_on_cpu():
    x, y = _data(16)
    seen = []

    def loss(model, batch):
        out = model(batch[0])
        seen.append(out.dtype)
        return nn.functional.binary_cross_entropy_with_logits(out, batch[1])

    config = dataclasses.replace(QUIET, amp="bf16", max_epochs=2, batch_size=8)
    result = fit(_model(), (x, y), loss_fn=loss, config=config)
    assert set(seen) == {torch.bfloat16}, (
        f"forward ran in {set(seen)}, expected bfloat16 under autocast"
    )
    assert result.history["train_loss"].notna().all()
    assert next(result.model.parameters()).dtype == torch.float32, "weights must stay float32"


def test_device_and_amp_resolution():
    cpu = torch.device("cpu")
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert resolve_device("auto") == cpu
    assert resolve_amp("auto", cpu) == (None, False), "no autocast on CPU unless asked"
    assert resolve_amp("bf16", cpu) == (torch.bfloat16, False)
    with pytest.raises(ConfigError, match="fp16"):
        resolve_amp("fp16", cpu)
    with pytest.raises(ConfigError, match="device"):
        resolve_device("tpu:0")


def test_config_and_argument_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"optimizer='lamb'.*'adamw'"):
        TrainConfig(optimizer="lamb")
    with pytest.raises(ConfigError, match="average_last_k"):
        TrainConfig(select="average")
    with pytest.raises(ConfigError, match="min_lr"):
        TrainConfig(lr=1e-4, min_lr=1e-3)
    x, y = _data(16)
    with pytest.raises(ConfigError, match="out_dir"):
        fit(_model(), (x, y), config=QUIET, resume=True)
    with pytest.raises(ConfigError, match="val_data"):
        fit(_model(), (x, y), config=dataclasses.replace(QUIET, early_stopping_patience=2))
    bad_monitor = dataclasses.replace(
        QUIET, monitor="val_map", early_stopping_patience=2, max_epochs=2
    )
    with pytest.raises(ConfigError, match="val_loss"):  # names the columns that exist
        fit(_model(), (x, y), val_data=(x, y), config=bad_monitor)


# -- selection, averaging, early stopping -------------------------------------------------------
def test_early_stopping_keeps_the_best_epoch(tmp_path):
    x, y = _data(16)
    values = iter([3.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    rec = Recorder()
    config = dataclasses.replace(
        QUIET, max_epochs=6, batch_size=8, monitor="val_metric", early_stopping_patience=2
    )
    result = fit(
        _model(),
        (x, y),
        val_data=(x, y),
        metric_fn=lambda m, d: next(values),
        config=config,
        callbacks=[rec],
        out_dir=tmp_path,
    )
    assert len(result.history) == 4 and result.stopped_early, (
        "two epochs without improvement must stop"
    )
    assert result.best_epoch == 2 and result.best_value == 1.0
    _assert_same(_weights(result.model), rec.epochs[1], "selected weights vs epoch 2")
    again = fit(_model(), (x, y), val_data=(x, y), config=config, out_dir=tmp_path, resume=True)
    assert again.steps == result.steps and again.stopped_early, "resume restarted a stopped run"
    _assert_same(_weights(again.model), rec.epochs[1], "best weights after resume")


def test_weight_averaging_and_ema():
    x, y = _data(24)
    rec = Recorder()
    config = dataclasses.replace(
        QUIET, max_epochs=5, batch_size=8, average_last_k=3, select="average", ema_decay=0.8
    )
    result = fit(_model(), (x, y), config=config, callbacks=[rec])
    mean = {k: torch.stack([e[k] for e in rec.epochs[-3:]]).mean(0) for k in rec.epochs[0]}
    _assert_same(_weights(result.model), mean, "average of the last 3 epochs", atol=1e-6)
    ema = dict(rec.steps[0])  # AveragedModel copies the weights at its first update
    for step in rec.steps[1:]:
        ema = {k: 0.8 * ema[k] + 0.2 * step[k] for k in ema}
    _assert_same(_weights(result.ema_model), ema, "EMA vs hand-computed", atol=1e-6)


# -- checkpoints, resume, divergence ------------------------------------------------------------
RESUME = dataclasses.replace(
    QUIET,
    lr=0.05,
    batch_size=8,
    max_epochs=3,
    schedule="cosine",
    warmup_steps=3,
    grad_clip=1.0,
    ema_decay=0.9,
    average_last_k=2,
    checkpoint_every=3,
)


def _resume_run(tmp_path, name, callbacks=(), resume=False):
    x, y = _data(40)
    return fit(
        _model(dropout=0.3, seed=1),
        (x, y),
        val_data=(x[:16], y[:16]),
        config=RESUME,
        callbacks=callbacks,
        resume=resume,
        out_dir=tmp_path / name,
    )


def _final_state(path):
    ckpt = load_checkpoint(path / CHECKPOINT_FILE)
    return ckpt["model"], ckpt["ema"], ckpt["progress"]["history"]


def test_resume_after_a_stop_matches_an_uninterrupted_run(tmp_path):
    full = _resume_run(tmp_path, "full")
    stopped = _resume_run(tmp_path, "parts", callbacks=[Recorder(stop_at=7)])  # mid-epoch 2
    assert stopped.steps == 7
    resumed = _resume_run(tmp_path, "parts", resume=True)
    assert resumed.steps == full.steps == 15
    _assert_same(_weights(resumed.model), _weights(full.model), "selected weights after resume")
    (m1, e1, h1), (m2, e2, h2) = _final_state(tmp_path / "full"), _final_state(tmp_path / "parts")
    _assert_same(m1, m2, "last weights after resume")
    _assert_same(e1, e2, "EMA after resume")
    assert [r["train_loss"] for r in h1] == [r["train_loss"] for r in h2], (
        "history differs after resume"
    )
    assert resumed.history["val_loss"].tolist() == full.history["val_loss"].tolist()


def test_resume_after_a_crash_uses_the_last_checkpoint(tmp_path):
    full = _resume_run(tmp_path, "full")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _resume_run(tmp_path, "crash", callbacks=[Recorder(crash_at=8)])
    assert load_checkpoint(tmp_path / "crash" / CHECKPOINT_FILE)["progress"]["step"] == 6
    resumed = _resume_run(tmp_path, "crash", resume=True)
    _assert_same(_weights(resumed.model), _weights(full.model), "weights after crash + resume")
    assert not list((tmp_path / "crash").glob(".*.tmp")), "temporary checkpoint files left behind"


def test_checkpoint_loads_with_weights_only(tmp_path):
    result = _resume_run(tmp_path, "run")
    ckpt = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)
    for key in (
        "model",
        "optimizer",
        "schedule",
        "scaler",
        "ema",
        "recent",
        "best_state",
        "rng",
        "progress",
    ):
        assert key in ckpt, f"checkpoint lacks {key}"
    assert ckpt["progress"]["step"] == 15 and len(ckpt["recent"]) == 2
    selected = torch.load(tmp_path / "run" / MODEL_FILE, weights_only=True)
    _assert_same(selected, _weights(result.model), "model.pt vs the returned model")


@pytest.mark.parametrize("read_every", [None, 3, 5])
def test_nan_loss_raises_and_keeps_the_last_good_checkpoint(read_every, tmp_path):
    """Read every step, or kept on the device and read in groups of 3 or 5 (as on a GPU): the
    NaN is reported at its own step, and the checkpoint due after it is not written."""
    x, y = _data(40)
    calls = {"n": 0}

    def loss(model, batch):
        calls["n"] += 1
        value = nn.functional.binary_cross_entropy_with_logits(model(batch[0]), batch[1])
        return value * float("nan") if calls["n"] == 7 else value

    config = dataclasses.replace(
        QUIET, batch_size=4, max_epochs=3, checkpoint_every=4, loss_read_every=read_every
    )  # 10 steps/epoch
    with pytest.raises(TrainingError, match=r"nan at step 7 .*checkpoint.*step 4") as info:
        fit(_model(), (x, y), loss_fn=loss, config=config, out_dir=tmp_path)
    assert info.value.step == 7
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert ckpt["progress"]["step"] == 4, "the checkpoint was overwritten after the NaN"
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values()), (
        "checkpoint holds non-finite weights"
    )


class _Unpicklable:
    """Fails ``torch.save`` half-way with its own error, so a test can tell that failure apart
    from any other."""

    class Error(RuntimeError):
        pass

    def __reduce__(self):
        raise self.Error("this object refuses to be saved")


def test_atomic_save_failure_keeps_the_previous_file(tmp_path):
    path = tmp_path / "state.pt"
    atomic_save({"a": torch.ones(3)}, path)
    with pytest.raises(_Unpicklable.Error, match="refuses to be saved"):
        atomic_save({"a": torch.zeros(3), "b": _Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3)), (
        "previous file damaged"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"], "temporary file left behind"


_LOADERS = {
    "user DataLoader(shuffle=True)":
        lambda x, y: DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True),
    "balanced_loader + mixup": lambda x, y: balanced_loader((x, y), y, 8, seed=0),
}


@pytest.mark.parametrize("kind", list(_LOADERS))
def test_resume_with_a_users_dataloader_matches_an_uninterrupted_run(kind, tmp_path):
    x, y = _data(40)
    y[:, 0] = 1 - y[:, 1]  # every clip has a positive (balanced sampling needs one)
    config = dataclasses.replace(QUIET, lr=0.05, batch_size=8, max_epochs=3, select="last")
    loss = mixup_loss() if "mixup" in kind else None

    def run(name, **kw):
        return fit(_model(dropout=0.3, seed=1), _LOADERS[kind](x, y), config=config,
                   loss_fn=loss, out_dir=tmp_path / name, **kw)

    full = run("full")
    run("parts", callbacks=[Recorder(stop_at=7)])  # mid-epoch 2
    resumed = run("parts", resume=True)
    _assert_same(_weights(resumed.model), _weights(full.model), f"{kind}: weights after resume")


def test_resume_after_a_crash_in_the_last_epochs_end(tmp_path):
    """A checkpoint written on the final step, then a crash before that epoch's end (e.g. in
    validation): resuming must still run the epoch's end (history row, model selection)."""
    x, y = _data(40)
    config = dataclasses.replace(QUIET, batch_size=8, max_epochs=3, select="average",
                                 average_last_k=3, checkpoint_every=5)

    calls = []

    def metric(model, val_data, crash_at=None):
        calls.append(1)
        if len(calls) == crash_at:
            raise RuntimeError("simulated crash")
        return 0.0

    def run(name, crash_at=None, **kw):
        calls.clear()
        return fit(_model(seed=1), (x, y), val_data=(x[:8], y[:8]), config=config,
                   metric_fn=lambda m, v: metric(m, v, crash_at), out_dir=tmp_path / name, **kw)

    full = run("full")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run("crash", crash_at=3)  # in the third epoch's validation
    ckpt_step = load_checkpoint(tmp_path / "crash" / CHECKPOINT_FILE)["progress"]["step"]
    assert ckpt_step == 15, "the test needs a checkpoint written on the final step"
    resumed = run("crash", resume=True)
    assert resumed.history["epoch"].tolist() == full.history["epoch"].tolist() == [1, 2, 3], (
        f"checkpoint at step {ckpt_step}: history {resumed.history['epoch'].tolist()}")
    _assert_same(_weights(resumed.model), _weights(full.model), "averaged weights after resume")


@pytest.mark.parametrize("before, after", [
    ({"warmup_steps": 10}, {"warmup_steps": 0}),
    ({"schedule": "cosine"}, {"schedule": "constant"}),
    ({"schedule": "constant"}, {"schedule": "cosine"}),
])
def test_a_resumed_run_follows_its_own_schedule(before, after, tmp_path):
    x, y = _data(40)
    base = dataclasses.replace(QUIET, lr=0.1, batch_size=8, max_epochs=3, select="last")

    def lrs(config, out, **kw):
        rec = Recorder(stop_at=kw.pop("stop_at", None))
        fit(_model(seed=1), (x, y), config=config, out_dir=out, callbacks=[rec], **kw)
        return rec.lrs

    lrs(dataclasses.replace(base, **before), tmp_path / "run", stop_at=5)
    resumed = lrs(dataclasses.replace(base, **after), tmp_path / "run", resume=True)
    fresh = lrs(dataclasses.replace(base, **after), tmp_path / "fresh")
    assert resumed == pytest.approx(fresh[5:]), f"{before} -> {after}: {resumed} vs {fresh[5:]}"


def test_resume_under_another_mixed_precision_starts_a_fresh_scaler(tmp_path, monkeypatch,
                                                                      caplog):
    x, y = _data(40)
    config = dataclasses.replace(QUIET, batch_size=8, max_epochs=2)
    fit(_model(), (x, y), config=config, out_dir=tmp_path, callbacks=[Recorder(stop_at=3)])
    monkeypatch.setattr(loop, "resolve_amp", lambda amp, device: (None, True))  # now fp16 + scaler
    with caplog.at_level(logging.WARNING, logger="zskit.train.loop"):
        result = fit(_model(), (x, y), config=config, out_dir=tmp_path, resume=True)
    assert "another mixed precision" in caplog.text, caplog.text
    assert result.steps == 10, f"steps {result.steps}"


def test_resume_keeps_this_machines_choice_of_the_fused_step(tmp_path, monkeypatch):
    x, y = _data(40)
    config = dataclasses.replace(QUIET, batch_size=8, max_epochs=2)
    fit(_model(), (x, y), config=config, out_dir=tmp_path, callbacks=[Recorder(stop_at=3)])
    monkeypatch.setattr(loop, "_has_fused_kernel", lambda cls, device, dtype: False)
    seen = []

    class Spy(Callback):
        def on_train_start(self, state):
            seen.append(state.optimizer.param_groups[0].get("fused"))

    fit(_model(), (x, y), config=config, out_dir=tmp_path, resume=True, callbacks=[Spy()])
    assert seen == [None], f"the checkpoint's fused flag leaked into this run: {seen}"


def test_a_resumed_epoch_end_comes_after_train_start(tmp_path):
    x, y = _data(40)
    config = dataclasses.replace(QUIET, batch_size=8, max_epochs=2, checkpoint_every=5)
    calls, events = [], []

    def metric(model, val):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return 0.0

    class Events(Callback):
        def on_train_start(self, state):
            events.append("train_start")

        def on_epoch_end(self, state, row):
            events.append(f"epoch_end {row['epoch']}")

    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(_model(), (x, y), val_data=(x[:8], y[:8]), config=config, metric_fn=metric,
            out_dir=tmp_path)
    fit(_model(), (x, y), val_data=(x[:8], y[:8]), config=config, metric_fn=metric,
        out_dir=tmp_path, resume=True, callbacks=[Events()])
    assert events == ["train_start", "epoch_end 2"], events


def test_numpy_float64_data_trains_a_float32_model():
    x, y = _data(40)
    result = fit(_model(), (x.double().numpy(), y.double().numpy()),
                 config=dataclasses.replace(QUIET, batch_size=8, max_epochs=1))
    assert result.steps == 5 and predict(result.model, (x.double().numpy(),)).dtype == torch.float32
    y[:, 0] = 1.0  # every clip has a positive, for balanced sampling
    loader = balanced_loader((x.double().numpy(), y.double().numpy()), y.numpy(), 8)
    result = fit(_model(), loader, config=dataclasses.replace(QUIET, batch_size=8, max_epochs=1))
    assert result.steps == 5, f"balanced loader over float64 arrays: {result.steps} steps"


def test_a_monitor_that_is_no_history_column_is_an_error_when_selecting_the_best():
    x, y = _data(40)
    config = dataclasses.replace(QUIET, batch_size=8, max_epochs=1, monitor="val_mAP",
                                 select="best")
    with pytest.raises(ConfigError, match="val_mAP.*not a history column"):
        fit(_model(), (x, y), val_data=(x[:8], y[:8]), config=config,
            metric_fn=lambda model, val: {"map": 0.5})


@pytest.mark.parametrize("field, value, says", [
    ("batch_size", 8.0, "whole number"), ("max_epochs", True, "whole number"),
    ("plateau_factor", 1.0, r"\(0, 1\)"), ("betas", (1.5, 0.9), "two values in"),
    ("gamma", 0.0, "> 0"), ("step_after", -1, ">= 0"),
])
def test_train_config_refuses_values_torch_would_fail_on(field, value, says):
    with pytest.raises(ConfigError, match=f"{field}.*{says}"):
        TrainConfig(**{field: value})


def test_a_peak_lr_changed_on_resume_is_applied(tmp_path):
    x, y = _data(40)
    base = dataclasses.replace(QUIET, lr=0.1, batch_size=8, max_epochs=3, select="last",
                               schedule="cosine")

    def lrs(config, out, **kw):
        rec = Recorder(stop_at=kw.pop("stop_at", None))
        fit(_model(seed=1), (x, y), config=config, out_dir=out, callbacks=[rec], **kw)
        return rec.lrs

    lrs(base, tmp_path / "run", stop_at=5)
    resumed = lrs(dataclasses.replace(base, lr=0.05), tmp_path / "run", resume=True)
    fresh = lrs(dataclasses.replace(base, lr=0.05), tmp_path / "fresh")
    assert resumed == pytest.approx(fresh[5:]), f"{resumed} vs {fresh[5:]}"


def test_fit_leaves_a_callers_dataloader_as_it_was():
    x, y = _data(40)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    config = dataclasses.replace(QUIET, batch_size=8, max_epochs=1, select="last")
    first = _weights(fit(_model(seed=1), loader, config=dataclasses.replace(config, seed=2)).model)
    assert loader.generator is None and loader.sampler.generator is None, "generators lent back"
    fit(_model(seed=1), loader, config=dataclasses.replace(config, seed=1))
    again = _weights(fit(_model(seed=1), loader, config=dataclasses.replace(config, seed=2)).model)
    _assert_same(again, first, "the same seed on a reused loader")


def test_an_unwritable_out_dir_is_refused_before_any_training(tmp_path):
    """A file where out_dir should be: a ConfigError before the first step, not a raw OSError
    when the first checkpoint is written after an epoch's work."""
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    steps = Recorder()
    with pytest.raises(ConfigError, match="out_dir=.*cannot be created"):
        fit(_model(), _data(), config=TrainConfig(max_epochs=1, batch_size=8, progress=False,
                                                  device="cpu"),
            out_dir=blocker / "run", callbacks=[steps])
    assert steps.steps == [], "training ran before out_dir was checked"


@pytest.mark.parametrize("case", ["other classes", "other model", "bare state_dict"])
def test_resuming_a_checkpoint_of_another_model_says_what_to_do(case, tmp_path):
    """A checkpoint.pt that does not fit the model (another head size, another architecture, or
    a bare state_dict saved under that name) is a DataError naming the way out, not a raw
    torch RuntimeError or KeyError."""
    config = TrainConfig(max_epochs=1, batch_size=8, progress=False, device="cpu")
    fit(_model(), _data(), config=config, out_dir=tmp_path)
    if case == "bare state_dict":
        torch.save(_model().state_dict(), tmp_path / "checkpoint.pt")
        model = _model()
    else:
        model = _model(k=5) if case == "other classes" else nn.Sequential(nn.Linear(6, 3))
    x, y = _data()
    y = torch.cat([y, y[:, :2]], dim=1) if case == "other classes" else y
    with pytest.raises(DataError, match="resume=False"):
        fit(model, (x, y), config=config, out_dir=tmp_path, resume=True)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("skip", [0, 2])
def test_tensor_batches_cover_a_permutation_and_skip_and_drop_as_asked(drop_last, skip):
    """23 rows in batches of 5: four full batches and a last one of 3 (dropped with drop_last);
    ``skip`` leaves out the first batches (a resumed epoch); rows stay paired across tensors and
    each epoch is another seeded permutation."""
    x = torch.arange(23.0).unsqueeze(1)
    batches = TensorBatches((x, x * 10), 5, device=torch.device("cpu"), shuffle=True, seed=3,
                            drop_last=drop_last)
    full = [b[0].squeeze(1).tolist() for b in batches.epoch(1)]
    assert [len(b) for b in full] == ([5] * 4 if drop_last else [5] * 4 + [3])
    assert len(batches) == len(full)
    rows = [r for batch in full for r in batch]
    assert len(set(rows)) == len(rows) and (drop_last or sorted(rows) == list(range(23)))
    resumed = list(batches.epoch(1, skip=skip))
    assert [b[0].squeeze(1).tolist() for b in resumed] == full[skip:], "skip changed the batches"
    assert all(torch.equal(b[1], b[0] * 10) for b in resumed), "rows unpaired across tensors"
    assert [b[0].squeeze(1).tolist() for b in batches.epoch(2)] != full, "epochs share an order"


def test_losses_read_in_groups_give_the_same_run_and_history(tmp_path):
    """Losses kept on the device and read every 4 steps (a GPU's default is 16) give the same
    weights, train_loss and val_loss as reading every step; a callback with on_step_end still
    gets every step's loss as a float."""
    x, y = _data(40)
    runs = {}
    for every in (1, 4):
        config = dataclasses.replace(RESUME, loss_read_every=every)
        runs[every] = fit(_model(dropout=0.3, seed=1), (x, y), val_data=(x[:16], y[:16]),
                          config=config, out_dir=tmp_path / str(every))
    _assert_same(_weights(runs[4].model), _weights(runs[1].model), "weights")
    for column in ("train_loss", "val_loss"):
        assert runs[4].history[column].tolist() == runs[1].history[column].tolist(), column

    class Losses(Callback):
        def __init__(self):
            self.seen = []

        def on_step_end(self, state, loss):
            self.seen.append((state.step, loss))

    hook = Losses()
    fit(_model(), (x, y), config=dataclasses.replace(RESUME, loss_read_every=4),
        callbacks=[hook])
    assert [step for step, _ in hook.seen] == list(range(1, 16))
    assert all(isinstance(loss, float) and math.isfinite(loss) for _, loss in hook.seen)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_loss_read_every_must_be_a_positive_whole_number(bad):
    with pytest.raises(ConfigError, match="loss_read_every"):
        TrainConfig(loss_read_every=bad)
