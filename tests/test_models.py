"""Generator and discriminator: shapes, ranges and wiring, for the paper's configuration and every norm."""
from __future__ import annotations

import pytest
import torch

from colorlib.runs.config import CHOICES, make_config
from colorlib.paper.models import Discriminator, Generator, count_parameters
from colorlib.variants.norms import FeatureAwareNorm
from colorlib.variants import build_discriminator, build_generator


def gray_batch(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def rgb_batch(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("norm", CHOICES["norm"])
@pytest.mark.parametrize("depth", [1, 3, 5])
def test_generators_map_gray_to_colour_in_range_and_train_every_parameter(norm, depth):
    torch.manual_seed(0)
    G = build_generator(make_config("smoke", g_width=8, g_depth=depth, norm=norm))
    out = G(gray_batch(3))
    assert out.shape == (3, 3, 32, 32) and out.min() >= -1 and out.max() <= 1 and out.std() > 0
    out.square().mean().backward()  # FAN's fixed feature network is frozen by design (requires_grad False)
    dead = [n for n, p in G.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert dead == []


@pytest.mark.parametrize("d_norm", CHOICES["d_norm"])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_discriminators_give_one_logit_per_image(d_norm, depth):
    torch.manual_seed(0)
    D = build_discriminator(make_config("smoke", d_width=8, d_depth=depth, d_norm=d_norm))
    logits = D(gray_batch(3), rgb_batch(3))
    assert logits.shape == (3,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("d_norm", CHOICES["d_norm"])
def test_discriminator_logit_depends_on_its_own_image_only(d_norm):
    # eval mode, so batch norm uses running statistics and images do not see each other
    torch.manual_seed(0)
    D = build_discriminator(make_config("smoke", d_norm=d_norm)).eval()
    gray, rgb = gray_batch(4), rgb_batch(4)
    before = D(gray, rgb)
    rgb2 = rgb.clone()
    rgb2[0] = -rgb2[0]
    after = D(gray, rgb2)
    assert after[0] != before[0]
    torch.testing.assert_close(after[1:], before[1:], rtol=0, atol=1e-6)


def test_discriminator_is_conditional_on_the_gray_input():
    torch.manual_seed(0)
    D = build_discriminator(make_config("smoke")).eval()
    rgb = rgb_batch(2)
    assert not torch.equal(D(gray_batch(2, seed=0), rgb), D(gray_batch(2, seed=5), rgb))


def test_spade_norm_is_modulated_by_the_gray_image():
    from colorlib.variants.norms import SpadeNorm
    torch.manual_seed(0)
    spade = SpadeNorm(channels=4).eval()
    h = torch.randn(2, 4, 8, 8)
    # same features, different grayscale images: the scale and shift differ, so does the output
    assert not torch.allclose(spade(h, gray_batch(2, seed=0)), spade(h, gray_batch(2, seed=3)))
    # a plain normalization would ignore the second argument
    from colorlib.paper.models import BatchNorm
    plain = BatchNorm(4).eval()
    assert torch.equal(plain(h, gray_batch(2, seed=0)), plain(h, gray_batch(2, seed=3)))


def test_feature_aware_norm_is_the_cited_gated_modulation():
    # Bug et al. 2017: h' = BN(h) * sigmoid(f(z)) + g(z), f and g 1x1 convolutions of fixed features z
    torch.manual_seed(0)
    fan = FeatureAwareNorm(channels=4, side=8, feature_channels=6).eval()
    h, z = torch.randn(2, 4, 8, 8), {8: torch.randn(2, 6, 8, 8)}
    normed = torch.nn.functional.batch_norm(h, fan.norm.running_mean, fan.norm.running_var, training=False)
    expected = normed * torch.sigmoid(fan.gate(z[8])) + fan.shift(z[8])
    assert torch.allclose(fan(h, z), expected, atol=1e-6)
    # smaller blocks read the 8x8 features average-pooled to their size
    small = FeatureAwareNorm(channels=4, side=2, feature_channels=6).eval()
    assert small(torch.randn(2, 4, 2, 2), z).shape == (2, 4, 2, 2)


def test_fan_generator_reads_the_shipped_classifier_and_keeps_it_fixed():
    from colorlib.variants.cifar_classifier import SHIPPED_CLASSIFIER, load_classifier
    G = build_generator(make_config("smoke", norm="fan"))
    clf = load_classifier(SHIPPED_CLASSIFIER)
    assert torch.equal(G.features.stem[0].weight, clf.body[0].weight)  # not overwritten by the init
    assert not any(p.requires_grad for p in G.features.parameters())
    G.train()
    assert not G.features.training  # its batch norms keep their statistics


def test_build_uses_dcgan_init_and_a_wider_config_has_more_parameters():
    torch.manual_seed(0)
    G = build_generator(make_config("paper"))
    weights = torch.cat([m.weight.detach().flatten() for m in G.modules()
                         if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    assert abs(weights.mean().item()) < 1e-3 and weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert 0 < count_parameters(build_generator(make_config("smoke"))) < count_parameters(G)


def test_the_paper_networks_are_the_built_ones_at_the_paper_settings():
    # the builder adds nothing to the paper's classes when cfg keeps the paper's choices
    cfg = make_config("smoke")
    torch.manual_seed(0)
    built_g, built_d = build_generator(cfg), build_discriminator(cfg)
    from colorlib.paper.models import init_weights
    torch.manual_seed(0)
    G = Generator(cfg.g_width, cfg.g_depth)
    init_weights(G)
    D = Discriminator(cfg.d_width, cfg.d_depth)
    init_weights(D)
    for mine, theirs in ((G, built_g), (D, built_d)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
