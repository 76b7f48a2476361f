"""The losses of eq. (3)-(5) and the variants' objectives against values worked out by hand on tiny tensors."""
from __future__ import annotations

import math

import pytest
import torch

from colorlib.paper.losses import (PaperObjective, cosine_similarity_loss, discriminator_loss,
                                   generator_adversarial_loss, generator_loss)
from colorlib.variants.objectives import GANObjective, l1_loss, per_pixel_cosine_loss


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))  # -log(sigmoid(-x)): the BCE of a logit x against label 0


def test_discriminator_loss_is_eq3_bce_on_logits_and_g_is_non_saturating():
    real, fake = discriminator_loss(torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0]))
    assert real.item() == pytest.approx((softplus(-2.0) + softplus(1.0)) / 2, rel=1e-6)  # -E[log D(X, Y)]
    assert fake.item() == pytest.approx((softplus(0.5) + softplus(-3.0)) / 2, rel=1e-6)  # -E[log(1 - D(X, G(X)))]
    expected = (softplus(-0.5) + softplus(3.0)) / 2  # -E[log D(X, G(X))]
    assert generator_adversarial_loss(torch.tensor([0.5, -3.0])).item() == pytest.approx(expected, rel=1e-6)
    real, fake = discriminator_loss(torch.tensor([-200.0]), torch.tensor([200.0]))  # stable at the extremes
    assert real.item() == pytest.approx(200.0) and fake.item() == pytest.approx(200.0)


def test_cosine_loss_is_eq4_per_image_over_all_pixels_and_channels():
    # pixels pointing the target's way with other lengths: the per-image and per-pixel readings disagree
    real = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]])
    fake = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]])
    assert cosine_similarity_loss(fake, real).item() == pytest.approx(1 - 3 / (math.sqrt(2) * math.sqrt(5)), rel=1e-6)
    assert per_pixel_cosine_loss(fake, real).item() == pytest.approx(0.0, abs=1e-6)
    orthogonal = torch.tensor([[[[3.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]])  # pixel 1: orthogonal colours
    assert per_pixel_cosine_loss(orthogonal, torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])).item() == \
        pytest.approx(0.5, abs=1e-6)
    batch = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, -1.0, 0.5, 0.0]]).reshape(2, 1, 2, 2)
    assert cosine_similarity_loss(torch.stack([2.5 * batch[0], -batch[1]]), batch).item() == pytest.approx(1.0)
    fake, real = torch.tensor([0.5, -0.2, 0.1, 0.9]), torch.tensor([0.4, 0.1, -0.3, 0.8])
    expected = 1 - float(fake @ real) / (fake.norm().item() * real.norm().item())
    assert cosine_similarity_loss(fake.reshape(1, 1, 2, 2), real.reshape(1, 1, 2, 2)).item() == \
        pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("lam", [0.0, 1.0, 100.0])
def test_generator_loss_is_eq5_with_gradients(lam):
    fake = torch.tensor([0.5, -0.2, 0.1, 0.9, -0.7, 0.3, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).reshape(2, 3, 1, 2)
    real = torch.tensor([0.4, 0.1, -0.3, 0.8, -0.5, -0.6, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]).reshape(2, 3, 1, 2)
    fake.requires_grad_(True)
    total, adv, sim = generator_loss(torch.tensor([0.5, -3.0]), fake, real, lam)
    expected_adv = (softplus(-0.5) + softplus(3.0)) / 2
    assert adv.item() == pytest.approx(expected_adv, rel=1e-6)
    assert sim.item() == pytest.approx(cosine_similarity_loss(fake, real).item(), rel=1e-6)
    assert total.item() == pytest.approx(expected_adv + lam * sim.item(), rel=1e-6)
    total.backward()
    assert fake.grad is not None and (lam == 0 or fake.grad.abs().sum() > 0)


def test_gan_objective_is_the_papers_bitwise_at_its_settings_and_weighs_its_parts():
    gen = torch.Generator().manual_seed(0)
    fake, real = torch.randn(4, 3, 8, 8, generator=gen), torch.randn(4, 3, 8, 8, generator=gen)
    D = lambda gray, colour: colour.mean((1, 2, 3)) * 3  # noqa: E731 (a stand-in discriminator)
    paper, ours = PaperObjective(100.0), GANObjective(100.0)
    for a, b in [*zip(paper.generator(D, None, real, fake), ours.generator(D, None, real, fake)),
                 *zip(paper.discriminator(D, None, real, fake), ours.discriminator(D, None, real, fake))]:
        assert torch.equal(a, b)
    half = GANObjective(lam=10.0, adv_weight=0.5).generator(D, None, real, fake)
    assert half[0].item() == pytest.approx(0.5 * half[1].item() + 10.0 * half[2].item(), rel=1e-6)
    fake, real = torch.full((1, 3, 2, 2), 0.5), torch.full((1, 3, 2, 2), -0.25)
    total, _, content = GANObjective(lam=10.0, content=l1_loss).generator(lambda g, c: torch.zeros(1), None, real, fake)
    assert content.item() == pytest.approx(0.75) and total.item() == pytest.approx(math.log(2) + 7.5, rel=1e-6)
