"""Numbers for colorizations: the paper shows only pictures and loss curves, so we measure.

Every metric compares 8-bit RGB images [B, 3, H, W] (uint8), the images a user would save: PSNR (dB,
per image and of the dataset's mean squared error), SSIM, colourfulness (Hasler & Suesstrunk 2003),
pixel accuracy (Nazeri, Ng & Ebrahimi 2018), semantic accuracy (Zhang, Isola & Efros 2016: a fixed
classifier's top-1 accuracy on the colorizations) and the Frechet distance of that classifier's
features, NOT comparable with Inception FID (`--inception-weights` adds that, with torch-fidelity).
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from ..inference import colorize
from ..paper.data import to_model_range, to_uint8
from ..runs.data import load_split, resolve_source

PSNR_CAP_DB = 100.0  # so that identical images do not make a mean infinite (32x32 one level apart: 82.9 dB)
NAZERI_THRESHOLD = 0.02  # 2% of each Lab channel's range
LAB_RANGES = (100.0, 220.0, 220.0)  # L in [0, 100]; a, b in [-110, 110] (Nazeri et al.'s code)
GRAY_METHOD = "gray (copied to RGB)"
# sRGB primaries to CIE XYZ and the D65 white: skimage.color.rgb2lab's and OpenCV's constants
SRGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
D65_WHITE = (0.950456, 1.0, 1.088754)


class MetricsError(RuntimeError):
    """Inputs the metrics cannot use; the message says what to do."""


def _check_rgb(*batches: torch.Tensor) -> None:
    if any(b.dim() != 4 or b.shape[1] != 3 or b.shape != batches[0].shape for b in batches):
        raise MetricsError(f"expected RGB batches [B, 3, H, W] of the same shape, got "
                           f"{' and '.join(str(tuple(b.shape)) for b in batches)}")


def mse_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image on the 0..255 scale, float64 [B]."""
    _check_rgb(pred, target)
    return (pred.double() - target.double()).square().flatten(1).mean(1)


def psnr_from_mse(mse, peak: float = 255.0) -> torch.Tensor:
    """10 log10(peak^2 / MSE), capped at PSNR_CAP_DB (MSE = 0 gives the cap, not infinity)."""
    return (10.0 * torch.log10(peak ** 2 / torch.as_tensor(mse, dtype=torch.float64))).clamp(max=PSNR_CAP_DB)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of 8-bit RGB images, float64 [B]."""
    return psnr_from_mse(mse_per_image(pred, target))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of 8-bit RGB images (torchmetrics' Gaussian-window SSIM), float64 [B]."""
    from torchmetrics.functional.image import structural_similarity_index_measure
    _check_rgb(pred, target)
    return structural_similarity_index_measure(pred.float(), target.float(), data_range=255.0,
                                               reduction="none").double()


def colourfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colourfulness of each RGB image on the 0..255 scale, float64 [B]."""
    _check_rgb(images)
    r, g, b = images.double().flatten(2).unbind(1)
    rg, yb = r - g, 0.5 * (r + g) - b
    sigma = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    return sigma + 0.3 * (rg.mean(1).square() + yb.mean(1).square()).sqrt()


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (uint8, or float in [0, 1]) [..., 3, H, W] -> CIE L*a*b* (D65), float64."""
    x = rgb.double() / 255.0 if rgb.dtype == torch.uint8 else rgb.double()
    linear = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,...jhw->...ihw", torch.tensor(SRGB_TO_XYZ, dtype=torch.float64, device=x.device), linear)
    xyz = xyz / torch.tensor(D65_WHITE, dtype=torch.float64, device=x.device).view(3, 1, 1)
    eps = (6.0 / 29.0) ** 3
    f = torch.where(xyz > eps, xyz.clamp(min=eps) ** (1.0 / 3.0), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor, threshold: float = NAZERI_THRESHOLD) -> torch.Tensor:
    """Per image, the share of pixels whose rounded Lab values are all within `threshold` of each
    channel's range of the truth (|dL| <= 2, |da|, |db| <= 4.4 by default), float64 [B]."""
    _check_rgb(pred, target)
    diff = (srgb_to_lab(pred).round() - srgb_to_lab(target).round()).abs()
    limits = torch.tensor(LAB_RANGES, dtype=torch.float64, device=diff.device).view(1, 3, 1, 1) * threshold
    return (diff <= limits + 1e-9).all(dim=1).flatten(1).double().mean(1)  # 1e-9: 2.2 * 2 is 4.4000000000000004


