"""Speed options must not change the maths: the same steps with and without each CPU option.

Tolerances: channels_last only reorders float32 arithmetic, so the first iteration's
discriminator losses (a pure forward pass before any update) agree to 1e-5 and after three
full iterations the generator weights agree to 1% (relative L2): Adam's first steps are
nearly sign(gradient) * lr, so rounding can flip the update of parameters whose gradient is
close to zero. bf16 autocast (active on CPUs with bf16 units) keeps 8 bits of mantissa: the
losses agree to 2e-2 and the weights to 5%."""

import pytest
import torch

from colorlib.engine.trainer import Trainer
from colorlib.runs.config import make_config

# option: (on, off, loss tolerance, weight tolerance, the other options held fixed)
OPTIONS = {"channels_last": (True, False, 1e-5, 0.01, {"amp": False}),
           "amp": (True, False, 2e-2, 0.05, {"channels_last": True})}


def three_steps(tmp_path, name, **options):
    cfg = make_config("smoke", device="cpu", train_size=150, **options)
    trainer = Trainer(cfg, tmp_path / name, progress=False)
    start = torch.cat([p.detach().clone().flatten() for p in trainer.G.parameters()])
    losses = [trainer.train_step(torch.arange(i * 50, (i + 1) * 50)) for i in range(3)]
    weights = torch.cat([p.detach().flatten() for p in trainer.G.parameters()])
    assert (weights - start).norm() / start.norm() > 0.01  # the steps really trained
    return losses, weights


@pytest.mark.slow
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_option_keeps_results_within_tolerance(data_dir, tmp_path, option):
    on, off, loss_tol, weight_tol, fixed = OPTIONS[option]
    losses_on, w_on = three_steps(tmp_path, "on", **fixed, **{option: on})
    losses_off, w_off = three_steps(tmp_path, "off", **fixed, **{option: off})
    torch.testing.assert_close(losses_on[0][3:], losses_off[0][3:], atol=loss_tol, rtol=loss_tol)
    assert ((w_on - w_off).norm() / w_off.norm()).item() < weight_tol
