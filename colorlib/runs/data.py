"""Data held in memory as one uint8 tensor [N, 3, 32, 32] (150 MB for all of CIFAR-10): a batch is
`images[index]`, the gray input derived on the device that trains; no per-sample transform, no DataLoader.

Sources (`Config.data`, else $COLORLIB_DATA): unset or "cifar10", the official CIFAR-10 via torchvision,
downloaded into `data_root`; a folder laid out as train/<class>/*.jpg and test/<class>/*.jpg (or of photos
without classes, resized and centre-cropped, for both splits); a `.pt` pack from `python -m colorlib pack`.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torchvision
from PIL import Image

from .config import DATA_ENV, OneLineError, refuse_existing

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
PACK_FORMAT = "colorlib-jpeg-pack-v1"
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
        blobs, source = None, f"CIFAR-10 (torchvision, {data_root})"
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"data source {str(path)!r} does not exist. Point --data (or ${DATA_ENV}) at a folder "
                            f"laid out as {LAYOUT}, or at a .pt pack, or leave it unset to download CIFAR-10.")
        if path.is_file():
            blobs, labels, classes = _read_pack(path, file_split)
        else:  # (a reader of each image's bytes, its name)
            files, labels, classes = _folder_files(path, file_split)
            blobs = [(f.read_bytes, str(f)) for f in files]
    n = len(labels)
    if split == "test":
        index = _subset(n, size, seed)
    else:
        if val_size >= n:
            raise DataError(f"val_size={val_size} leaves no training images out of {n}; use a smaller val_size")
        held = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SEED))
        pool = (held[:val_size] if split == "val" else held[val_size:]).sort().values
        index = pool[_subset(len(pool), size, seed)]
    if blobs is not None:
        images = torch.stack([_decode(*blobs[i]) for i in index.tolist()]) if len(index) else \
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


def _decode(read, name: str, size: int = 32) -> torch.Tensor:
    """The image whose bytes `read()` gives as uint8 RGB [3, size, size], decoded by Pillow (libjpeg-turbo, as
    torchvision.io was); another size has its shorter side resized to `size`, then is centre-cropped."""
    try:
        with Image.open(io.BytesIO(read())) as img:
            rgb = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
    except FileNotFoundError:
        raise DataError(f"{name!r} disappeared while the data were being read: is something changing the "
                        f"folder? Run again once it is complete.") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # Pillow's errors
        if isinstance(exc, OSError) and exc.filename is not None:  # unreadable: named by the command line
            raise
        raise DataError(f"cannot decode image {name!r} ({type(exc).__name__}: {exc}); remove or replace it") from None
    if rgb.shape[-2:] == (size, size):
        return rgb
    from torchvision.transforms.v2 import functional as F
    return F.center_crop(F.resize(rgb, size, antialias=True), [size, size])


def fingerprint(images: torch.Tensor, available: Optional[int] = None) -> dict:
    """What identifies a set of training images: count, a SHA-256 of shape and pixels, the split's size."""
    pixels = images.detach().cpu().contiguous()
    digest = hashlib.sha256(str(tuple(pixels.shape)).encode())
    digest.update(memoryview(pixels.view(-1).numpy()))
    out = {"images": int(pixels.shape[0]), "sha256": digest.hexdigest()}
    if available is not None:
        out["available"] = int(available)
    return out


# ---------------------------------------------------------------- packs
def pack_folder(folder: str, out: str) -> dict:
    """Bundle a train/test image folder's encoded bytes in one file (no re-encoding, no loss). Every
    image is decoded first, and an existing `out` is never replaced: a DataError and nothing written."""
    path, out = Path(folder), Path(out)
    if not path.is_dir():
        raise DataError(f"{folder!r} is not a folder")
    refuse_existing(out)
    pack = {"format": PACK_FORMAT}
    for split in ("train", "test"):
        files, labels, pack["classes"] = _folder_files(path, split)
        blobs = [f.read_bytes() for f in files]
        for f, blob in zip(files, blobs):
            _decode(lambda: blob, str(f))  # an undecodable or empty file is named now, not at training
        # JPEGs from one encoder share their headers (623 bytes of CIFAR-10's ~900): stored once
        prefix = os.path.commonprefix(blobs)[:min(map(len, blobs)) - 1]
        rest = [b[len(prefix):] for b in blobs]
        pack[split] = {"bytes": torch.frombuffer(bytearray(b"".join(rest)), dtype=torch.uint8),
                       "prefix": torch.tensor(list(prefix), dtype=torch.uint8),
                       "offsets": torch.tensor([0, *itertools.accumulate(map(len, rest))], dtype=torch.int64),
                       "labels": torch.tensor(labels, dtype=torch.int64)}
    from .rundir import atomic_save
    atomic_save(pack, out)
    return {split: len(pack[split]["labels"]) for split in ("train", "test")}


def _read_pack(path: Path, split: str):
    """A pack's split as [(a reader of one image's bytes, its name)], labels, classes; its structure
    checked first (never unpickled: weights_only), so a malformed pack is one DataError."""
    remedy = "Make one with `python -m colorlib pack --data FOLDER --out FILE.pt`."
    try:
        pack = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{str(path)!r} is not a plain-weights colorlib data pack ({type(exc).__name__}; a pickle "
                        f"is never loaded). {remedy}") from None
    part = pack.get(split) if isinstance(pack, dict) and pack.get("format") == PACK_FORMAT else None
    classes = pack.get("classes") if part is not None else None
    problem = _pack_problem(part, classes)
    if problem:
        raise DataError(f"{str(path)!r} is not a valid colorlib data pack ({split}: {problem}). {remedy}")
    data, off, prefix = part["bytes"].numpy(), part["offsets"].tolist(), part["prefix"].numpy().tobytes()
    blobs = [(lambda i=i: prefix + data[off[i]:off[i + 1]].tobytes(), f"{path}:{split}[{i}]")
             for i in range(len(off) - 1)]
    return blobs, part["labels"], list(classes)


def _pack_problem(part, classes) -> str:
    """What is wrong with one split of a pack ("" when nothing is)."""
    if not isinstance(part, dict) or not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return "no such split, no format tag or no class list"
    kinds = {"bytes": torch.uint8, "prefix": torch.uint8, "offsets": torch.int64, "labels": torch.int64}
    for key, dtype in kinds.items():
        value = part.get(key)
        if not isinstance(value, torch.Tensor) or value.dtype != dtype or value.dim() != 1:
            return f"{key!r} is missing or not a 1-D {dtype} tensor"
    off, labels = part["offsets"], part["labels"]
    if len(off) != len(labels) + 1 or off[0] != 0 or off[-1] != len(part["bytes"]) or (off.diff() < 0).any():
        return "its offsets do not match its bytes and labels"
    if (((labels < 0) | (labels >= len(classes))) if classes else labels != -1).any():
        return f"labels outside its {len(classes)} classes"
    return ""
