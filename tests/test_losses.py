"""The losses of eq. (3)-(5) against values worked out by hand on tiny tensors."""
from __future__ import annotations

import math

import pytest
import torch

from colorlib.paper.losses import (cosine_similarity_loss, discriminator_loss, generator_adversarial_loss,
                                   generator_loss)
from colorlib.variants.objectives import l1_loss, per_pixel_cosine_loss


def softplus(x: float) -> float:
    # -log(sigmoid(-x)) = log(1 + e^x): the BCE of a logit x against label 0
    return math.log1p(math.exp(x))


def test_discriminator_loss_is_eq3_bce_on_logits():
    real_logits = torch.tensor([2.0, -1.0])
    fake_logits = torch.tensor([0.5, -3.0])
    real, fake = discriminator_loss(real_logits, fake_logits)
    # -E[log D(X, Y)] with D = sigmoid(logit): -log(sigmoid(x)) = log(1 + e^-x)
    assert real.item() == pytest.approx((softplus(-2.0) + softplus(1.0)) / 2, rel=1e-6)
    # -E[log(1 - D(X, G(X)))]: -log(1 - sigmoid(x)) = log(1 + e^x)
    assert fake.item() == pytest.approx((softplus(0.5) + softplus(-3.0)) / 2, rel=1e-6)


def test_discriminator_loss_is_stable_for_extreme_logits():
    real, fake = discriminator_loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert real.item() == pytest.approx(200.0) and fake.item() == pytest.approx(200.0)


def test_generator_adversarial_loss_is_non_saturating():
    fake_logits = torch.tensor([0.5, -3.0])
    expected = (softplus(-0.5) + softplus(3.0)) / 2  # -E[log D(X, G(X))]
    assert generator_adversarial_loss(fake_logits).item() == pytest.approx(expected, rel=1e-6)


def test_cosine_loss_is_eq4_per_image_over_all_pixels_and_channels():
    # image 0: a 3-channel 1x2 image whose pixels each point the same way as the target's,
    # but with different lengths, so the per-image and per-pixel readings disagree
    real = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]])
    fake = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]])
    # flattened: real (1,0,0,1,0,0), fake (2,0,0,1,0,0): <.,.> = 3, |real| = sqrt 2, |fake| = sqrt 5
    expected = 1 - 3 / (math.sqrt(2) * math.sqrt(5))
    assert cosine_similarity_loss(fake, real).item() == pytest.approx(expected, rel=1e-6)
    assert per_pixel_cosine_loss(fake, real).item() == pytest.approx(0.0, abs=1e-6)


def test_cosine_loss_averages_over_the_batch():
    real = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, -1.0, 0.5, 0.0]]).reshape(2, 1, 2, 2)
    fake = torch.stack([2.5 * real[0], -real[1]])  # same direction (loss 0), opposite (loss 2)
    assert cosine_similarity_loss(fake, real).item() == pytest.approx(1.0, abs=1e-6)


def test_cosine_loss_on_a_general_pair():
    fake = torch.tensor([0.5, -0.2, 0.1, 0.9, -0.7, 0.3]).reshape(1, 3, 1, 2)
    real = torch.tensor([0.4, 0.1, -0.3, 0.8, -0.5, -0.6]).reshape(1, 3, 1, 2)
    a, b = fake.flatten().tolist(), real.flatten().tolist()
    dot = sum(x * y for x, y in zip(a, b))
    expected = 1 - dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
    assert cosine_similarity_loss(fake, real).item() == pytest.approx(expected, rel=1e-6)


def test_per_pixel_cosine_compares_rgb_vectors_pixel_by_pixel():
    # pixel 0: same direction (0); pixel 1: orthogonal colours (1) -> mean 0.5
    real = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])
    fake = torch.tensor([[[[3.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]])
    assert per_pixel_cosine_loss(fake, real).item() == pytest.approx(0.5, abs=1e-6)


def test_l1_loss_is_the_mean_absolute_difference():
    fake = torch.tensor([0.5, -1.0, 0.25, 1.0]).reshape(1, 1, 2, 2)
    real = torch.tensor([0.0, -0.5, 0.75, 1.0]).reshape(1, 1, 2, 2)
    assert l1_loss(fake, real).item() == pytest.approx((0.5 + 0.5 + 0.5 + 0.0) / 4)


@pytest.mark.parametrize("lam", [0.0, 1.0, 100.0])
def test_generator_loss_is_eq5(lam):
    fake_logits = torch.tensor([0.5, -3.0])
    fake = torch.tensor([0.5, -0.2, 0.1, 0.9, -0.7, 0.3, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).reshape(2, 3, 1, 2)
    real = torch.tensor([0.4, 0.1, -0.3, 0.8, -0.5, -0.6, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]).reshape(2, 3, 1, 2)
    total, adv, sim = generator_loss(fake_logits, fake, real, lam)
    expected_adv = (softplus(-0.5) + softplus(3.0)) / 2
    expected_sim = cosine_similarity_loss(fake, real).item()
    assert adv.item() == pytest.approx(expected_adv, rel=1e-6)
    assert sim.item() == pytest.approx(expected_sim, rel=1e-6)
    assert total.item() == pytest.approx(expected_adv + lam * expected_sim, rel=1e-6)


@pytest.mark.parametrize("adv_weight", [0.0, 0.5, 1.0])
def test_gan_objective_weights_its_adversarial_term(adv_weight):
    from colorlib.variants.objectives import GANObjective
    fake_logits = torch.tensor([0.5, -3.0])
    fake, real = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)
    total, adv, sim = GANObjective(lam=10.0, adv_weight=adv_weight).generator(
        lambda gray, colour: fake_logits, None, real, fake)
    assert adv.item() == pytest.approx((softplus(-0.5) + softplus(3.0)) / 2, rel=1e-6)
    assert total.item() == pytest.approx(adv_weight * adv.item() + 10.0 * sim.item(), rel=1e-6)


def test_gan_objective_at_the_paper_settings_is_the_papers_bitwise():
    from colorlib.paper.losses import PaperObjective
    from colorlib.variants.objectives import GANObjective
    gen = torch.Generator().manual_seed(0)
    fake, real = torch.randn(4, 3, 8, 8, generator=gen), torch.randn(4, 3, 8, 8, generator=gen)
    D = lambda gray, colour: colour.mean((1, 2, 3)) * 3  # noqa: E731 (a stand-in discriminator)
    paper, ours = PaperObjective(100.0), GANObjective(100.0)
    for a, b in zip(paper.generator(D, None, real, fake), ours.generator(D, None, real, fake)):
        assert torch.equal(a, b)
    for a, b in zip(paper.discriminator(D, None, real, fake), ours.discriminator(D, None, real, fake)):
        assert torch.equal(a, b)


def test_gan_objective_can_use_l1_content():
    from colorlib.variants.objectives import GANObjective
    fake, real = torch.full((1, 3, 2, 2), 0.5), torch.full((1, 3, 2, 2), -0.25)
    total, adv, content = GANObjective(lam=10.0, content=l1_loss).generator(
        lambda gray, colour: torch.zeros(1), None, real, fake)
    assert content.item() == pytest.approx(0.75)
    assert total.item() == pytest.approx(math.log(2) + 10 * 0.75, rel=1e-6)


def test_losses_have_gradients_for_the_generator():
    fake = torch.randn(2, 3, 4, 4, requires_grad=True)
    real = torch.randn(2, 3, 4, 4)
    total, _, _ = generator_loss(torch.randn(2), fake, real, lam=100.0)
    total.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
