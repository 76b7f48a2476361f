"""The paper's losses, eq. (3)-(5), and the objective the training iteration optimises.

Choice of lambda (eq. 5). The paper gives none. We default to lambda = 100, the weight
pix2pix gives its content term, for a measured reason: the cosine loss is small (median 0.06
per image over the shipped 100-epoch run, 0.02 in its last epoch: colour images in [-1, 1] are
long vectors that mostly agree in direction once the luminance is right), while the adversarial
BCE is of order 1-20 (median 14). With lambda = 100 the two terms are of the same order, so the
content term anchors the colours to the ground truth and the adversarial term still adds
saturation. `lam` is a config field; the evaluation sweeps it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (3) as the discriminator maximises it, written as two BCE terms to minimise.

    -E[log D(X, Y)] on real pairs and -E[log(1 - D(X, G(X)))] on generated pairs, on logits.
    Returned separately so the history can show both (Fig. 3 plots their sum).
    label_smoothing > 0 (a stabiliser, not the paper's) labels real pairs 1 - label_smoothing.
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, 1.0 - label_smoothing))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real, fake


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's side of eq. (3), in the non-saturating form -E[log D(X, G(X))].

    Minimising log(1 - D(X, G(X))) literally gives vanishing gradients while D wins early on
    (Goodfellow et al. 2014, Sec. 3); every GAN implementation, pix2pix included, uses this form.
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def cosine_similarity_loss(fake: torch.Tensor, real: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. (4): 1 - <Y', Y> / (|Y'| |Y|), each image flattened over channels and pixels, batch mean."""
    cos = F.cosine_similarity(fake.flatten(1).float(), real.flatten(1).float(), dim=1, eps=eps)
    return (1.0 - cos).mean()


def generator_loss(fake_logits: torch.Tensor, fake: torch.Tensor, real: torch.Tensor,
                   lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (5): L_total = L_GAN + lambda * L_sim. Returns (total, adversarial, content)."""
    adv = generator_adversarial_loss(fake_logits)
    sim = cosine_similarity_loss(fake, real)
    return adv + lam * sim, adv, sim


class PaperObjective:
    """Eq. (3)-(5) as the training iteration asks for them: what D minimises on a batch, and what G
    minimises. Variants (colorlib.variants.objectives) are objects with the same two methods."""

    def __init__(self, lam: float = 100.0):
        self.lam = lam

    def discriminator(self, D, gray, real, fake) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(D's loss, its real-pair term, its fake-pair term): eq. (3) on (X, Y) and (X, G(X))."""
        real_term, fake_term = discriminator_loss(D(gray, real), D(gray, fake))
        return real_term + fake_term, real_term, fake_term

    def generator(self, D, gray, real, fake) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(G's loss, adversarial term, content term): eq. (5)."""
        return generator_loss(D(gray, fake), fake, real, self.lam)
