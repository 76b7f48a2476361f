"""A fixed CIFAR-10 classifier: the judge behind "semantic accuracy" and the feature distance.

Zhang et al. (2016) score a colorizer by asking a classifier trained on real colour photos to
recognise its colorizations: if the colours are plausible, accuracy stays close to what the
classifier gets on the true colours; if they are grey or wrong, it falls towards its accuracy on
grayscale. That needs one classifier, trained once and then never changed, so every method is
judged by the same network. This module trains it (`python -m colorlib train-classifier`) and
loads it (`load_classifier`, from colorlib.variants.cifar_classifier, where the network lives).

The network is a small VGG/ResNet-9-style CNN in the spirit of the fast CIFAR-10 training
recipes (DAWNBench ResNet-9, airbench): a stem convolution, then three groups of
conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU halving the resolution 32 -> 16 -> 8 -> 4,
a global max-pool and a linear layer. With widths 64/256/256 it has about 2 M parameters
(a 4 MB half-precision checkpoint) and passes 90% top-1 on the CIFAR-10 test set in well under
a minute on one modern GPU.

Training recipe (standard, nothing tuned on the test set): the whole dataset on the device as
uint8; random crops (reflect-padded by 4) and horizontal flips drawn per image, batched on the
device; SGD with Nesterov momentum 0.9, weight decay 5e-4, batch 512; a one-cycle learning rate
(linear up to 0.4 over the first quarter, linear down to ~0); label smoothing 0.2; bf16
autocast and channels_last on CUDA.

Interface: the module takes RGB batches [B, 3, H, W] either as uint8 in [0, 255] or as float
in [0, 1], and normalises them itself, so callers never need to know its statistics. A
colorizer's [-1, 1] output goes in as `(x + 1) / 2`.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..runs.rundir import atomic_save
from ..variants.cifar_classifier import CLASSIFIER_FORMAT, DEFAULT_WIDTHS, CifarClassifier, _half_state_dict


class ClassifierDiverged(RuntimeError):
    """The classifier's training loss became NaN or infinite; nothing was saved."""


