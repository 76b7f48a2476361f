"""Data held in memory as one uint8 tensor [N, 3, 32, 32] (150 MB for all of CIFAR-10): a batch is
`images[index]`, the gray input derived on the device that trains; no per-sample transform, no DataLoader.
Sources (`Config.data`, else $COLORLIB_DATA): CIFAR-10 downloaded by torchvision into `data_root`, or a
folder of train/<class>/*.jpg and test/<class>/*.jpg, or of photos (resized and centre-cropped).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torchvision
from PIL import Image

from .config import DATA_ENV, OneLineError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VAL_SEED = 20_17  # one validation split for every run and seed, so validation numbers compare
LAYOUT = "train/<class>/*.jpg and test/<class>/*.jpg"


class DataError(OneLineError, RuntimeError):
    """Data that cannot be found or read; the message names the remedy."""


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 [N, 3, H, W]
    labels: torch.Tensor  # int64 [N], -1 where the source has no classes
    classes: list[str]
    source: str
    available: Optional[int] = None  # images in the source's split, before the hold-out and the subset

    def __len__(self) -> int:
        return self.images.shape[0]


def resolve_source(data: Optional[str]) -> str:
    return data or os.environ.get(DATA_ENV) or "cifar10"


def load_split(data: Optional[str], split: str, size: Optional[int] = None, seed: int = 0,
               data_root: str = "data", val_size: int = 0) -> ImageSet:
    """`split` of a source, optionally a seeded random subset of `size`: "test", or "val", a hold-out of
    `val_size` training images drawn with VAL_SEED (the same for every run), and "train", the rest."""
    if split not in ("train", "val", "test") or (split == "val" and val_size <= 0):
        raise ValueError(f"split must be 'train', 'test' or 'val' (with val_size > 0), got {split!r}")
    file_split = "test" if split == "test" else "train"
    source = resolve_source(data)
    if source == "cifar10":
        images, labels, classes = _torchvision_cifar10(file_split, data_root)
        files, source = None, f"CIFAR-10 (torchvision, {data_root})"
    else:
        path = Path(source).expanduser()
        if not path.is_dir():
            pack = " (.pt data packs are no longer read: use the image folder it was made from)"
            raise DataError(f"data source {str(path)!r} {'is not a folder' if path.exists() else 'does not exist'}"
                            f"{pack if path.suffix == '.pt' else ''}. "
                            f"Point --data (or ${DATA_ENV}) at a folder laid out as {LAYOUT}, or leave it unset to "
                            f"download CIFAR-10.")
        files, labels, classes = _folder_files(path, file_split)
    n = len(labels)
    if split == "test":
        index = _subset(n, size, seed)
    else:
        if val_size >= n:
            raise DataError(f"val_size={val_size} leaves no training images out of {n}; use a smaller val_size")
        held = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SEED))
        pool = (held[:val_size] if split == "val" else held[val_size:]).sort().values
        index = pool[_subset(len(pool), size, seed)]
    if files is not None:
        images = torch.stack([_decode(files[i]) for i in index.tolist()]) if len(index) else \
            torch.empty(0, 3, 32, 32, dtype=torch.uint8)
    else:
        images = images[index]
    return ImageSet(images, torch.as_tensor(labels)[index], classes, str(source), available=n)


def _subset(n: int, size: Optional[int], seed: int) -> torch.Tensor:
    if size is None or size >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values


def _torchvision_cifar10(split: str, root: str):
    try:
        ds = torchvision.datasets.CIFAR10(root, train=split == "train", download=False)
    except RuntimeError:
        try:
            ds = torchvision.datasets.CIFAR10(root, train=split == "train", download=True)
        except Exception as exc:  # no network, proxy, full disk...
            raise DataError(f"CIFAR-10 is not in {root!r} and could not be downloaded ({type(exc).__name__}: "
                            f"{exc}). Connect to the internet and run again, or point --data (or ${DATA_ENV}) at "
                            f"a local copy laid out as {LAYOUT}.") from exc
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes)


def _folder_files(path: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    root = path / split if (path / split).is_dir() else path
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name not in ("train", "test"))
    files, labels = [], []
    for label, folder in (enumerate(root / c for c in classes) if classes else [(-1, root)]):
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        files += found
        labels += [label] * len(found)
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {str(root)!r}: expected "
                        f"{LAYOUT}, or a folder of photos.")
    return files, labels, classes


def _decode(path: Path, size: int = 32) -> torch.Tensor:
    """The image as uint8 RGB [3, size, size], decoded by Pillow (libjpeg-turbo, as torchvision.io was);
    another size has its shorter side resized to `size`, then is centre-cropped."""
    try:
        with Image.open(path) as img:
            rgb = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
    except FileNotFoundError:
        raise DataError(f"{str(path)!r} disappeared while the data were being read: is something changing the "
                        f"folder? Run again once it is complete.") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # Pillow's errors
        if isinstance(exc, OSError) and exc.filename is not None:  # unreadable: named by the command line
            raise
        raise DataError(f"cannot decode image {str(path)!r} ({type(exc).__name__}: {exc}); remove or replace "
                        f"it") from None
    if rgb.shape[-2:] == (size, size):
        return rgb
    from torchvision.transforms.v2 import functional as F
    return F.center_crop(F.resize(rgb, size, antialias=True), [size, size])


def fingerprint(images: torch.Tensor, available: int) -> dict:
    """What identifies a set of training images: count, a SHA-256 of shape and pixels, the split's size."""
    pixels = images.detach().cpu().contiguous()
    digest = hashlib.sha256(str(tuple(pixels.shape)).encode())
    digest.update(memoryview(pixels.view(-1).numpy()))
    return {"images": int(pixels.shape[0]), "sha256": digest.hexdigest(), "available": int(available)}
