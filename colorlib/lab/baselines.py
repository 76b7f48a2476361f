"""Baselines and ablations (METHODS), trained and scored side by side by `study`: each is the chosen
preset with a few fields changed. The paper leaves three choices open, and each gets its own row: the
cosine of eq. (4) over the whole image vs per pixel, a single-logit discriminator vs PatchGAN, and
"Adam with default parameters" (lr 1e-3) vs the GAN-usual lr 2e-4, beta1 0.5.
"""
from __future__ import annotations

GAN_ADAM = dict(lr=2e-4, beta1=0.5)
# the chroma-only generator with a spectral-norm D, GAN Adam: the best variant of the first table
OURS_YCBCR = dict(output="ycbcr", d_norm="spectral", **GAN_ADAM)
# established GAN stabilisers, each measured alone on top of OURS_YCBCR and then all together
TTUR = dict(lr=1e-4, d_lr=4e-4)  # Heusel et al. 2017: D learns 4x faster than G
EMA = dict(ema_decay=0.999)
R1 = dict(r1_gamma=0.1)
SMOOTH = dict(label_smoothing=0.1)
LINEAR_DECAY = dict(lr_schedule="linear")
STABLE = {**OURS_YCBCR, **TTUR, **EMA, **SMOOTH, **LINEAR_DECAY}
# colour as classes (Zhang et al. 2016), rebalanced cross-entropy weighted 1 next to the GAN term
CLASSES = dict(output="classes", lam=1.0, d_norm="spectral", **GAN_ADAM, **EMA)

METHODS: dict[str, dict] = {
    # regression: the U-Net alone, no discriminator
    "unet-l1": dict(adv_weight=0.0, content_loss="l1"),
    # pix2pix (Isola et al. 2017): PatchGAN, L1 x 100, one D step, their Adam settings
    "pix2pix": dict(content_loss="l1", lam=100.0, d_arch="patch", d_steps=1, d_depth=2, **GAN_ADAM),
    # the paper as we read it: GAN + 100 x cosine, two D steps, Adam defaults, batch norm
    "paper": dict(),
    "paper-instance-norm": dict(norm="instance"),
    "paper-fan": dict(norm="fan"),  # feature-aware normalization as cited (Bug et al. 2017)
    "paper-spade": dict(norm="spade"),  # our first reading of it, SPADE-like
    "paper-lambda-10": dict(lam=10.0),
    "paper-lambda-1000": dict(lam=1000.0),
    "paper-cosine-per-pixel": dict(content_loss="cosine_pixel"),
    "paper-patchgan": dict(d_arch="patch", d_depth=2),
    "paper-adam-2e-4": dict(**GAN_ADAM),
    # predict chroma only (the input's luma is kept exactly), GAN Adam, spectral-norm D
    "ours-ycbcr": dict(OURS_YCBCR),
    "ycbcr-ttur": {**OURS_YCBCR, **TTUR},
    "ycbcr-ema": {**OURS_YCBCR, **EMA},
    "ycbcr-r1": {**OURS_YCBCR, **R1},
    "ycbcr-label-smoothing": {**OURS_YCBCR, **SMOOTH},
    "stable": STABLE,
    "classes": CLASSES,  # chroma classes + GAN
    "classes-no-gan": dict(CLASSES, adv_weight=0.0),  # Zhang et al. alone
}
