"""Data: CIFAR-10 (or any folder of photos) held in memory as one uint8 tensor.

The paper feeds the generator a grayscale image and asks it for the colour original, both
scaled to [-1, 1] (Sec. IV-A). We keep the dataset as uint8 [N, 3, 32, 32] (150 MB for all of
CIFAR-10) and derive the grayscale input on the fly, on whatever device trains: a batch is
`images[index]`, with no per-sample Python transform and no DataLoader.

Sources, chosen by `Config.data` (or the COLORLIB_DATA environment variable):
- unset or "cifar10": the official CIFAR-10 via torchvision, downloaded into `data_root`;
- a folder in the image-folder layout `train/<class>/*.jpg`, `test/<class>/*.jpg`;
- a folder of photos without that layout (resized and centre-cropped to 32x32), used for both splits;
- a `.pt` pack written by `python -m colorlib pack` (the JPEG bytes of a folder in one file).
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torchvision
from PIL import Image

from .config import DATA_ENV

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
PACK_FORMAT = "colorlib-jpeg-pack-v1"


class DataError(RuntimeError):
    """Data that cannot be found or read; the message names the remedy."""


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 [N, 3, H, W]
    labels: torch.Tensor  # int64 [N], -1 where the source has no classes
    classes: list[str]
    source: str
    available: Optional[int] = None  # images in the split of the source, before the hold-out and the subset

    def __len__(self) -> int:
        return self.images.shape[0]


def resolve_source(data: Optional[str]) -> str:
    return data or os.environ.get(DATA_ENV) or "cifar10"


VAL_SEED = 20_17  # one validation split for every run and seed, so validation numbers compare


def load_split(data: Optional[str], split: str, size: Optional[int] = None, seed: int = 0,
               data_root: str = "data", image_size: int = 32, val_size: int = 0) -> ImageSet:
    """Load `split` ("train", "val" or "test") of a source, optionally a seeded random subset of `size`.

    "val" is a hold-out of `val_size` training images drawn with a fixed seed (VAL_SEED), the same
    for every run; "train" is then the rest of the training split. Model selection uses "val";
    the test split is kept for the final tables.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if split == "val" and val_size <= 0:
        raise ValueError("the val split needs val_size > 0")

    available = None

    def select(n: int) -> torch.Tensor:
        nonlocal available
        available = n
        if split == "test":
            return _subset(n, size, seed)
        if val_size >= n:
            raise DataError(f"val_size={val_size} leaves no training images out of {n}; use a smaller val_size")
        held = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SEED))
        pool = held[:val_size] if split == "val" else held[val_size:]
        pool = pool.sort().values
        return pool[_subset(len(pool), size, seed)]

    file_split = "test" if split == "test" else "train"
    source = resolve_source(data)
    if source == "cifar10":
        images, labels, classes = _load_torchvision_cifar10(file_split, data_root)
        index = select(len(images))
        loaded = ImageSet(images[index], labels[index], classes, f"CIFAR-10 (torchvision, {data_root})")
    else:
        loaded = _load_path(source, file_split, select, image_size)
    loaded.available = available
    return loaded


def _load_path(source: str, file_split: str, select, image_size: int) -> ImageSet:
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"data source {str(path)!r} does not exist. Point --data (or ${DATA_ENV}) at a folder "
            f"laid out as train/<class>/*.jpg and test/<class>/*.jpg, or at a .pt pack, or leave "
            f"it unset to download the official CIFAR-10 (needs internet).")
    if path.is_file():
        return _load_pack(path, file_split, select, image_size)
    return _load_folder(path, file_split, select, image_size)


def _subset(n: int, size: Optional[int], seed: int) -> torch.Tensor:
    if size is None or size >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:size].sort().values


def _load_torchvision_cifar10(split: str, root: str):
    try:
        ds = torchvision.datasets.CIFAR10(root, train=split == "train", download=False)
    except RuntimeError:
        try:
            ds = torchvision.datasets.CIFAR10(root, train=split == "train", download=True)
        except Exception as exc:  # no network, proxy, full disk...
            raise DataError(
                f"CIFAR-10 is not in {root!r} and could not be downloaded ({type(exc).__name__}: {exc}). "
                f"Either connect to the internet and run again, or point --data (or ${DATA_ENV}) at a "
                f"local copy laid out as train/<class>/*.jpg and test/<class>/*.jpg.") from exc
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _folder_files(path: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    root = path / split if (path / split).is_dir() else path
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name not in ("train", "test"))
    if classes:
        files, labels = [], []
        for label, name in enumerate(classes):
            found = list_images(root / name)
            files += found
            labels += [label] * len(found)
    else:
        files, labels = list_images(root), []
        labels = [-1] * len(files)
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {str(root)!r}. "
                        f"Expected train/<class>/*.jpg and test/<class>/*.jpg, or a folder of photos.")
    return files, labels, classes


def _load_folder(path: Path, split: str, select, image_size) -> ImageSet:
    files, labels, classes = _folder_files(path, split)
    index = select(len(files))
    blobs = [read_bytes(files[i]) for i in index.tolist()]
    images = _decode_all(blobs, image_size, names=[str(files[i]) for i in index.tolist()])
    return ImageSet(images, torch.tensor(labels)[index], classes, str(path))


