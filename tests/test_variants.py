"""The model variants behind the baselines: chroma-only output, PatchGAN, per-pixel cosine, chroma classes."""
import math

import pytest
import torch
import torch.nn.functional as F

from colorlib.runs.config import make_config
from colorlib.variants import build_discriminator, build_generator
from colorlib.lab.baselines import METHODS
from colorlib.paper.data import LUMA_WEIGHTS
from colorlib.variants.chroma import ChromaBins
from colorlib.variants.objectives import CONTENT_LOSSES


def luma(rgb):
    return sum(w * rgb[:, i] for i, w in enumerate(LUMA_WEIGHTS))


def test_the_ycbcr_generator_keeps_the_input_luma_and_the_papers_does_not():
    torch.manual_seed(0)
    gray = torch.rand(4, 1, 32, 32) * 1.2 - 0.6  # mid-range: no pixel is clamped
    with torch.no_grad():
        out = build_generator(make_config("smoke", output="ycbcr")).eval()(gray)
        rgb = build_generator(make_config("smoke")).eval()(gray)
    assert out.shape == (4, 3, 32, 32)
    torch.testing.assert_close(luma(out), gray[:, 0], atol=1e-5, rtol=0)
    assert out.std(dim=1).mean() > 0  # and it is not simply gray
    assert (luma(rgb) - gray[:, 0]).abs().max() > 1e-2


@pytest.mark.parametrize("depth, patches", [(2, 64), (3, 16)])
def test_patchgan_gives_one_logit_per_patch(depth, patches):
    D = build_discriminator(make_config("smoke", d_arch="patch", d_depth=depth))
    assert D(torch.zeros(2, 1, 32, 32), torch.zeros(2, 3, 32, 32)).shape == (2, patches)


def test_per_pixel_cosine_differs_from_whole_image_cosine():
    real = torch.tensor([[[[1.0, -1.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])  # two pixels: red, anti-red
    fake = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])
    # whole image: vectors (1,-1) and (1,1) are orthogonal -> 1; per pixel: cos 1 and -1 -> mean loss 1
    assert CONTENT_LOSSES["cosine"](fake, real).item() == pytest.approx(1.0)
    assert CONTENT_LOSSES["cosine_pixel"](fake, real).item() == pytest.approx(1.0)
    fake2 = torch.tensor([[[[2.0, -0.5]], [[0.0, 0.0]], [[0.0, 0.0]]]])
    # per pixel both point the right way (loss 0); over the image the magnitudes differ (loss > 0)
    assert CONTENT_LOSSES["cosine_pixel"](fake2, real).item() == pytest.approx(0.0, abs=1e-6)
    assert CONTENT_LOSSES["cosine"](fake2, real).item() > 0.05


def test_every_baseline_is_a_valid_config():
    for name, overrides in METHODS.items():
        cfg = make_config("smoke", **overrides)
        G, D = build_generator(cfg), build_discriminator(cfg)
        fake = G(torch.zeros(2, 1, 32, 32))
        assert D(torch.zeros(2, 1, 32, 32), fake).shape[0] == 2, name


def test_chroma_bins_encode_decode_and_rebalance():
    bins = ChromaBins(grid=8)
    cbcr = torch.rand(3, 2, 5, 5) * 2 - 1
    cells, weights = bins.soft_encode(cbcr)
    assert torch.allclose(weights.sum(1), torch.ones(3, 5, 5))
    decoded = (bins.centres[cells] * weights[..., None]).sum(1).permute(0, 3, 1, 2)
    assert torch.allclose(decoded, cbcr, atol=1e-6)  # the soft encoding is exact in the mean
    prior = bins.fit_prior(cbcr * 0.2)  # mostly grayish colours
    assert (prior * bins.weights).sum().item() == pytest.approx(1.0, rel=1e-5)
    centre = bins.grid * (bins.grid // 2) + bins.grid // 2
    assert bins.weights.max() > bins.weights[centre]  # rare saturated colours weigh more than gray
    # annealed mean: a low temperature moves towards the most likely bin (vivid), T = 1 is the mean
    logits = torch.zeros(1, bins.count, 1, 1)
    logits[0, 0] = 2.0  # the corner bin (-1, -1) a little more likely than the rest
    near_mode = bins.annealed_mean(logits, 0.1).flatten()
    assert near_mode.norm() > bins.annealed_mean(logits, 1.0).flatten().norm()
    assert torch.allclose(near_mode, torch.tensor([-1.0, -1.0]), atol=0.05)


def test_the_bins_work_along_pixel_rows_computes_the_channel_first_formulas():
    torch.manual_seed(0)
    bins, logits, cbcr = ChromaBins(), torch.randn(3, 256, 5, 4), torch.rand(3, 2, 5, 4) * 1.6 - 0.8
    bins.weights.copy_(torch.rand(bins.count) + 0.5)
    mean = torch.einsum("bqhw,qc->bchw", torch.softmax(logits / 0.38, dim=1), bins.centres)
    cells, w = bins.soft_encode(cbcr)
    ce = -(F.log_softmax(logits, dim=1).gather(1, cells) * w).sum(1)
    loss = ((bins.weights[cells] * w).sum(1) * ce).mean()
    for layout in (torch.contiguous_format, torch.channels_last):
        x = logits.contiguous(memory_format=layout)
        assert torch.allclose(bins.annealed_mean(x, 0.38), mean, atol=1e-6)
        assert torch.allclose(bins.loss(x, cbcr), loss, atol=1e-6)


def test_classes_generator_learns_the_training_colour_prior(smoke_config, tmp_path):
    from colorlib.engine.trainer import Trainer
    with Trainer(smoke_config(output="classes", lam=1.0), tmp_path / "run", progress=False) as trainer:
        w = trainer.G.output.bins.weights
    assert not torch.equal(w, torch.ones_like(w)) and math.isfinite(w.sum().item())
