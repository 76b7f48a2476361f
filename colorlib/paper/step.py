"""One training iteration of the paper (Sec. III-D, IV-B): the only copy of the algorithm.

The generator colorizes the batch once; the discriminator is then updated `d_steps` times
(the paper: 2) on real pairs (X, Y) against generated pairs (X, G(X)), eq. (3); then the
generator is updated once on eq. (5), with gradients flowing through the discriminator but not
into it. Everything else a run does (epochs, shuffling, checkpoints, bf16, CUDA graphs, several
GPUs) is colorlib.engine's, around this function; the variants change `objective` and the
networks, never these lines.
"""
from __future__ import annotations

import torch


def set_requires_grad(module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def training_iteration(G, D, g_opt, d_opt, gray: torch.Tensor, rgb: torch.Tensor, objective,
                       d_steps: int = 2) -> torch.Tensor:
    """One iteration on a batch (gray, rgb) in [-1, 1]. Returns the detached losses
    [g_total, g_adv, g_content, d_real, d_fake], D's averaged over its updates."""
    fake = G(gray)  # eq. (1): Y' = G(X), computed once for the whole iteration
    d_real_sum = d_fake_sum = torch.zeros((), device=gray.device)
    for _ in range(d_steps):  # eq. (3): D learns to tell (X, Y) from (X, Y')
        d_opt.zero_grad(set_to_none=True)
        d_loss, d_real, d_fake = objective.discriminator(D, gray, rgb, fake.detach())
        d_loss.backward()
        d_opt.step()
        d_real_sum, d_fake_sum = d_real_sum + d_real.detach(), d_fake_sum + d_fake.detach()

    set_requires_grad(D, False)  # G's update needs gradients through D, not for D
    g_opt.zero_grad(set_to_none=True)
    total, adv, content = objective.generator(D, gray, rgb, fake)  # eq. (5)
    total.backward()
    g_opt.step()
    set_requires_grad(D, True)

    steps = max(d_steps, 1)
    return torch.stack([total.detach(), adv.detach(), content.detach(), d_real_sum / steps, d_fake_sum / steps])
