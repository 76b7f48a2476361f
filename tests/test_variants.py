"""The model variants behind the baselines: chroma-only output, PatchGAN, per-pixel cosine."""
import pytest
import torch

from colorlib.runs.config import make_config
from colorlib.variants import build_discriminator, build_generator
from colorlib.lab.baselines import METHODS
from colorlib.paper.data import LUMA_WEIGHTS
from colorlib.variants.objectives import CONTENT_LOSSES


def luma(rgb):
    return sum(w * rgb[:, i] for i, w in enumerate(LUMA_WEIGHTS))


def test_ycbcr_generator_keeps_the_input_luma():
    torch.manual_seed(0)
    G = build_generator(make_config("smoke", output="ycbcr")).eval()
    gray = torch.rand(4, 1, 32, 32) * 1.2 - 0.6  # mid-range: no pixel is clamped
    with torch.no_grad():
        out = G(gray)
    assert out.shape == (4, 3, 32, 32)
    torch.testing.assert_close(luma(out), gray[:, 0], atol=1e-5, rtol=0)
    assert out.std(dim=1).mean() > 0  # and it is not simply gray


def test_rgb_generator_does_not_keep_luma_exactly():
    torch.manual_seed(0)
    G = build_generator(make_config("smoke")).eval()
    gray = torch.rand(4, 1, 32, 32) * 1.2 - 0.6
    with torch.no_grad():
        assert (luma(G(gray)) - gray[:, 0]).abs().max() > 1e-2


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


def test_the_bins_work_along_pixel_rows_computes_the_channel_first_formulas():
    # the annealed mean and the rebalanced cross-entropy, written over [B, Q, H, W] as before,
    # equal the pixel-row forms in both memory layouts (older classes checkpoints keep their outputs)
    import torch.nn.functional as F
    from colorlib.variants.chroma import ChromaBins
    torch.manual_seed(0)
    bins = ChromaBins()
    bins.weights.copy_(torch.rand(bins.count) + 0.5)
    logits = torch.randn(3, bins.count, 5, 4)
    cbcr = torch.rand(3, 2, 5, 4) * 1.6 - 0.8
    p = torch.softmax(logits / 0.38, dim=1)
    mean = torch.einsum("bqhw,qc->bchw", p, bins.centres)
    cells, w = bins.soft_encode(cbcr)
    logp = F.log_softmax(logits, dim=1)
    ce = -(logp.gather(1, cells) * w).sum(1)
    loss = ((bins.weights[cells] * w).sum(1) * ce).mean()
    for layout in (torch.contiguous_format, torch.channels_last):
        x = logits.contiguous(memory_format=layout)
        assert torch.allclose(bins.annealed_mean(x, 0.38), mean, atol=1e-6)
        assert torch.allclose(bins.loss(x, cbcr), loss, atol=1e-6)


def test_the_half_resolution_head_predicts_bins_at_half_size_and_keeps_the_luma():
    from colorlib.variants.color import rgb_to_ycbcr
    from colorlib.variants.heads import ChromaClassesOutput
    torch.manual_seed(0)
    head = ChromaClassesOutput(embed=8, subsample=2)
    assert head.channels == 8
    gray = torch.rand(2, 1, 32, 32) * 2 - 1
    rgb = head(torch.randn(2, 8, 32, 32), gray)
    assert rgb.shape == (2, 3, 32, 32) and head.logits.shape == (2, 256, 16, 16)
    inside = rgb.abs().amax(1, keepdim=True) < 0.99  # where no channel was clamped, Y is the input's
    assert torch.allclose(rgb_to_ycbcr(rgb)[:, :1][inside], gray[inside], atol=1e-5)
    # its loss scores the 16x16 logits against the chroma averaged over each 2x2 block
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    pooled = torch.nn.functional.avg_pool2d(rgb_to_ycbcr(real)[:, 1:], 2)
    assert torch.allclose(head.bins.loss(head.logits, rgb_to_ycbcr(real)[:, 1:]), head.bins.loss(head.logits, pooled))
    with pytest.raises(ValueError, match="needs embed"):
        ChromaClassesOutput(subsample=2)
