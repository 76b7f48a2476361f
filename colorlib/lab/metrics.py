"""Numbers for colorizations: the paper shows only pictures and loss curves, so we measure.

Every metric compares 8-bit RGB images [B, 3, H, W] (uint8), the images a user would save: a
colorizer's [-1, 1] output is quantised first (`data.to_uint8`), the ground truth is the
dataset's pixels. All are computed batch by batch, on CPU or GPU, and summed over the test set.

- PSNR (dB) on RGB: `psnr_mean_db` is the mean of per-image PSNRs; `psnr_dataset_db` comes from
  the mean squared error over all pixels of all images. Identical images would score +infinity;
  we cap every PSNR at PSNR_CAP_DB = 100 dB so that averages stay finite. No two different 8-bit
  images of fewer than 155,000 values (about 227x227 RGB) reach the cap: a 32x32 RGB pair that
  differs by one level in one value scores 82.9 dB.
- SSIM (torchmetrics, Gaussian window 11, sigma 1.5, data range 255), mean over images.
- Colourfulness (Hasler & Suesstrunk 2003): sigma_rgyb + 0.3 * mu_rgyb of the opponent channels
  rg = R - G and yb = (R + G) / 2 - B on 0..255 values, per image, averaged; reported for the
  outputs and the ground truth, and the gap between them. A gray image scores exactly 0.
- Pixel accuracy (Nazeri, Ng & Ebrahimi 2018): the fraction of pixels whose CIE Lab values,
  rounded to integers, are all within 2% of each channel's range of the ground truth: |dL| <= 2
  (L in [0, 100]) and |da|, |db| <= 4.4 (a, b taken in [-110, 110], as in the authors' code).
- Semantic accuracy (Zhang, Isola & Efros 2016): top-1 accuracy of a fixed classifier
  (`colorlib.lab.classifier`) on the colorizations; compared with its accuracy on the true colours
  and on gray images (the "gray" method below).
- Classifier-feature FD: the Frechet distance between Gaussians fitted to the classifier's
  penultimate features (256-d) of the true and the colorized test images, computed by
  torchmetrics' FrechetInceptionDistance with that classifier as feature extractor. It is NOT
  comparable with Inception FID numbers elsewhere; it is meaningful only with many more images
  than feature dimensions (use the whole test set). With a local Inception weights file the
  standard FID is reported too (`--inception-weights`, needs torch-fidelity).

"Through colorize" scores are the `colorize` command's own output: the files it writes for the
test images (`colorize_method`, through `colorize.colorized_files`, the command's path), decoded.

Commands: `python -m colorlib evaluate --run-dir DIR` (writes DIR/metrics.json; an evaluation of
another scope, --limit or other --data, beside it: DIR/metrics-limit5.json, see `metrics_target`),
`python -m colorlib compare RUN_DIR... --out DIR` (a Markdown table and a bar chart),
`python -m colorlib train-classifier ...` (see classifier.py).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from ..variants.cifar_classifier import SHIPPED_CLASSIFIER

PSNR_CAP_DB = 100.0
NAZERI_THRESHOLD = 0.02  # 2% of each Lab channel's range
LAB_RANGES = (100.0, 220.0, 220.0)  # L in [0, 100]; a, b in [-110, 110] (Nazeri et al.'s code)
METRICS_FORMAT = "colorlib-metrics-v1"
DEFAULT_CLASSIFIER = SHIPPED_CLASSIFIER  # ships with the package
FD_LABEL = "classifier-feature FD (not comparable with Inception FID)"
GRAY_METHOD = "gray (copied to RGB)"


class MetricsError(RuntimeError):
    """Inputs the metrics cannot use; the message says what to do."""


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 3:
        raise MetricsError(f"expected two RGB batches [B, 3, H, W] of the same shape, got "
                           f"{tuple(pred.shape)} and {tuple(target.shape)}")


# ---------------------------------------------------------------- PSNR
def mse_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image on the 0..255 scale, float64 [B]."""
    _check_pair(pred, target)
    diff = pred.double() - target.double()
    return diff.square().flatten(1).mean(1)


def psnr_from_mse(mse: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    """10 log10(peak^2 / MSE), capped at PSNR_CAP_DB (so MSE = 0 gives the cap, not infinity)."""
    mse = torch.as_tensor(mse, dtype=torch.float64)
    psnr = 10.0 * torch.log10(peak ** 2 / mse)  # +inf where mse == 0
    return psnr.clamp(max=PSNR_CAP_DB)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of 8-bit RGB images, float64 [B]."""
    return psnr_from_mse(mse_per_image(pred, target))


# ---------------------------------------------------------------- SSIM
def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of 8-bit RGB images (torchmetrics' Gaussian-window SSIM), float [B]."""
    _check_pair(pred, target)
    try:
        from torchmetrics.functional.image import structural_similarity_index_measure
    except ImportError as exc:
        raise MetricsError("SSIM needs torchmetrics: pip install torchmetrics") from exc
    return structural_similarity_index_measure(pred.float(), target.float(), data_range=255.0,
                                               reduction="none").double()


# ---------------------------------------------------------------- colourfulness
def colourfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colourfulness of each RGB image on the 0..255 scale, float64 [B].

    M = sqrt(var(rg) + var(yb)) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2), rg = R - G,
    yb = (R + G) / 2 - B, with statistics over the pixels of one image (population variance).
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise MetricsError(f"expected RGB images [B, 3, H, W], got {tuple(images.shape)}")
    r, g, b = images.double().flatten(2).unbind(1)
    rg = r - g
    yb = 0.5 * (r + g) - b
    sigma = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    mu = (rg.mean(1).square() + yb.mean(1).square()).sqrt()
    return sigma + 0.3 * mu


