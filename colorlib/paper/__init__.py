"""The paper's method, and nothing else: "Image Colorization Using Generative Adversarial Networks
with Feature-Aware Normalization". Read in this order: config.py (the hyperparameters), data.py
(the transforms), models.py (Fig. 1 and 2), losses.py (eq. 3-5), step.py (one training iteration).
Only the standard library and torch are imported here."""
from .config import PRESETS, PaperConfig
from .data import LUMA_WEIGHTS, epoch_order, luma, to_model_range, to_uint8
from .losses import (PaperObjective, cosine_similarity_loss, discriminator_loss, generator_adversarial_loss,
                     generator_loss)
from .models import BatchNorm, Discriminator, Generator, count_parameters, init_weights
from .step import set_requires_grad, training_iteration

__all__ = ["PRESETS", "PaperConfig", "LUMA_WEIGHTS", "epoch_order", "luma", "to_model_range", "to_uint8",
           "PaperObjective", "cosine_similarity_loss", "discriminator_loss", "generator_adversarial_loss",
           "generator_loss", "BatchNorm", "Discriminator", "Generator", "count_parameters", "init_weights",
           "set_requires_grad", "training_iteration"]