# ---------------------------------------------------------------- augmentation
def random_crop_flip(images: torch.Tensor, pad: int = 4, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per-image random translation (reflect padding) and horizontal flip, as one batched gather.

    images: uint8 or float [B, C, H, W] -> float [B, C, H, W] in [0, 1].
    """
    x = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
    b, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    flip = torch.rand(b, generator=generator).to(dev) < 0.5
    rows = dy[:, None] + torch.arange(h, device=dev)  # [B, H]
    cols = dx[:, None] + torch.arange(w, device=dev)  # [B, W]
    # flipping is reading the chosen columns right to left
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000, device=None) -> torch.Tensor:
    """Predicted class indices (int64, on CPU) for uint8 / [0, 1] float images, batched."""
    device = device or next(model.parameters()).device
    cuda = torch.device(device).type == "cuda"
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device, non_blocking=True)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext():
            out.append(model(x).argmax(1).cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    was_training = model.training
    model.eval()
    pred = predict(model, images, batch_size)
    model.train(was_training)
    return (pred == labels.cpu()).float().mean().item()


# ---------------------------------------------------------------- training
def train_classifier(data: Optional[str], out, epochs: int = 20, batch_size: int = 512, lr: float = 0.4,
                     widths: Sequence[int] = DEFAULT_WIDTHS, train_size: Optional[int] = None,
                     test_size: Optional[int] = None, device: str = "auto", seed: int = 0,
                     log=print) -> dict:
    """Train the classifier on the `train` split, report test accuracy per epoch, save to `out`."""
    from ..runs.config import ConfigError
    from ..runs.device import pick_device

    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    dev = pick_device(device)
    torch.manual_seed(seed)
    train, test = _labelled_splits(data, train_size, test_size, seed, dev, log)
    images, labels = train.images.to(dev), train.labels.to(dev)
    test_images, test_labels = test.images.to(dev), test.labels.to(dev)
    model = _classifier_on(dev, widths, len(train.classes))
    steps_per_epoch = max(1, len(train) // batch_size)  # drop the ragged last batch
    opt, sched = _one_cycle_sgd(model, lr, epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2)
    gen = torch.Generator().manual_seed(seed)
    bs = min(batch_size, len(train))
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: widths {list(model.widths)}, {n_params / 1e6:.2f} M parameters; "
        f"{epochs} epochs x {steps_per_epoch} steps of {bs}")

    t_train = time.time()
    for epoch in range(1, epochs + 1):
        mean_loss = _train_epoch(model, opt, sched, loss_fn, images, labels, bs, steps_per_epoch, gen)
        if not math.isfinite(mean_loss):
            raise ClassifierDiverged(f"classifier training diverged at epoch {epoch} (loss {mean_loss}); "
                                     f"try a smaller --lr")
        acc = accuracy(model, test_images, test_labels)
        log(f"epoch {epoch:3d}/{epochs}  loss {mean_loss:.4f}  test top-1 {100 * acc:.2f}%  "
            f"({time.time() - t_train:.1f}s)")

    # measure the weights exactly as they will be saved (float16), so the number is the file's
    state = _half_state_dict(model)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    final_acc = accuracy(model, test_images, test_labels)
    ckpt = _classifier_checkpoint(model, state, train, test, final_acc, epochs, bs, lr, seed, t_train, dev)
    atomic_save(ckpt, Path(out))
    log(f"saved {out}: test top-1 {100 * final_acc:.2f}% on {len(test)} images (float16 weights), "
        f"{Path(out).stat().st_size / 1e6:.1f} MB, training {ckpt['train_seconds']}s")
    return {k: v for k, v in ckpt.items() if k != "state_dict"}


def _labelled_splits(data: Optional[str], train_size: Optional[int], test_size: Optional[int], seed: int,
                     dev: torch.device, log):
    """(train, test) splits, refused unless both have the same class folders; logs their sizes."""
    from ..runs.data import DataError, load_split
    t0 = time.time()
    train = load_split(data, "train", train_size, seed)
    test = load_split(data, "test", test_size, seed)
    if (train.labels < 0).any() or not train.classes:
        raise DataError(f"{train.source} has no class folders; the classifier needs train/<class>/*.jpg")
    if test.classes != train.classes:
        raise DataError(f"train and test classes differ: {train.classes} vs {test.classes}")
    log(f"data: {len(train)} train / {len(test)} test images, {len(train.classes)} classes "
        f"(loaded in {time.time() - t0:.1f}s), device {dev}")
    return train, test


def _classifier_on(dev: torch.device, widths: Sequence[int], num_classes: int) -> CifarClassifier:
    """A freshly initialised classifier on `dev` (channels_last and cuDNN autotuning on CUDA)."""
    cuda = dev.type == "cuda"
    model = CifarClassifier(widths, num_classes)
    memory_format = torch.channels_last if cuda else torch.contiguous_format
    model.to(dev, memory_format=memory_format)
    if cuda:
        torch.backends.cudnn.benchmark = True
    return model


def _one_cycle_sgd(model: nn.Module, lr: float, total_steps: int):
    """(optimizer, scheduler) of the recipe: Nesterov SGD, and a one-cycle rate up to `lr` over the
    first quarter, then linearly down."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=total_steps, pct_start=0.25, anneal_strategy="linear",
        div_factor=10.0, final_div_factor=100.0, cycle_momentum=False)
    return opt, sched


def _train_epoch(model: nn.Module, opt, sched, loss_fn, images: torch.Tensor, labels: torch.Tensor, bs: int,
                 steps_per_epoch: int, gen: torch.Generator) -> float:
    """One epoch over a fresh random order of augmented batches; returns the mean training loss."""
    dev = images.device
    cuda = dev.type == "cuda"
    memory_format = torch.channels_last if cuda else torch.contiguous_format
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    model.train()
    order = torch.randperm(images.shape[0], generator=gen).to(dev)
    total = torch.zeros((), device=dev)
    for step in range(steps_per_epoch):
        idx = order[step * bs:(step + 1) * bs]
        x = random_crop_flip(images[idx], generator=gen).contiguous(memory_format=memory_format)
        with autocast():
            loss = loss_fn(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.detach()
    return (total / steps_per_epoch).item()  # one host sync per epoch


def _classifier_checkpoint(model: CifarClassifier, state: dict, train, test, final_acc: float, epochs: int,
                           bs: int, lr: float, seed: int, t_train: float, dev: torch.device) -> dict:
    """The classifier file's contents (CLASSIFIER_FORMAT): float16 weights, classes, scores, provenance."""
    cuda = dev.type == "cuda"
    return {
        "format": CLASSIFIER_FORMAT,
        "arch": {"name": "cifar-cnn", "widths": list(model.widths), "stem": 32,
                 "num_classes": len(train.classes), "input": "RGB uint8 [0,255] or float [0,1]"},
        "state_dict": state,
        "classes": list(train.classes),
        "test_accuracy": final_acc,
        "test_images": len(test),
        "train_images": len(train),
        "epochs": epochs,
        "batch_size": bs,
        "lr": lr,
        "seed": seed,
        "data": Path(train.source).name,  # the folder's name only: no local paths in shared files
        "train_seconds": round(time.time() - t_train, 1),
        "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "torch": str(torch.__version__),
    }