# ---------------------------------------------------------------- Lab and pixel accuracy
# sRGB (IEC 61966-2-1) primaries to CIE XYZ, and the D65 reference white: the same constants
# as skimage.color.rgb2lab and OpenCV
SRGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
               (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))
D65_WHITE = (0.950456, 1.0, 1.088754)


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB -> CIE L*a*b* (D65). rgb: uint8 [..., 3, H, W] or float in [0, 1]; returns float64.

    Three steps: undo the sRGB transfer curve (linear light), a 3x3 matrix to XYZ, then the
    CIE cube-root compression relative to the white point. White gives L=100, a=b=0.
    """
    x = rgb.double() / 255.0 if rgb.dtype == torch.uint8 else rgb.double()
    linear = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    m = torch.tensor(SRGB_TO_XYZ, dtype=torch.float64, device=x.device)
    xyz = torch.einsum("ij,...jhw->...ihw", m, linear)
    xyz = xyz / torch.tensor(D65_WHITE, dtype=torch.float64, device=x.device).view(3, 1, 1)
    eps = (6.0 / 29.0) ** 3
    f = torch.where(xyz > eps, xyz.clamp(min=eps) ** (1.0 / 3.0), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor, threshold: float = NAZERI_THRESHOLD) -> torch.Tensor:
    """Per image, the fraction of pixels whose rounded Lab values are all within `threshold`
    of each channel's range of the ground truth (Nazeri et al. 2018), float64 [B]."""
    _check_pair(pred, target)
    diff = (srgb_to_lab(pred).round() - srgb_to_lab(target).round()).abs()
    limits = torch.tensor(LAB_RANGES, dtype=torch.float64, device=diff.device).view(1, 3, 1, 1) * threshold
    # a tiny tolerance: 2.2 * 2 is 4.4000000000000004 in floating point
    right = (diff <= limits + 1e-9).all(dim=1)
    return right.flatten(1).double().mean(1)