class _PrecomputedFeatures(nn.Module):
    """torchmetrics' feature extractor as a pass-through: the features are computed once, for accuracy and FD."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.double()


def feature_distance_metric(classifier: nn.Module):
    from torchmetrics.image.fid import FrechetInceptionDistance
    features = _PrecomputedFeatures()
    features.num_features = classifier.feature_dim
    return FrechetInceptionDistance(feature=features, normalize=False)


def inception_fid_metric(weights_path: str):
    """The standard Inception FID from a local weights file (needs torch-fidelity)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    try:
        return FrechetInceptionDistance(feature=2048, normalize=False, feature_extractor_weights_path=weights_path)
    except (ImportError, TypeError) as exc:
        raise MetricsError(f"Inception FID needs torch-fidelity and a recent torchmetrics: {exc}") from None


class MethodScores:
    """Running sums of every metric for one method over the batches of a test set."""

    def __init__(self, classifier: Optional[nn.Module] = None, inception_weights: Optional[str] = None, device=None):
        self.n = self.pixels = self.gray_truths = self.labelled = 0
        self.sums = dict.fromkeys(("psnr", "psnr_colour", "sq_err", "ssim", "colourfulness", "pixel_accuracy",
                                   "correct"), 0.0)
        self.classifier = classifier
        self.fd = feature_distance_metric(classifier).to(device) if classifier is not None else None
        self.fid = inception_fid_metric(inception_weights).to(device) if inception_weights else None

    @torch.no_grad()
    def update(self, pred: torch.Tensor, truth: torch.Tensor, labels: Optional[torch.Tensor] = None,
               with_ssim: bool = True, truth_features: Optional[torch.Tensor] = None) -> None:
        mse = mse_per_image(pred, truth)
        per_image = psnr_from_mse(mse)
        self.n += pred.shape[0]
        self.pixels += pred.numel()
        # a truth without colour: the gray copy is exact there, and its capped 100 dB would dominate a mean
        gray_truth = (truth.amax(1) == truth.amin(1)).flatten(1).all(1)
        self.gray_truths += int(gray_truth.sum())
        self.sums["psnr"] += per_image.sum().item()
        self.sums["psnr_colour"] += per_image[~gray_truth].sum().item()
        self.sums["sq_err"] += (mse * pred[0].numel()).sum().item()
        self.sums["ssim"] += ssim(pred, truth).sum().item() if with_ssim else 0.0
        self.sums["colourfulness"] += colourfulness(pred).sum().item()
        self.sums["pixel_accuracy"] += pixel_accuracy(pred, truth).sum().item()
        if self.classifier is not None:
            features = self.classifier.features(pred)  # one forward pass serves accuracy and FD
            if labels is not None:  # -1: a class the classifier does not know
                known = labels >= 0
                self.sums["correct"] += ((self.classifier.head(features).argmax(1) == labels) & known).sum().item()
                self.labelled += int(known.sum())
            self.fd.update(self.classifier.features(truth) if truth_features is None else truth_features, real=True)
            self.fd.update(features, real=False)
        if self.fid is not None:
            self.fid.update(truth, real=True)
            self.fid.update(pred, real=False)

    def result(self, truth_colourfulness: float) -> dict:
        n, colour = max(self.n, 1), self.sums["colourfulness"] / max(self.n, 1)
        gap = colour - truth_colourfulness
        out = {"images": self.n, "psnr_mean_db": self.sums["psnr"] / n,
               "psnr_colour_mean_db": self.sums["psnr_colour"] / max(self.n - self.gray_truths, 1),
               "gray_truths_left_out": self.gray_truths,
               # (the mean squared error through float32, as every stored report was computed)
               "psnr_dataset_db": psnr_from_mse(torch.tensor(self.sums["sq_err"] / max(self.pixels, 1))).item(),
               "ssim": self.sums["ssim"] / n, "colourfulness": colour, "colourfulness_gap": gap,
               "colourfulness_gap_pct": 100.0 * gap / truth_colourfulness if truth_colourfulness > 0 else None,
               "pixel_accuracy": self.sums["pixel_accuracy"] / n,
               "semantic_accuracy": self.sums["correct"] / self.labelled if self.labelled else None,
               "feature_fd": _finite(self.fd.compute().item()) if self.fd is not None and self.n > 1 else None}
        if self.fid is not None and self.n > 1:
            out["inception_fid"] = _finite(self.fid.compute().item())
        return out


