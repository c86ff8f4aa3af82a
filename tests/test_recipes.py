"""Training recipes: balanced sampling, mixup as a loss, weight averaging, ensembles, AST's
per-epoch schedules; each used through zskit.train.fit where that is how it is meant to be used."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from zskit.audio.augment import SpecAugment
from zskit.encoders.audio.ast import ASTEncoder, ASTEncoderConfig
from zskit.errors import ConfigError, DataError
from zskit.train import TrainConfig, atomic_save, fit
from zskit.train.recipes import (
    AST_RECIPES,
    BalancedSampler,
    Ensemble,
    SpectrogramClassifier,
    ast_train_config,
    average_checkpoints,
    balanced_loader,
    balanced_weights,
    mixup_loss,
)
from zskit.train.schedules import lr_factor


def test_balanced_weights_are_summed_inverse_frequencies():
    rng = np.random.default_rng(0)
    y = (rng.random((50, 6)) < 0.3).astype(np.float32)
    y[0] = 0  # a clip without labels is never drawn
    counts = y.sum(0)
    expected = [sum(y[i, c] / counts[c] for c in range(6) if counts[c]) for i in range(50)]
    np.testing.assert_allclose(balanced_weights(y), expected)
    assert balanced_weights(y)[0] == 0
    with pytest.raises(DataError, match="no clip"):
        balanced_weights(np.zeros((3, 2)))


def test_rare_classes_are_drawn_as_often_as_frequent_ones():
    y = np.zeros((100, 2), dtype=np.float32)
    y[:90, 0] = 1  # 90 clips of class 0, 10 of class 1
    y[90:, 1] = 1
    sampler = BalancedSampler(y, num_samples=4000, seed=1)
    drawn = np.asarray(list(sampler))
    share = float((drawn >= 90).mean())
    assert 0.45 < share < 0.55, f"class 1 drawn {share:.2f} of the time, expected about 0.5"
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first, "a new epoch draws other clips"
    sampler.set_epoch(0)
    assert list(sampler) == first, "an epoch's draw is reproducible"


def test_fit_trains_on_a_balanced_loader_and_sets_its_epoch():
    torch.manual_seed(0)
    x = torch.randn(40, 5)
    y = (torch.rand(40, 3) < 0.4).float()
    y[:, 0] = 1
    loader = balanced_loader((x, y), y.numpy(), batch_size=8, seed=3)
    result = fit(nn.Linear(5, 3), loader, config=TrainConfig(max_epochs=3, progress=False))
    assert len(result.history) == 3 and result.steps == 15, result.history
    assert loader.sampler.epoch == 2, "fit must call set_epoch before each epoch"
    with pytest.raises(DataError, match="label rows"):
        balanced_loader((x, y), y[:5].numpy(), batch_size=8)


def test_mixup_loss_mixes_training_batches_and_masks():
    seen = {}

    def criterion(outputs, targets, mask):
        seen.update(outputs=outputs, targets=targets, mask=mask)
        return outputs.sum() * 0

    model = nn.Identity()
    x = torch.eye(6)
    y = torch.eye(6)
    mask = torch.ones(6, 6, dtype=torch.bool)
    mask[0] = False
    loss = mixup_loss(criterion, alpha=1.0, prob=1.0)
    model.eval()
    loss(model, (x, y, mask))
    assert torch.equal(seen["outputs"], x) and torch.equal(seen["mask"], mask), "eval: untouched"
    model.train()
    torch.manual_seed(4)
    loss(model, (x, y, mask))
    torch.testing.assert_close(seen["targets"], seen["outputs"], msg="targets mixed like inputs")
    partner = [int(torch.argmax(torch.where(torch.arange(6) == i, -1.0, r)))
               for i, r in enumerate(seen["outputs"])]
    for i in range(6):
        both = bool(mask[i].all() and mask[partner[i]].all())
        assert bool(seen["mask"][i].all()) == both, f"row {i}: mask must be known for both partners"
    with pytest.raises(ConfigError, match="class indices"):
        loss(model, (x, torch.arange(6)))


def test_mixup_loss_leaves_unmixed_examples_masks_alone_and_casts_integer_targets():
    seen = {}

    def criterion(outputs, targets, *mask):
        seen.update(outputs=outputs, targets=targets, mask=mask)
        return torch.nn.functional.cross_entropy(outputs, targets)

    model = nn.Linear(4, 4)
    x = torch.randn(8, 4)
    y = torch.nn.functional.one_hot(torch.arange(8) % 4, 4)  # int64 one-hot rows
    mask = torch.ones(8, 4, dtype=torch.bool)
    mask[::2, 3] = False  # class 3 unknown for the even rows
    weights = torch.rand(8)  # a per-example float mask
    model.train()
    torch.manual_seed(0)
    mixup_loss(criterion, prob=0.0)(model, (x, y, mask, weights))  # nothing is mixed
    assert torch.equal(seen["mask"][0], mask), "an unmixed example keeps its own known labels"
    assert torch.equal(seen["mask"][1], weights), "per-example weights of unmixed examples kept"
    torch.testing.assert_close(seen["targets"], y.float())
    model.eval()  # validation batches: the criterion gets float targets as in training
    mixup_loss(criterion, prob=0.5)(model, (x, y))
    assert seen["targets"].dtype == torch.float32


def test_average_checkpoints_matches_the_mean(tmp_path):
    states = [{"w": torch.full((2,), float(k)), "n": torch.tensor(k)} for k in range(3)]
    atomic_save(states[0], tmp_path / "a.pt")
    atomic_save({"model": states[1], "step": 5}, tmp_path / "checkpoint.pt")
    avg = average_checkpoints([tmp_path / "a.pt", tmp_path / "checkpoint.pt", states[2]])
    assert torch.equal(avg["w"], torch.ones(2)) and int(avg["n"]) == 2, avg
    with pytest.raises(DataError, match="different parameters"):
        average_checkpoints([states[0], {"v": torch.zeros(1)}])


def test_average_checkpoints_takes_models_and_rejects_other_objects():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    avg = average_checkpoints([a, b.state_dict()])
    torch.testing.assert_close(avg["weight"], (a.weight + b.weight).detach() / 2)
    with pytest.raises(ConfigError, match="state dicts, models or checkpoint files"):
        average_checkpoints([a, 3])


def test_ensemble_averages_probabilities():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    x = torch.randn(4, 3)
    with torch.no_grad():
        expected = (a(x).sigmoid() + b(x).sigmoid()) / 2
        torch.testing.assert_close(Ensemble([a, b])(x), expected)
        torch.testing.assert_close(Ensemble([a, b], activation=None)(x), (a(x) + b(x)) / 2)
    with pytest.raises(ConfigError, match="activation"):
        Ensemble([a], activation="tanh")


@pytest.mark.parametrize("recipe", sorted(AST_RECIPES))
def test_ast_schedules_match_asts_code(recipe):
    """AST's src/traintest.py steps torch's MultiStepLR once per epoch with milestones
    range(start, 1000, step); with warmup=True (its AudioSet scripts) it also sets the lr to
    lr * step / 1000 at every 50th of the first 1,000 steps. zskit's ramp is linear per step, so
    within the warm-up it may run ahead of AST's staircase by less than one stair (0.05)."""
    config = ast_train_config(recipe)
    warm = recipe.startswith("audioset")
    steps_per_epoch = 1100  # AST's AudioSet epochs outlast the warm-up (balanced set: ~1,800 steps)
    factor = lr_factor(config, steps_per_epoch, config.max_epochs * steps_per_epoch)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = torch.optim.lr_scheduler.MultiStepLR(
        opt, list(range(config.step_after, 1000, config.step_every)), gamma=config.gamma)
    for epoch in range(config.max_epochs):
        for k in range(steps_per_epoch):
            step = epoch * steps_per_epoch + k
            got, want = factor(step), opt.param_groups[0]["lr"]
            if warm and step < 1000:
                ast = (step - step % 50) / 1000  # set at each 50th step, held in between
                assert ast <= got < ast + 0.05 + 1e-12, f"{recipe}, warm-up step {step}"
            else:
                assert got == pytest.approx(want), f"{recipe}, epoch {epoch}, step {step}"
        opt.step()
        reference.step()
    with pytest.raises(ConfigError, match="unknown AST recipe"):
        ast_train_config("imagenet")