# ---------------------------------------------------------------- classifier-based metrics
class PrecomputedFeatures(nn.Module):
    """A pass-through "feature extractor" for torchmetrics: the classifier's penultimate features
    are computed once per image by `evaluate_methods` and shared by accuracy and FD."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.double()


def feature_distance_metric(classifier: nn.Module, **metric_options):
    from torchmetrics.image.fid import FrechetInceptionDistance
    return FrechetInceptionDistance(feature=PrecomputedFeatures(classifier.feature_dim), normalize=False,
                                    **metric_options)


def inception_fid_metric(weights_path: str):
    """The standard Inception FID, from a local weights file (torch-fidelity's pt_inception)."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        return FrechetInceptionDistance(feature=2048, normalize=False, feature_extractor_weights_path=weights_path)
    except (ModuleNotFoundError, ImportError) as exc:
        raise MetricsError(f"Inception FID needs torch-fidelity (pip install torch-fidelity): {exc}") from exc
    except TypeError as exc:  # torchmetrics releases before the weights-path argument
        raise MetricsError(f"Inception FID from a local weights file needs a newer torchmetrics "
                           f"(pip install -U torchmetrics): {exc}") from exc


# ---------------------------------------------------------------- accumulation
class MethodScores:
    """Running sums of every metric for one method over the batches of a test set."""

    def __init__(self, classifier: Optional[nn.Module] = None, inception_weights: Optional[str] = None,
                 device=None):
        self.n = 0
        self.pixels = 0
        self.sums = {k: 0.0 for k in ("psnr", "sq_err", "ssim", "colourfulness", "pixel_accuracy", "correct",
                                      "psnr_colour")}
        self.gray_truths = 0
        self.labelled = 0  # images whose class the classifier knows (label >= 0)
        self.classifier = classifier
        self.fd = feature_distance_metric(classifier).to(device) if classifier is not None else None
        self.fid = inception_fid_metric(inception_weights).to(device) if inception_weights else None

    @torch.no_grad()
    def update(self, pred: torch.Tensor, truth: torch.Tensor, labels: Optional[torch.Tensor] = None,
               with_ssim: bool = True, truth_features: Optional[torch.Tensor] = None) -> None:
        mse = mse_per_image(pred, truth)
        self.n += pred.shape[0]
        self.pixels += pred[0].numel() * pred.shape[0]
        per_image = psnr_from_mse(mse)
        self.sums["psnr"] += per_image.sum().item()
        # truths with no colour at all (R = G = B everywhere): the gray copy is exact there, and
        # its capped 100 dB would dominate a mean, so the headline per-image mean leaves them out
        gray_truth = (truth.amax(1) == truth.amin(1)).flatten(1).all(1)
        self.gray_truths += int(gray_truth.sum())
        self.sums["psnr_colour"] += per_image[~gray_truth].sum().item()
        self.sums["sq_err"] += (mse * pred[0].numel()).sum().item()
        if with_ssim:
            self.sums["ssim"] += ssim(pred, truth).sum().item()
        self.sums["colourfulness"] += colourfulness(pred).sum().item()
        self.sums["pixel_accuracy"] += pixel_accuracy(pred, truth).sum().item()
        if self.classifier is not None:
            features = self.classifier.features(pred)  # one forward pass serves accuracy and FD
            if labels is not None:  # a label of -1: a class the classifier does not know
                known = labels >= 0
                self.sums["correct"] += ((self.classifier.head(features).argmax(1) == labels) & known).sum().item()
                self.labelled += int(known.sum())
            if truth_features is None:
                truth_features = self.classifier.features(truth)
            self.fd.update(truth_features, real=True)
            self.fd.update(features, real=False)
        if self.fid is not None:
            self.fid.update(truth, real=True)
            self.fid.update(pred, real=False)

    def result(self, truth_colourfulness: float, with_labels: bool) -> dict:
        n = max(self.n, 1)
        dataset_mse = self.sums["sq_err"] / max(self.pixels, 1)
        out = {
            "images": self.n,
            "psnr_mean_db": self.sums["psnr"] / n,
            "psnr_colour_mean_db": self.sums["psnr_colour"] / max(self.n - self.gray_truths, 1),
            "gray_truths_left_out": self.gray_truths,
            "psnr_dataset_db": psnr_from_mse(torch.tensor(dataset_mse)).item(),
            "ssim": self.sums["ssim"] / n,
            "colourfulness": self.sums["colourfulness"] / n,
            "colourfulness_gap": self.sums["colourfulness"] / n - truth_colourfulness,
            "colourfulness_gap_pct": 100.0 * (self.sums["colourfulness"] / n - truth_colourfulness)
            / truth_colourfulness if truth_colourfulness > 0 else None,
            "pixel_accuracy": self.sums["pixel_accuracy"] / n,
            "semantic_accuracy": self.sums["correct"] / self.labelled
            if self.classifier is not None and with_labels and self.labelled else None,
            "feature_fd": _finite(self.fd.compute().item()) if self.fd is not None and self.n > 1 else None,
        }
        if self.fid is not None and self.n > 1:
            out["inception_fid"] = _finite(self.fid.compute().item())
        return out


def _finite(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


# A method maps the gray input in [-1, 1] [B, 1, H, W] to RGB, in [-1, 1] float or uint8. A method
# with `takes_photos = True` is given the colour images themselves, uint8 [B, 3, H, W], as the
# colorize command is given colour photos: it must drop their colour itself (colorize_method does,
# as the command does, with Pillow's "L").
Method = Callable[[torch.Tensor], torch.Tensor]


def gray_baseline(gray: torch.Tensor) -> torch.Tensor:
    """The no-model baseline: the grayscale input copied into R, G and B."""
    return gray.expand(-1, 3, -1, -1)


def generator_method(G: nn.Module) -> Method:
    """The network's own output, as trained (for the paper's RGB generator, luma included)."""
    G.eval()

    def colorize(gray: torch.Tensor) -> torch.Tensor:
        return G(gray)
    return colorize


def command_outputs(images: torch.Tensor, G: nn.Module, render_size: Optional[int] = None,
                    fmt: str = "JPEG", **how) -> list[bytes]:
    """The files the `colorize` command writes for these colour images (uint8 [B, 3, H, W], as
    Pillow decodes their files): each one read as the command reads a photo (`gray_from_pil`: its
    8-bit BT.601 luma, the colour dropped), then `colorize.colorized_files`, the command's own
    path, at its default render size, into `fmt` (the command writes JPEG for JPEG inputs, PNG
    otherwise); `how`: the dial (vividness=) or its knobs. On the CPU these are the command's bytes,
    byte for byte (tests/test_scoring_path.py)."""
    from ..inference import colorize
    render_size = colorize.DEFAULT_RENDER_SIZE if render_size is None else render_size
    photos = [colorize.gray_from_pil(colorize.to_pil(image)) for image in images.cpu()]
    return colorize.colorized_files(photos, G, render_size, [fmt] * len(photos), **how)


def decode_outputs(files: Sequence[bytes]) -> torch.Tensor:
    """Output files, decoded with Pillow as a viewer would: uint8 RGB [B, 3, H, W] (one size)."""
    import io

    import numpy as np
    from PIL import Image

    def decoded(data: bytes) -> torch.Tensor:
        with Image.open(io.BytesIO(data)) as img:
            return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
    return torch.stack([decoded(f) for f in files])


def colorize_method(G: nn.Module, render_size: Optional[int] = None, fmt: str = "JPEG") -> Method:
    """What the `colorize` command delivers: the files it writes for these images, decoded
    (`command_outputs`): the network's chroma on the input's exact 8-bit luma, worked at the
    command's render size (never above the image's own size), JPEG-encoded like its outputs for
    JPEG inputs (fmt="PNG": lossless, as for PNG inputs). Takes the colour images (`takes_photos`)."""
    G.eval()

    def colorize(images: torch.Tensor) -> torch.Tensor:
        return decode_outputs(command_outputs(images, G, render_size, fmt)).to(images.device)
    colorize.takes_photos = True
    return colorize


def output_format_for(data: Optional[str]) -> str:
    """The format colorize writes for the images of a data source: PNG for torchvision's CIFAR-10
    (arrays, no files), JPEG for colorlib's image folders and packs (CIFAR-10 as JPEG files)."""
    from ..runs.data import resolve_source
    return "PNG" if resolve_source(data) == "cifar10" else "JPEG"


def judge_labels(labels: Optional[torch.Tensor], classes: Sequence[str], classifier: Optional[nn.Module]
                 ) -> tuple[Optional[torch.Tensor], Optional[str]]:
    """(the data's labels as the classifier's class indices, matched by name; a one-line note, or
    None when nothing needed matching). A folder's labels count its own classes (only cat and dog:
    0 and 1), the classifier's are CIFAR-10's (cat 3, dog 5); a class it does not know gets -1 and
    is left out of semantic accuracy. Without names on either side, the labels are kept as they are."""
    judge = list(getattr(classifier, "classes", None) or [])
    classes = list(classes or [])
    if labels is None or classifier is None or not judge or not classes or classes == judge:
        return labels, None
    index = torch.tensor([judge.index(c) if c in judge else -1 for c in classes] + [-1])
    mapped = index[torch.where(labels >= 0, labels, len(classes))]  # -1 (no class) stays -1
    known = [c for c in classes if c in judge]
    unknown = [c for c in classes if c not in judge]
    head = f"note: the data's {len(classes)} classes are matched by name to the classifier's {len(judge)}"
    if not known:
        return mapped, (f"{head}: none of them ({', '.join(classes)}) is among its classes; semantic accuracy "
                        f"is not scored")
    scored = int((mapped >= 0).sum())
    tail = f"; not among its classes, so left out of it: {', '.join(unknown)}" if unknown else ""
    return mapped, (f"{head}: semantic accuracy is scored on the {scored} of {len(labels)} images of "
                    f"{', '.join(known)}{tail}")


@torch.no_grad()
def evaluate_methods(methods: Mapping[str, Method], images: torch.Tensor, labels: Optional[torch.Tensor] = None,
                     classifier: Optional[nn.Module] = None, batch_size: int = 500, device="cpu",
                     inception_weights: Optional[str] = None, progress: bool = False) -> dict:
    """Score each method's colorizations of `images` (uint8 [N, 3, H, W]) against them.

    Returns {"ground_truth": {...}, "methods": {name: {...}}}.
    """
    from ..paper.data import to_model_range, to_uint8
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise MetricsError(f"expected uint8 RGB images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise MetricsError("no images to evaluate")
    with_labels = labels is not None and bool((labels >= 0).any())  # -1: a class the classifier does not know
    device = torch.device(device)
    if classifier is not None:
        classifier = classifier.to(device).eval()
    scores = {name: MethodScores(classifier, inception_weights, device) for name in methods}
    truth_colourfulness, truth_correct, labelled = 0.0, 0, 0
    bar = _progress_bar(images.shape[0], len(methods)) if progress else None
    # SSIM's 11x11 window does not fit smaller images: skip it there rather than fail
    with_ssim = min(images.shape[-2:]) >= 11
    for start in range(0, images.shape[0], batch_size):
        truth = images[start:start + batch_size].to(device)
        y = labels[start:start + batch_size].to(device) if with_labels else None
        gray, _ = to_model_range(truth)
        truth_colourfulness += colourfulness(truth).sum().item()
        truth_features = classifier.features(truth) if classifier is not None else None
        if classifier is not None and with_labels:
            truth_correct += ((classifier.head(truth_features).argmax(1) == y) & (y >= 0)).sum().item()
            labelled += int((y >= 0).sum())
        for name, method in methods.items():
            out = method(truth) if getattr(method, "takes_photos", False) else method(gray)
            out = out if out.dtype == torch.uint8 else to_uint8(out)
            if out.shape != truth.shape:
                raise MetricsError(f"method {name!r} returned {tuple(out.shape)} for {tuple(truth.shape)} images")
            scores[name].update(out, truth, y, with_ssim=with_ssim, truth_features=truth_features)
        if bar is not None:
            bar.update(truth.shape[0])
    if bar is not None:
        bar.close()
    n = images.shape[0]
    truth_mean = truth_colourfulness / n
    return {
        "ground_truth": {"images": n, "colourfulness": truth_mean,
                         "semantic_accuracy": truth_correct / labelled if classifier is not None and with_labels
                         else None},
        "methods": {name: s.result(truth_mean, with_labels) | ({} if with_ssim else {"ssim": None})
                    for name, s in scores.items()},
    }


def _progress_bar(images: int, methods: int):
    """A bar over the test images (tqdm: a terminal or a notebook widget, like the trainer's)."""
    from tqdm.auto import tqdm
    return tqdm(total=images, unit="image", desc=f"scoring {methods} method{'s' if methods != 1 else ''}",
                dynamic_ncols=True)


def evaluate_generator(G: nn.Module, data: Optional[str] = None, classifier: Optional[nn.Module] = None,
                       limit: Optional[int] = None, batch_size: int = 500, device="cpu", name: str = "generator",
                       include_gray: bool = True, inception_weights: Optional[str] = None,
                       progress: bool = False, through_colorize: bool = False) -> dict:
    """Run generator `G` over the test split of `data` (first `limit` images in a seeded random
    subset) and score it, next to the gray baseline; see `evaluate_methods`. With through_colorize,
    also what the `colorize` command writes for those images (`colorize_method`), as "<name>
    through colorize". The data's classes are matched to the classifier's by name (`judge_labels`);
    result["data"]["classes_note"] says how, where they differ."""
    from ..runs.data import load_split
    from ..inference.colorize import DEFAULT_RENDER_SIZE
    test = load_split(data, "test", limit, seed=0)
    labels, classes_note = judge_labels(test.labels, test.classes, classifier)
    methods: dict[str, Method] = {GRAY_METHOD: gray_baseline} if include_gray else {}
    G = G.to(device)
    methods[name] = generator_method(G)
    fmt = output_format_for(data)
    if through_colorize:
        methods[f"{name} through colorize"] = colorize_method(G, DEFAULT_RENDER_SIZE, fmt)
    result = evaluate_methods(methods, test.images, labels, classifier, batch_size, device,
                              inception_weights, progress)
    result["data"] = {"source": Path(test.source).name, "split": "test", "images": len(test), "limit": limit}
    if classes_note:
        result["data"]["classes_note"] = classes_note
    if through_colorize:
        result["through_colorize"] = {"render_size": DEFAULT_RENDER_SIZE, "format": fmt,
                                      "path": "colorize.colorized_files, the colorize command's own"}
    return result


# ---------------------------------------------------------------- evaluate command
def evaluate_run(run_dir, classifier_path=None, data: Optional[str] = None, limit: Optional[int] = None,
                 device: str = "auto", batch_size: int = 500, inception_weights: Optional[str] = None,
                 progress: bool = True, log=print, generator=None, name: Optional[str] = None) -> dict:
    """Evaluate a run directory's generator on the test split; writes RUN/metrics.json, or beside
    it when it holds an evaluation of another scope (see `metrics_target`).

    Two rows besides the gray copy: the network's raw output ("<run>") and what `colorize` delivers
    ("<run> through colorize": its chroma on the input's luma). `generator`: score this generator
    file instead of the run's own checkpoint (a run shipped without checkpoints, such as
    figures/paper/run, with the generator.pt made from it). `name`: the rows' name (default: the
    run directory's). The returned report has "written": the file it went to (not in the file)."""
    from ..runs import rundir
    from ..inference.checkpoints import load_generator
    from ..runs.device import pick_device

    run_dir = Path(run_dir)
    dev = pick_device(device)
    G, cfg = load_generator(generator or run_dir, dev)
    clf, clf_info = _classifier_for_evaluation(classifier_path, dev, log)
    started = time.time()
    name = name or run_dir.name
    result = evaluate_generator(G, data or cfg.data, clf, limit, batch_size, dev, name=name,
                                inception_weights=inception_weights, progress=progress, through_colorize=True)
    if result["data"].get("classes_note"):
        log(result["data"]["classes_note"])
    info = rundir.read_run_info(run_dir) if (run_dir / "run.json").exists() else {}
    config = cfg.to_dict()
    if config.get("data"):  # the data's name, not a local path: metrics files get shared
        config["data"] = Path(config["data"]).name
    report = {
        "format": METRICS_FORMAT,
        "run": {"name": run_dir.name, "preset": cfg.preset, "epochs_done": info.get("epochs_done"),
                "config": config},
        "method": name,
        "generator": Path(generator).name if generator else None,
        "classifier": clf_info,
        "feature_fd_label": FD_LABEL,
        "psnr_cap_db": PSNR_CAP_DB,
        "pixel_accuracy_threshold": NAZERI_THRESHOLD,
        "device": str(dev),
        "seconds": round(time.time() - started, 1),
        "scope": evaluation_scope(limit, data, cfg.data),
        **result,
    }
    return {**report, "written": str(write_metrics(run_dir, report, log))}


def shown_evaluation(run_dir, data: Optional[str] = None, limit: Optional[int] = None, device: str = "auto",
                     log=print) -> tuple[dict, str]:
    """The evaluation a notebook shows, and a line saying where it comes from: the run's own file of
    this scope (metrics.json, or beside it, see `metrics_target`) when it scored the run as it is now
    (the same epochs done); for a run shipped with its scores but not its generator (figures/paper/run),
    the scores it ships; else a fresh `evaluate_run` of its generator.pt (or last.pt), with a progress
    bar over the test images."""
    from ..runs import rundir
    run_dir = Path(run_dir)
    scope = evaluation_scope(limit, data, rundir.read_config(run_dir).data)
    done = rundir.read_run_info(run_dir).get("epochs_done") if (run_dir / "run.json").exists() else None
    for path in dict.fromkeys((run_dir / "metrics.json", run_dir / scoped_name(scope))):
        held = _metrics_or_none(path)
        if held and report_scope(held) == scope and held.get("run", {}).get("epochs_done") == done:
            return held, (f"scored before, on {_images(held)}, on this run as it is now: {path.name} (delete it "
                          f"to score again)")
    shipped = _metrics_or_none(run_dir / "metrics.json")
    if shipped and not any((run_dir / "checkpoints" / f).exists() for f in ("generator.pt", "last.pt")):
        return shipped, (f"the run ships its scores (on {_images(shipped)}) but not its generator: shown as "
                         f"they are, limit={limit} does not apply")
    report = evaluate_run(run_dir, data=data, limit=limit, device=device, batch_size=100, log=log)
    return report, f"scored now, on {_images(report)}: written to {Path(report['written']).name}"


def _images(report: dict) -> str:
    """Which test images a report scored: "1,000 test images (a seeded random subset, limit=1000)"."""
    data = report.get("data", {})
    subset = f" (a seeded random subset, limit={data['limit']})" if data.get("limit") is not None else ""
    return f"{data.get('images', 0):,} test images{subset}"


def _metrics_or_none(path: Path) -> Optional[dict]:
    from ..runs import rundir
    try:
        report = rundir.read_json(path) if path.is_file() else None
    except (rundir.RunDirError, ValueError, OSError):
        return None
    return report if isinstance(report, dict) and report.get("format") == METRICS_FORMAT else None


def versus_gray(report: dict, paper_epochs: int = 100) -> str:
    """How a run's evaluation compares with the gray copy, in a few sentences computed from its
    numbers: above or below it, by how many dB (dataset PSNR, through `colorize`), and why."""
    name, methods, run = report["method"], report["methods"], report["run"]
    gray, ours = methods.get(GRAY_METHOD), methods.get(f"{name} through colorize") or methods.get(name)
    if gray is None or ours is None:
        return f"The report of `{name}` has no gray copy to compare with."
    delta = ours["psnr_dataset_db"] - gray["psnr_dataset_db"]
    side = "level with" if abs(delta) < 0.005 else f"{abs(delta):.2f} dB {'above' if delta > 0 else 'below'}"
    how = "through `colorize`" if f"{name} through colorize" in methods else "(the network's raw output)"
    head = (f"**`{name}`** (preset `{run['preset']}`, {run.get('epochs_done')} epochs) scores "
            f"{ours['psnr_dataset_db']:.2f} dB {how} on these {report['data']['images']:,} test "
            f"images: {side} the gray copy's {gray['psnr_dataset_db']:.2f} dB.")
    raw = methods.get(name)
    raw_text = (f" The network's raw output scores {raw['psnr_dataset_db']:.2f} dB: it must also reproduce the "
                f"luminance, which `colorize` takes from the input." if raw is not None and raw is not ours else "")
    return " ".join((head, _why_versus_gray(delta, ours, report, paper_epochs))) + raw_text


def _why_versus_gray(delta: float, ours: dict, report: dict, paper_epochs: int) -> str:
    epochs, truth = report["run"].get("epochs_done"), report["ground_truth"]["colourfulness"]
    colour = f"colourfulness {ours['colourfulness']:.1f} against the truth's {truth:.1f}"
    short = epochs is not None and epochs < paper_epochs
    if ours["colourfulness"] < 0.2 * truth:
        young = "; a run this short has not learned colour yet" if short else ""
        return (f"Its colours are nearly gray ({colour}): with the input's exact luma and almost no chroma it "
                f"scores about what the gray copy does{young}.")
    if delta > 0:
        return (f"Above is not yet good colour ({colour}): PSNR averages squared errors, so a cautious guess "
                f"near each pixel's mean colour already beats no colour by a little (the mean-colour effect), "
                f"while a bold colour that is wrong costs more than it gains where it is right.")
    if short:
        return (f"A run of {epochs} epochs has not learned which colour goes where yet ({colour}): a wrong "
                f"colour costs more PSNR than no colour at all (a hue on the wrong side of gray doubles the error), "
                f"so leaving the colour out is hard to beat early on.")
    return (f"After this many epochs its colours are wrong more often than right ({colour}): see 05_results for "
            f"the epochs in which D won outright, where colours collapse.")


def _classifier_for_evaluation(classifier_path, device, log):
    """(classifier or None, what the report says of it): the one named, else the shipped one."""
    from ..variants.cifar_classifier import load_classifier
    clf_path = Path(classifier_path) if classifier_path else DEFAULT_CLASSIFIER
    if clf_path.exists() or classifier_path:
        clf = load_classifier(clf_path, device)
        return clf, {"file": clf_path.name, "test_accuracy_at_training": clf.test_accuracy}
    log(f"note: no classifier at {clf_path}; semantic accuracy and feature FD are skipped "
        f"(train one with `python -m colorlib train-classifier --out {clf_path}`)")
    return None, None


# ---------------------------------------------------------------- where an evaluation is written
FULL_SCOPE = "full"


def evaluation_scope(limit: Optional[int], data: Optional[str], run_data: Optional[str]) -> str:
    """What an evaluation covers, as a name: "full" (every test image of the run's own data),
    else "limit5", "data-catdog" or "data-catdog-limit5". Data is the run's own when it has the
    same folder or file name (as metrics files record it)."""
    from ..runs.data import resolve_source
    parts = []
    own = Path(resolve_source(run_data)).name
    if data is not None and Path(resolve_source(data)).name != own:
        parts.append("data-" + "".join(c if c.isalnum() or c in "._" else "_" for c in Path(resolve_source(data)).name))
    if limit is not None:
        parts.append(f"limit{limit}")
    return "-".join(parts) or FULL_SCOPE


def report_scope(report: dict) -> Optional[str]:
    """The scope of a metrics report: its own "scope", or for a file written before scopes were
    recorded, one worked out from its limit and data (None when it cannot be told)."""
    if "scope" in report:
        return report["scope"]
    try:
        source = report["data"]["source"]
        source = "cifar10" if source.startswith("CIFAR-10 (torchvision") else source
        return evaluation_scope(report["data"]["limit"], source, report["run"]["config"]["data"])
    except (KeyError, TypeError, AttributeError):
        return None


def scoped_name(scope: Optional[str]) -> str:
    return "metrics.json" if scope == FULL_SCOPE else f"metrics-{scope or 'unknown'}.json"


def metrics_target(run_dir: Path, scope: str) -> tuple[Path, Optional[Path], Optional[str]]:
    """(where an evaluation of `scope` goes, where the file now in metrics.json must be moved first
    or None, a one-line note or None). metrics.json keeps its evaluation unless the new one has the
    same scope (a re-run), or is the full one: then the evaluation it held is moved beside it, under
    its own scope's name. Any other evaluation goes beside it (metrics-limit5.json). Nothing is lost."""
    from ..runs import rundir
    main = run_dir / "metrics.json"
    if not main.exists():
        return main, None, None
    try:
        held = report_scope(rundir.read_json(main))
    except (rundir.RunDirError, ValueError, OSError):
        held = None
    if held == scope:
        return main, None, None
    if scope == FULL_SCOPE:
        aside = run_dir / scoped_name(held)
        return main, aside, (f"note: metrics.json held {_describe(held)}; it is kept as {aside.name}, and "
                             f"metrics.json now holds the full one")
    beside = run_dir / scoped_name(scope)
    return beside, None, (f"note: metrics.json holds {_describe(held)}, which is kept; this one ({scope}) "
                          f"is written beside it, to {beside.name}")


def _describe(scope: Optional[str]) -> str:
    if scope == FULL_SCOPE:
        return "the full evaluation"
    return "an evaluation of unknown scope" if scope is None else f"an evaluation of scope {scope}"


def write_metrics(run_dir: Path, report: dict, log=print) -> Path:
    """Write an evaluation report where `metrics_target` says, saying so when it is not plain."""
    from ..runs import rundir
    target, aside, note = metrics_target(run_dir, report["scope"])
    if aside is not None:
        rundir.atomic_write_bytes(aside, (run_dir / "metrics.json").read_bytes())
    rundir.write_json(target, report)
    if note:
        log(note)
    return target


# ---------------------------------------------------------------- compare command
TABLE_COLUMNS = (  # key, header, format: fidelity first over the whole set, then per image without the cap
    ("psnr_dataset_db", "PSNR dataset (dB)", "{:.2f}"),
    ("psnr_colour_mean_db", "PSNR per image* (dB)", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("colourfulness", "Colourfulness", "{:.1f}"),
    ("colourfulness_gap_pct", "Colourfulness gap (%)", "{:+.1f}"),
    ("pixel_accuracy", "Pixel acc. (Nazeri 2%)", "{:.2%}"),
    ("semantic_accuracy", "Semantic acc.", "{:.2%}"),
    ("feature_fd", "Classifier-feature FD", "{:.2f}"),
)


def _fmt(value, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def read_metrics(run_dir) -> dict:
    from ..runs import rundir
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise rundir.RunDirError(f"{path} does not exist: run `python -m colorlib evaluate --run-dir {run_dir}` first")
    report = rundir.read_json(path)
    if report.get("format") != METRICS_FORMAT:
        raise rundir.RunDirError(f"{path} is not a colorlib metrics file (format {report.get('format')!r})")
    return report


def comparison_rows(reports: Sequence[dict]) -> tuple[list[tuple[str, dict]], dict]:
    """(method name, metrics) rows: the gray baseline once, then each run's generator (its raw
    output, and what `colorize` delivers where it was scored); plus the ground truth."""
    first = reports[0]
    truth = first["ground_truth"]
    rows = []
    if GRAY_METHOD in first["methods"]:
        rows.append((GRAY_METHOD, first["methods"][GRAY_METHOD]))
    for rep in reports:
        label = rep.get("label", rep["method"])
        for name, scores in rep["methods"].items():
            if name != GRAY_METHOD:  # "<run>" and "<run> through colorize", named by the report's label
                rows.append((label + name[len(rep["method"]):] if name.startswith(rep["method"]) else name, scores))
    return rows, truth


def markdown_table(reports: Sequence[dict]) -> str:
    rows, truth = comparison_rows(reports)
    data = reports[0]["data"]
    lines = [f"Test split of `{data['source']}`, {data['images']} images. "
             f"Ground truth: colourfulness {_fmt(truth['colourfulness'], '{:.1f}')}, classifier "
             f"accuracy {_fmt(truth['semantic_accuracy'], '{:.2%}')}. FD is a {FD_LABEL}. "
             f"*Per-image PSNR leaves out {_left_out(rows)}: a copy of the gray input "
             f"matches them exactly, and the capped PSNR would reward that. \"through colorize\": the "
             f"files the `colorize` command writes for these images (the network's chroma on the input's "
             f"exact luma, at its default render size), scored.", ""]
    lines.append("| Method | " + " | ".join(h for _, h, _ in TABLE_COLUMNS) + " |")
    lines.append("|---|" + "---:|" * len(TABLE_COLUMNS))
    lines.append("| ground truth | " + " | ".join(
        {"colourfulness": _fmt(truth["colourfulness"], "{:.1f}"),
         "semantic_accuracy": _fmt(truth["semantic_accuracy"], "{:.2%}"),
         "psnr_colour_mean_db": "-", "psnr_dataset_db": "-", "ssim": "1", "colourfulness_gap_pct": "0",
         "pixel_accuracy": "100%", "feature_fd": "0"}[k] for k, _, _ in TABLE_COLUMNS) + " |")
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k), f) for k, _, f in TABLE_COLUMNS) + " |")
    runs = [f"- {rep.get('label', rep['method'])}: preset {rep['run']['preset']}, {rep['run']['epochs_done']} epochs, "
            f"content loss {rep['run']['config']['content_loss']}, lambda {rep['run']['config']['lam']}, "
            f"adversarial weight {rep['run']['config']['adv_weight']}, norm {rep['run']['config']['norm']}"
            for rep in reports]
    return "\n".join(lines + ["", "Runs:"] + runs) + "\n"


def _left_out(rows: Sequence[tuple[str, dict]]) -> str:
    counts = {m.get("gray_truths_left_out") for _, m in rows} - {None}
    return (f"the {counts.pop()} test images whose truth is exactly gray" if len(counts) == 1
            else "the test images whose truth is exactly gray")


def distinct_colours(n: int) -> list[tuple[tuple, Optional[str]]]:
    """n (colour, hatch) pairs, all different: the 20 colours of tab20 (its ten dark shades first,
    then the ten light ones, so neighbours differ in hue), then again with hatches."""
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors[0::2] + colormaps["tab20"].colors[1::2]
    hatches = (None, "//", "..", "xx", "\\\\", "oo")
    return [(palette[i % 20], hatches[(i // 20) % len(hatches)]) for i in range(n)]


METRIC_PANELS = (("psnr_dataset_db", "PSNR dataset (dB)"), ("psnr_colour_mean_db", "PSNR per image* (dB)"),
                 ("colourfulness", "Colourfulness"), ("pixel_accuracy", "Pixel accuracy"),
                 ("semantic_accuracy", "Semantic accuracy"), ("feature_fd", "Classifier-feature FD"))


def comparison_chart(rows: Sequence[tuple[str, dict]], truth: dict, title: str = "",
                     spreads: Optional[Mapping[str, dict]] = None):
    """Horizontal bar charts of the metrics, one bar per method (names read level, on the left), each
    method in its own colour in every panel, its value written at the bar's end; the ground truth's
    value dashed, the gray copy's dotted. With `spreads` ({method: {metric key: std}}) an error bar of
    one standard deviation over seeds."""
    from matplotlib.figure import Figure

    n = len(rows)
    fig = Figure(figsize=(14, 2 * (1.1 + 0.3 * n)), dpi=100, layout="constrained")
    axes = fig.subplots(2, 3, sharey=True)
    styles = distinct_colours(n)
    for ax, (key, label) in zip(axes.ravel(), METRIC_PANELS):
        _metric_panel(ax, key, label, rows, truth, spreads or {}, styles)
    for ax in axes[:, 0]:
        ax.set_yticks(range(n), [name for name, _ in rows], fontsize=10)
    axes[0, 0].set_ylim(n - 0.5, -0.5)  # the first row on top (the y axis is shared)
    lines = ("dotted: the gray copy's value" if rows and rows[0][0] == GRAY_METHOD else "") + \
        ("; dashed: the ground truth's" if any(truth.get(k) is not None for k, _ in METRIC_PANELS) else "")
    fig.suptitle("\n".join(t for t in (title, lines.strip("; ")) if t), fontsize=12)
    return fig


CHART_FORMATS = {key: fmt for key, _, fmt in TABLE_COLUMNS}


def _metric_panel(ax, key: str, label: str, rows, truth: dict, spreads: Mapping[str, dict], styles) -> None:
    """One metric of `comparison_chart`: a horizontal bar per row, its value at its end."""
    values = [m.get(key) if m.get(key) is not None else float("nan") for _, m in rows]
    ends = []
    for i, ((name, _), value, (colour, hatch)) in enumerate(zip(rows, values, styles)):
        err = spreads.get(name, {}).get(key)
        ax.barh(i, value, color=colour, hatch=hatch, edgecolor="black" if hatch else colour, linewidth=0.5,
                xerr=err, error_kw={"elinewidth": 1, "capsize": 2}, height=0.75)
        if math.isfinite(value):
            ends.append(value + (err or 0))
            ax.text(value + (err or 0), i, " " + CHART_FORMATS.get(key, "{:.3g}").format(value), va="center",
                    fontsize=9, bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0, "pad": 0.5})
    reference = []
    if rows and rows[0][0] == GRAY_METHOD and math.isfinite(values[0]):
        ax.axvline(values[0], color="gray", ls=":", lw=1)
    if truth.get(key) is not None:  # where the ground truth has a value, it is the target
        ax.axvline(truth[key], color="black", ls="--", lw=1)
        reference.append(f"truth {CHART_FORMATS.get(key, '{:.3g}').format(truth[key])}")
        ends.append(truth[key])
    ax.set_xlim(0, 1.25 * max(ends) if ends else 1)
    ax.set_title(label + (f", {reference[0]}" if reference else ""), fontsize=11)
    ax.tick_params(axis="x", labelsize=9)
    ax.grid(axis="x", alpha=0.3)


def comparison_figure(reports: Sequence[dict]):
    rows, truth = comparison_rows(reports)
    data = reports[0]["data"]
    return comparison_chart(rows, truth, f"Colorization metrics on {data['images']} test images of {data['source']}")


def compare_runs(run_dirs: Sequence[str], out) -> list[Path]:
    """Write OUT/metrics.md and OUT/metrics.png comparing the runs' metrics.json files."""
    from ..runs.rundir import RunDirError, atomic_write_text
    reports = [read_metrics(d) for d in run_dirs]
    labels = [Path(d).name for d in run_dirs]
    for d, rep in zip(run_dirs, reports):  # rows are named by folder, by path where names repeat
        rep["label"] = Path(d).name if labels.count(Path(d).name) == 1 else str(d)
    first = reports[0]["data"]
    for d, rep in zip(run_dirs, reports):
        if (rep["data"]["source"], rep["data"]["images"]) != (first["source"], first["images"]):
            raise RunDirError(f"{d} was evaluated on {rep['data']['images']} images of {rep['data']['source']}, "
                              f"the first run on {first['images']} of {first['source']}: evaluate every run "
                              f"on the same data and --limit before comparing")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.md", markdown_table(reports))
    comparison_figure(reports).savefig(out / "metrics.png", dpi=120)
    return [out / "metrics.md", out / "metrics.png"]


def summary_lines(report: dict) -> list[str]:
    """An evaluation report (see `evaluate_run`) in a few lines: the ground truth, then each method."""
    truth = report["ground_truth"]
    lines = [f"{report['data']['images']} test images; ground truth colourfulness {truth['colourfulness']:.1f}, "
             f"classifier accuracy {_fmt(truth['semantic_accuracy'], '{:.2%}')}"]
    for name, m in report["methods"].items():
        lines.append(f"  {name}: " + ", ".join(f"{h} {_fmt(m.get(k), f)}" for k, h, f in TABLE_COLUMNS))
    return lines