def _finite(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


# A method maps the gray input in [-1, 1] [B, 1, H, W] to RGB, in [-1, 1] float or uint8; one with
# `takes_photos = True` is given the colour images, uint8 [B, 3, H, W], as the colorize command is.
Method = Callable[[torch.Tensor], torch.Tensor]


def gray_baseline(gray: torch.Tensor) -> torch.Tensor:
    """The no-model baseline: the grayscale input copied into R, G and B."""
    return gray.expand(-1, 3, -1, -1)


def command_outputs(images: torch.Tensor, G: nn.Module, render_size: int = colorize.DEFAULT_RENDER_SIZE,
                    fmt: str = "JPEG") -> list[bytes]:
    """The files the `colorize` command writes for these colour images (uint8 [B, 3, H, W])."""
    photos = [colorize.gray_from_pil(colorize.to_pil(image)) for image in images.cpu()]
    return colorize.colorized_files(photos, G, render_size, [fmt] * len(photos))


def decode_outputs(files: Sequence[bytes]) -> torch.Tensor:
    """Output files decoded with Pillow as a viewer would: uint8 RGB [B, 3, H, W] (one size)."""
    rgb = [np.array(Image.open(io.BytesIO(data)).convert("RGB")) for data in files]  # in memory: nothing to close
    return torch.stack([torch.from_numpy(image).permute(2, 0, 1) for image in rgb])


def colorize_method(G: nn.Module, render_size: int = colorize.DEFAULT_RENDER_SIZE, fmt: str = "JPEG") -> Method:
    """What the `colorize` command delivers for these images: the files it writes in `fmt`, decoded."""
    G.eval()

    def through_colorize(images: torch.Tensor) -> torch.Tensor:
        return decode_outputs(command_outputs(images, G, render_size, fmt)).to(images.device)
    through_colorize.takes_photos = True
    return through_colorize


def output_format_for(data: Optional[str]) -> str:
    """What colorize writes for a data source's images: PNG for torchvision's CIFAR-10, else JPEG."""
    return "PNG" if resolve_source(data) == "cifar10" else "JPEG"


def judge_labels(labels: Optional[torch.Tensor], classes: Sequence[str], classifier: Optional[nn.Module]
                 ) -> tuple[Optional[torch.Tensor], Optional[str]]:
    """(the data's labels as the classifier's class indices, matched by name; a one-line note, or
    None when nothing needed matching). A class the classifier does not know gets -1 and is left out
    of semantic accuracy; a label outside the data's own class list is a MetricsError."""
    judge, classes = list(getattr(classifier, "classes", None) or []), list(classes or [])
    if labels is not None and classes and bool((labels >= len(classes)).any()):
        raise MetricsError(f"the data has labels up to {int(labels.max())} but only {len(classes)} classes "
                           f"({', '.join(classes[:10])}): it is damaged; copy it again")
    if labels is None or classifier is None or not judge or not classes or classes == judge:
        return labels, None
    index = torch.tensor([judge.index(c) if c in judge else -1 for c in classes] + [-1])
    mapped = index[torch.where(labels >= 0, labels, len(classes))]  # -1 (no class) stays -1
    known, unknown = [c for c in classes if c in judge], [c for c in classes if c not in judge]
    note = f"note: the data's {len(classes)} classes are matched by name to the classifier's {len(judge)}: "
    if not known:
        return mapped, f"{note}none of them ({', '.join(classes)}) is among its classes; semantic accuracy is not " \
                       "scored"
    left_out = f"; not among its classes, so left out of it: {', '.join(unknown)}" if unknown else ""
    return mapped, note + f"semantic accuracy is scored on the {int((mapped >= 0).sum())} of {len(labels)} images " \
                          f"of {', '.join(known)}{left_out}"


@torch.no_grad()
def evaluate_methods(methods: Mapping[str, Method], images: torch.Tensor, labels: Optional[torch.Tensor] = None,
                     classifier: Optional[nn.Module] = None, batch_size: int = 500, device="cpu",
                     inception_weights: Optional[str] = None, progress: bool = False) -> dict:
    """{"ground_truth": {...}, "methods": {name: scores}} of each method's colorizations of uint8 `images`."""
    n_classes = len(getattr(classifier, "classes", None) or [])
    if labels is not None and n_classes and bool((labels >= n_classes).any()):
        raise MetricsError(f"labels up to {int(labels.max())} for a classifier of {n_classes} classes: the data's "
                           f"labels are damaged, or not matched to its classes (judge_labels)")
    device = torch.device(device)
    classifier = classifier.to(device).eval() if classifier is not None else None
    scores = {name: MethodScores(classifier, inception_weights, device) for name in methods}
    truth_colour, truth_correct, labelled = 0.0, 0, 0
    with_ssim = min(images.shape[-2:]) >= 11  # SSIM's 11x11 window does not fit smaller images
    bar = tqdm(total=len(images), unit="image", desc=f"scoring {len(methods)} method{'s' * (len(methods) != 1)}",
               disable=not progress)
    for start in range(0, len(images), batch_size):
        truth = images[start:start + batch_size].to(device)
        y = labels[start:start + batch_size].to(device) if labels is not None else None
        truth_colour += colourfulness(truth).sum().item()
        truth_features = classifier.features(truth) if classifier is not None else None
        if y is not None and classifier is not None:
            truth_correct += ((classifier.head(truth_features).argmax(1) == y) & (y >= 0)).sum().item()
            labelled += int((y >= 0).sum())
        for name, method in methods.items():
            out = method(truth) if getattr(method, "takes_photos", False) else method(to_model_range(truth)[0])
            out = out if out.dtype == torch.uint8 else to_uint8(out)
            if out.shape != truth.shape:
                raise MetricsError(f"method {name!r} returned {tuple(out.shape)} for {tuple(truth.shape)} images")
            scores[name].update(out, truth, y, with_ssim, truth_features)
        bar.update(len(truth))
    bar.close()
    truth_mean = truth_colour / len(images)
    return {"ground_truth": {"images": len(images), "colourfulness": truth_mean,
                             "semantic_accuracy": truth_correct / labelled if labelled else None},
            "methods": {name: s.result(truth_mean) | ({} if with_ssim else {"ssim": None})
                        for name, s in scores.items()}}


def evaluate_generator(G: nn.Module, data: Optional[str] = None, classifier: Optional[nn.Module] = None,
                       limit: Optional[int] = None, batch_size: int = 500, device="cpu", name: str = "generator",
                       inception_weights: Optional[str] = None, progress: bool = False) -> dict:
    """Generator `G` scored on the test split of `data` (a seeded random subset of `limit` images) next
    to the gray copy, raw and through `colorize`; the data's classes matched to the classifier's by name."""
    test = load_split(data, "test", limit, seed=0)
    labels, classes_note = judge_labels(test.labels, test.classes, classifier)
    fmt = output_format_for(data)
    methods = {GRAY_METHOD: gray_baseline, name: G.to(device).eval(),  # the network's own output, as trained
               f"{name} through colorize": colorize_method(G, fmt=fmt)}
    result = evaluate_methods(methods, test.images, labels, classifier, batch_size, device, inception_weights, progress)
    result["data"] = {"source": Path(test.source).name, "split": "test", "images": len(test), "limit": limit}
    if classes_note:
        result["data"]["classes_note"] = classes_note
    result["through_colorize"] = {"render_size": colorize.DEFAULT_RENDER_SIZE, "format": fmt,
                                  "path": "colorize.colorized_files, the colorize command's own"}
    return result
