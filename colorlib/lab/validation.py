"""Scoring on the validation split (a fixed hold-out of the training images) after every epoch, so that
`best.pt` and every choice never look at the test split. `best.pt` is the epoch with the lowest
classifier-feature FD: the one score that punishes both washed-out and wrong colours (PSNR rewards gray).
"""
from __future__ import annotations

import torch
from torch import nn

from ..paper.data import to_model_range, to_uint8
from ..variants.cifar_classifier import SHIPPED_CLASSIFIER, load_classifier
from .metrics import colourfulness, feature_distance_metric, psnr_from_mse


class Validator:
    """The validation images, their classifier features computed once, and a `score` method."""

    def __init__(self, images: torch.Tensor, device, batch_size: int = 500):
        self.images, self.device, self.batch_size = images.to(device), torch.device(device), batch_size
        self.classifier = load_classifier(SHIPPED_CLASSIFIER, device).eval()
        self.fd = feature_distance_metric(self.classifier).to(self.device)
        self.fd.reset_real_features = False  # the real side is computed once and kept across resets
        with torch.no_grad():
            for start in range(0, len(self.images), batch_size):
                self.fd.update(self.classifier.features(self.images[start:start + batch_size]), real=True)
        self.truth_colourfulness = float(colourfulness(self.images).mean())

    @torch.no_grad()
    def score(self, G: nn.Module) -> dict:
        was_training = G.training
        G.eval()
        self.fd.reset()
        sq_err, colour, pixels = 0.0, 0.0, 0
        try:
            for start in range(0, len(self.images), self.batch_size):
                truth = self.images[start:start + self.batch_size]
                out = to_uint8(G(to_model_range(truth)[0]))
                sq_err += float((out.float() - truth.float()).pow(2).sum())
                pixels += truth.numel()
                colour += float(colourfulness(out).sum())
                self.fd.update(self.classifier.features(out), real=False)
            fd = float(self.fd.compute())
        finally:
            G.train(was_training)
        return {"images": len(self.images), "psnr_dataset_db": psnr_from_mse(sq_err / pixels).item(),
                "colourfulness": colour / len(self.images), "truth_colourfulness": self.truth_colourfulness,
                "feature_fd": fd}


def validator_for(trainer) -> Validator:
    """The end-of-epoch hook of `Trainer(..., validator=validator_for)`, shared by a sweep's runs."""
    key = ("validator", trainer.cfg.data, trainer.cfg.val_size, str(trainer.device))
    if key not in trainer.data_cache:
        trainer.data_cache[key] = Validator(trainer.split("val", None, 0).images, trainer.device)
    return trainer.data_cache[key]