def read_bytes(path: Path) -> bytes:
    """A data file's bytes; one that vanished since the folder was listed is a DataError saying so
    (other OSErrors, a file that cannot be read, name their file and reach the command line as they are)."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{str(path)!r} disappeared while the data were being read (it was listed a moment "
                        f"before): is something changing the folder? Run again once it is complete.") from None


def decode_image_bytes(data: Union[bytes, torch.Tensor]) -> torch.Tensor:
    """An encoded image (JPEG, PNG, BMP, WebP) as uint8 RGB [3, H, W], decoded by Pillow: for JPEG
    the same libjpeg-turbo defaults, so the same pixels, as torchvision.io's decoders (deprecated
    since torchvision 0.29). Pillow's errors for a file that is no image pass through."""
    if isinstance(data, torch.Tensor):
        data = data.numpy().tobytes()
    with Image.open(io.BytesIO(data)) as img:
        rgb = np.array(img.convert("RGB"))  # a copy: writable, as torch.from_numpy wants
    return torch.from_numpy(rgb).permute(2, 0, 1)


def _decode_all(blobs: Sequence[Union[bytes, torch.Tensor]], image_size: int, names: Sequence[str]) -> torch.Tensor:
    out = torch.empty(len(blobs), 3, image_size, image_size, dtype=torch.uint8)
    for i, blob in enumerate(blobs):
        try:
            img = decode_image_bytes(blob)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # Pillow's errors
            raise DataError(f"cannot decode image {names[i]!r} ({type(exc).__name__}: {exc}). "
                            f"Remove or replace the file.") from None
        out[i] = fit_square(img, image_size)
    return out


def fingerprint(images: torch.Tensor, available: Optional[int] = None) -> dict:
    """What identifies a set of training images: their count, their shape and a SHA-256 of their
    pixels (a run resumed on other images is no longer the run it was; see engine/run_files.py),
    and how many images the source's split held (`available`) where known."""
    pixels = images.detach().cpu().contiguous()
    digest = hashlib.sha256(str(tuple(pixels.shape)).encode())
    digest.update(memoryview(pixels.view(-1).numpy()))
    out = {"images": int(pixels.shape[0]), "sha256": digest.hexdigest()}
    if available is not None:
        out["available"] = int(available)
    return out


def fit_square(img: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to `size` and centre-crop: CIFAR-sized images pass unchanged."""
    if img.shape[-2:] == (size, size):
        return img
    from torchvision.transforms.v2 import functional as F
    img = F.resize(img, size, antialias=True)
    return F.center_crop(img, [size, size])


def pack_folder(folder: str, out: str) -> dict:
    """Bundle a train/test image folder's encoded bytes in one file (no re-encoding, no loss)."""
    path = Path(folder)
    if not path.is_dir():
        raise DataError(f"{folder!r} is not a folder")
    pack = {"format": PACK_FORMAT}
    for split in ("train", "test"):
        files, labels, classes = _folder_files(path, split)
        blobs = [_byte_tensor(read_bytes(f)) for f in files]
        # JPEGs written by one encoder share their headers (tables, sizes: 623 bytes for CIFAR-10,
        # two thirds of each file); the pack stores the common prefix once and the rest per file
        prefix = _common_prefix(blobs)
        blobs = [b[len(prefix):] for b in blobs]
        lengths = torch.tensor([len(b) for b in blobs], dtype=torch.int64)
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
        pack[split] = {"bytes": torch.cat(blobs), "offsets": offsets,
                       "labels": torch.tensor(labels, dtype=torch.int64), "prefix": prefix}
        pack["classes"] = classes
    from .rundir import atomic_save
    atomic_save(pack, Path(out))
    return {split: len(pack[split]["labels"]) for split in ("train", "test")}


def _byte_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)


def _common_prefix(blobs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The longest byte prefix shared by every blob (one left in each, so none becomes empty)."""
    shortest = min(len(b) for b in blobs) - 1
    prefix = blobs[0][:max(shortest, 0)]
    for b in blobs[1:]:
        differ = (b[:len(prefix)] != prefix).nonzero()
        if len(differ):
            prefix = prefix[:int(differ[0])]
    return prefix.clone()


def _load_pack(path: Path, split, select, image_size) -> ImageSet:
    from .rundir import load_weights_file
    pack = load_weights_file(path, (PACK_FORMAT,), "data pack",
                             "Make one with `python -m colorlib pack --data FOLDER --out FILE.pt`.", DataError)
    part = pack[split]
    index = select(len(part["labels"]))
    off = part["offsets"]
    prefix = part.get("prefix")
    blobs = [part["bytes"][off[i]:off[i + 1]] for i in index.tolist()]
    if prefix is not None and len(prefix):
        blobs = [torch.cat([prefix, b]) for b in blobs]
    images = _decode_all(blobs, image_size, names=[f"{path}:{split}[{i}]" for i in index.tolist()])
    return ImageSet(images, part["labels"][index], list(pack["classes"]), str(path))
