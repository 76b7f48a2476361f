"""The stable recipe's parts and what the run directory records about them."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from colorlib.runs import rundir
from colorlib.paper.losses import discriminator_loss
from colorlib.variants.objectives import r1_penalty
from colorlib.lab.validation import validator_for
from colorlib.engine.trainer import D_WINS_LOSS, Trainer


def test_one_sided_label_smoothing_labels_real_pairs_below_one():
    logits = torch.tensor([3.0, -1.0])
    real, fake = discriminator_loss(logits, logits, label_smoothing=0.1)
    target = 0.9
    expected = -(target * torch.log(torch.sigmoid(logits)) + (1 - target) * torch.log(1 - torch.sigmoid(logits)))
    assert real.item() == pytest.approx(expected.mean().item(), rel=1e-5)
    assert fake.item() == pytest.approx(discriminator_loss(logits, logits)[1].item())  # fake side unchanged
    # D can no longer reach zero loss on real pairs: it cannot "win outright" there
    assert discriminator_loss(torch.tensor([50.0]), torch.tensor([-50.0]), 0.1)[0].item() > 1.0


def test_r1_penalty_is_the_squared_input_gradient():
    w = torch.randn(3, 4)
    x = torch.randn(5, 3, 4, requires_grad=True)
    logits = (x * w).flatten(1).sum(1)  # a linear critic: its input gradient is w for every sample
    assert r1_penalty(logits, x).item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)
    # create_graph: the penalty itself has a gradient, so it trains D
    lin = nn.Linear(4, 1)
    y = torch.randn(6, 4, requires_grad=True)
    r1_penalty(lin(y).squeeze(1), y).backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_ema_generator_follows_the_live_one_by_the_decay(smoke_config, tmp_path):
    with Trainer(smoke_config(ema_decay=0.75), tmp_path / "run", progress=False) as trainer:
        before = copy.deepcopy(trainer.G_ema.state_dict())
        trainer.train_step(torch.arange(50))
        live, params = trainer.G.state_dict(), dict(trainer.G.named_parameters())
        for name, value in trainer.G_ema.state_dict().items():
            if value.is_floating_point() and name in params:
                expected = before[name] + 0.25 * (live[name] - before[name])
                assert torch.allclose(value, expected, atol=1e-6), name


@pytest.mark.slow
def test_run_directory_records_collapse_validation_and_best_epoch(smoke_config, tmp_path):
    run = tmp_path / "run"
    with Trainer(smoke_config(epochs=4, ema_decay=0.5, lr_schedule="linear"), run, progress=False,
                 validator=validator_for) as trainer:
        trainer.fit()
    epochs = rundir.read_epochs(run)
    assert epochs["epoch"].tolist() == [1, 2, 3, 4]
    # the collapse statistic is what the per-iteration history says
    history = rundir.read_history(run)
    for e in (1, 2, 3, 4):
        rows = history["epoch"] == e
        wins = ((history["d_real"][rows] + history["d_fake"][rows]) < D_WINS_LOSS).double().mean().item()
        assert epochs["d_wins_share"][e - 1].item() == pytest.approx(wins, abs=1e-5)
    # pix2pix's linear decay over the second half: epochs 1 and 2 at the full rate, then 2/3, 1/3
    assert epochs["lr_g"].tolist() == pytest.approx([1e-3, 1e-3, 2e-3 / 3, 1e-3 / 3], rel=1e-5)
    # best.pt holds the epoch with the lowest validation feature distance, and its scores
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    fds = epochs["val_fd"].tolist()
    assert best["epoch"] == 1 + fds.index(min(fds))
    assert best["validation"]["feature_fd"] == pytest.approx(min(fds), rel=1e-4)
    assert best["validation"]["images"] == 50  # the smoke preset's validation hold-out
    # generator.pt is the EMA generator, what colorize gets
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    gen = torch.load(run / "checkpoints" / "generator.pt", weights_only=True)
    for k, v in gen["generator"].items():
        assert torch.equal(v, last["generator_ema"][k])