@pytest.mark.parametrize("recipe", sorted(AST_RECIPES))
def test_ast_recipes_use_asts_adam(recipe):
    """AST's src/traintest.py: torch.optim.Adam(..., weight_decay=5e-7, betas=(0.95, 0.999)) for
    every data set; fit builds its optimiser from these fields."""
    config = ast_train_config(recipe)
    assert (config.optimizer, config.betas, config.weight_decay) == ("adam", (0.95, 0.999), 5e-7)
    assert ast_train_config(recipe, betas=(0.9, 0.999)).betas == (0.9, 0.999), "overrides win"


def test_spectrogram_classifier_augments_only_in_training():
    torch.manual_seed(0)
    model = SpectrogramClassifier(ASTEncoder(ASTEncoderConfig.tiny(num_classes=4)), "forward_fbank",
                                  [SpecAugment(8, 32, freq_dim=-1, time_dim=-2)])
    x = torch.randn(3, 128, 32)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
        direct = model.encoder.forward_fbank(x).logits
    assert a.shape == (3, 4) and torch.equal(a, b) and torch.equal(a, direct), "eval: no masking"
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x)), "training: random masks"
    with pytest.raises(ConfigError, match="no method"):
        SpectrogramClassifier(nn.Linear(2, 2), "forward_fbank")
    with pytest.raises(ConfigError, match="without a classifier"):
        SpectrogramClassifier(ASTEncoder(ASTEncoderConfig.tiny()), "forward_fbank")(x)


@pytest.mark.parametrize("epochs", [1, 2, 5, 8])
def test_ast_weight_averaging_windows(epochs):
    """Paper 2: full AudioSet averages every epoch "from the first to the last", balanced AudioSet
    the last 20 (all of a shorter run); a single epoch has nothing to average."""
    full = ast_train_config("audioset_full", max_epochs=epochs)
    balanced = ast_train_config("audioset_balanced", max_epochs=epochs + 20)
    if epochs == 1:
        assert (full.average_last_k, full.select) == (0, "last")
    else:
        assert (full.average_last_k, full.select) == (epochs, "average")
    assert balanced.average_last_k == 20
    assert ast_train_config("audioset_full", max_epochs=epochs, average_last_k=1,
                            select="last").average_last_k == 1, "an explicit window is kept"
