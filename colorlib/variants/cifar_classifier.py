"""The judge's network, a small fixed CIFAR-10 classifier (a VGG/ResNet-9-style CNN after the fast recipes:
DAWNBench ResNet-9, airbench), and loading its trained weights. The lab trains it and scores semantic accuracy
and the feature distance with it; FAN (norms.py) uses its first layers, which is why it lives here: a
generator built with FAN needs no evaluation code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from ..runs.rundir import load_weights_file

CLASSIFIER_FORMAT = "colorlib-classifier-v1"
SHIPPED_CLASSIFIER = Path(__file__).resolve().parents[1] / "weights" / "cifar10-classifier.pt"
DEFAULT_WIDTHS = (64, 256, 256)
# per-channel statistics of the CIFAR-10 training images, in [0, 1]
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
LOGIT_SCALE = 0.125  # keeps early logits small so label-smoothed CE starts near uniform


class ClassifierError(RuntimeError):
    """A classifier checkpoint that cannot be used; the message says what to do."""


def conv_bn_gelu(cin: int, cout: int, pool: bool = False) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
    if pool:  # pooling before BN is cheaper and normalises what the next layer actually sees
        layers.append(nn.MaxPool2d(2))
    return layers + [nn.BatchNorm2d(cout), nn.GELU()]


class CifarClassifier(nn.Module):
    """Small CNN for 32x32 images; `features` is the pooled penultimate vector."""

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS, num_classes: int = 10, stem: int = 32):
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        layers = conv_bn_gelu(3, stem)
        cin = stem
        for w in self.widths:
            layers += conv_bn_gelu(cin, w, pool=True) + conv_bn_gelu(w, w)
            cin = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.feature_dim = cin
        # not saved in the state dict: they are part of the interface, not learned
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1), persistent=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:  # a gray batch would broadcast silently
            raise ValueError(f"expected RGB images [B, 3, H, W], got shape {tuple(images.shape)}")
        x = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
        return (x - self.mean) / self.std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """[B, feature_dim]: global max-pool of the last block, the input of the linear head."""
        h = self.body(self.normalize(images))
        return torch.amax(h, dim=(2, 3)).float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images)) * LOGIT_SCALE


def _half_state_dict(model: nn.Module) -> dict:
    """Float tensors stored as float16: halves the file, costs nothing measurable in accuracy."""
    return {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
            for k, v in model.state_dict().items()}


def shape_mismatch(expected: dict, weights: dict) -> Optional[str]:
    """What differs between the state dict a network would have (built on the meta device: shapes,
    no memory) and the weights of an untrusted file; None when they fit."""
    missing, unexpected = expected.keys() - weights.keys(), weights.keys() - expected.keys()
    if missing or unexpected:
        return f"missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
    for name, value in weights.items():
        if not isinstance(value, torch.Tensor) or value.shape != expected[name].shape:
            return f"{name} is {tuple(getattr(value, 'shape', ()))}, the config makes {tuple(expected[name].shape)}"
    return None


def load_classifier(path, device=None) -> CifarClassifier:
    """The trained classifier in eval mode, float32, with the file's `classes` (in label order) and
    `test_accuracy`; its architecture is checked against its tensors' shapes before anything is allocated."""
    remedy = "Train one with `python -m colorlib train-classifier --data PATH --out FILE.pt`."
    ckpt = load_weights_file(path, (CLASSIFIER_FORMAT,), "classifier", remedy, ClassifierError)
    try:
        arch, weights = ckpt["arch"], ckpt["state_dict"]
        with torch.device("meta"):
            problem = shape_mismatch(CifarClassifier(arch["widths"], arch["num_classes"], arch["stem"]).state_dict(),
                                     weights)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        raise ClassifierError(f"classifier {str(path)!r} does not fit its own architecture ({problem}). {remedy}")
    model = CifarClassifier(arch["widths"], arch["num_classes"], arch["stem"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    model.classes = list(ckpt.get("classes", []))
    model.test_accuracy = ckpt.get("test_accuracy")
    return (model if device is None else model.to(device)).eval()
