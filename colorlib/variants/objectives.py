"""Objectives beside the paper's (paper/losses.py): `GANObjective` is eq. (5) with the open choices as
parts (the content loss: eq. 4's cosine over the image, per pixel, or pix2pix's L1; the adversarial
weight; one-sided label smoothing, Salimans et al. 2016); `R1Objective` adds the R1 penalty on real pairs
(Mescheder et al. 2018); `RegressionObjective` is the U-Net alone (no D steps); `ChromaClassesLoss` the
rebalanced cross-entropy over chroma bins (Zhang et al. 2016) for a ChromaClassesOutput."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..paper.losses import (PaperObjective, cosine_similarity_loss, discriminator_loss,
                            generator_adversarial_loss)
from .color import rgb_to_ycbcr


def per_pixel_cosine_loss(fake: torch.Tensor, real: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The other reading of eq. (4): cosine between RGB vectors at each pixel, then averaged."""
    cos = F.cosine_similarity(fake.float(), real.float(), dim=1, eps=eps)
    return (1.0 - cos).mean()


def l1_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(fake.float(), real.float())


CONTENT_LOSSES = {"cosine": cosine_similarity_loss, "cosine_pixel": per_pixel_cosine_loss, "l1": l1_loss}


def r1_penalty(real_logits: torch.Tensor, real_input: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E[|grad_x D(x)|^2] on real pairs, without the gamma / 2. `real_input`
    must require grad and be what D saw; the gradient stays differentiable so the penalty trains D."""
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real_input, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


class ChromaClassesLoss:
    """Content loss of a chroma-classes generator: the cross-entropy of the logits its output head
    kept from this iteration's forward pass against the true chroma (the image `fake` is not used)."""

    def __init__(self, output):
        self.output = output

    def __call__(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return self.output.bins.loss(self.output.logits, rgb_to_ycbcr(real)[:, 1:])


class GANObjective(PaperObjective):
    def __init__(self, lam: float = 100.0, content=cosine_similarity_loss, adv_weight: float = 1.0,
                 label_smoothing: float = 0.0):
        super().__init__(lam)
        self.content, self.adv_weight, self.label_smoothing = content, adv_weight, label_smoothing

    def discriminator(self, D, gray, real, fake):
        real_term, fake_term = discriminator_loss(D(gray, real), D(gray, fake), self.label_smoothing)
        return real_term + fake_term, real_term, fake_term

    def generator(self, D, gray, real, fake):
        adv = generator_adversarial_loss(D(gray, fake))
        sim = self.content(fake, real)
        return self.adv_weight * adv + self.lam * sim, adv, sim


class R1Objective(GANObjective):
    def __init__(self, r1_gamma: float, **parts):
        super().__init__(**parts)
        self.r1_gamma = r1_gamma

    def discriminator(self, D, gray, real, fake):
        real = real.detach().requires_grad_(True)  # the penalty is a gradient with respect to the real input
        real_logits = D(gray, real)
        real_term, fake_term = discriminator_loss(real_logits, D(gray, fake), self.label_smoothing)
        loss = real_term + fake_term + self.r1_gamma / 2 * r1_penalty(real_logits, real)
        return loss, real_term, fake_term


class RegressionObjective(GANObjective):
    """The generator alone: its adversarial term is reported at a discriminator's indifference
    (logit 0) and weighted adv_weight = 0, so the history keeps its columns."""

    def generator(self, D, gray, real, fake):
        return super().generator(lambda x, _: torch.zeros(x.shape[0], device=x.device), gray, real, fake)
