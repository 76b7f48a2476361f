"""The run directory: the one format the trainer writes and notebooks, figures and CLI read.

    RUN/config.json            every Config field of the run
    RUN/run.json               status, epochs done, device, versions, wall time
    RUN/history.csv            one row per iteration: the five losses of Fig. 3
    RUN/samples/gray.png       the fixed test images as the generator sees them (one strip)
    RUN/samples/truth.png      ... and their ground-truth colours
    RUN/samples/epoch_NNNN.png the generator's colorization of them after epoch NNNN
    RUN/checkpoints/last.pt    networks + optimizers, for resuming
    RUN/checkpoints/generator.pt  the final generator alone, for colorizing and evaluation

Every file is written to a temporary name and renamed into place, so a crash or a Ctrl-C
leaves the previous version intact, never half a file.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
import torchvision

from .config import Config, config_from_dict

HISTORY_COLUMNS = ("iteration", "epoch", "g_total", "g_adv", "g_content", "d_real", "d_fake")
CHECKPOINT_FORMAT = "colorlib-checkpoint-v1"
GENERATOR_FORMAT = "colorlib-generator-v1"


class RunDirError(RuntimeError):
    """A run directory or checkpoint that cannot be used; the message says what to do."""


class RunDirWarning(UserWarning):
    """Part of a run directory is damaged and was left out; the message names the file."""


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: all of it or nothing."""
    _atomic_write_bytes(path, data)


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode())


def atomic_save(obj: Any, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    _atomic_write_bytes(path, buf.getvalue())


def to_cpu(obj: Any) -> Any:
    """Tensors anywhere in nested dicts/lists moved to the CPU: a checkpoint written on a GPU
    then loads with a plain `torch.load(path, weights_only=True)` on any machine."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):  # keeps OrderedDict and a state_dict's _metadata (module versions)
        out = type(obj)((k, to_cpu(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing: is {Path(path).parent} a colorlib run directory?") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc}); the run directory is damaged.") from None


def read_config(run_dir) -> Config:
    return config_from_dict(read_json(Path(run_dir) / "config.json"))


def read_run_info(run_dir) -> dict:
    return read_json(Path(run_dir) / "run.json")


def is_run_dir(run_dir) -> bool:
    return (Path(run_dir) / "config.json").exists()


# ---------------------------------------------------------------- history
def write_history(run_dir, rows: torch.Tensor) -> None:
    """rows: float tensor [N, 7] in HISTORY_COLUMNS order."""
    out = io.StringIO()
    out.write(",".join(HISTORY_COLUMNS) + "\n")
    for r in rows.tolist():
        out.write(f"{int(r[0])},{int(r[1])}," + ",".join(f"{v:.6g}" for v in r[2:]) + "\n")
    atomic_write_text(Path(run_dir) / "history.csv", out.getvalue())


def write_epochs(run_dir, columns: tuple[str, ...], rows: list[list[float]]) -> None:
    """epochs.csv: one row per finished epoch (collapse statistic, validation scores, rates)."""
    out = io.StringIO()
    out.write(",".join(columns) + "\n")
    for r in rows:
        out.write(f"{int(r[0])}," + ",".join(f"{v:.6g}" for v in r[1:]) + "\n")
    atomic_write_text(Path(run_dir) / "epochs.csv", out.getvalue())


def read_epochs(run_dir) -> dict[str, torch.Tensor]:
    """epochs.csv as one 1-D tensor per column ({} for runs made before it existed)."""
    path = Path(run_dir) / "epochs.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        rows = [[float(v) for v in row] for row in reader if row]
    data = torch.tensor(rows, dtype=torch.float64).reshape(-1, len(header))
    return {c: data[:, i] for i, c in enumerate(header)}


def read_history(run_dir) -> dict[str, torch.Tensor]:
    """The history as one 1-D tensor per column (empty tensors for a run with no iterations)."""
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return {c: torch.empty(0) for c in HISTORY_COLUMNS}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if tuple(header or ()) != HISTORY_COLUMNS:
            raise RunDirError(f"{path} has columns {header}, expected {HISTORY_COLUMNS}")
        rows = [[float(v) for v in row] for row in reader]
    table = torch.tensor(rows, dtype=torch.float64).reshape(-1, len(HISTORY_COLUMNS))
    return {c: table[:, i] for i, c in enumerate(HISTORY_COLUMNS)}


def history_tensor(run_dir) -> torch.Tensor:
    h = read_history(run_dir)
    return torch.stack([h[c] for c in HISTORY_COLUMNS], dim=1).float()


# ---------------------------------------------------------------- samples
def save_strip(path: Path, images: torch.Tensor) -> None:
    """uint8 [N, 3, H, W] -> one PNG strip, lossless, viewable in any image viewer."""
    strip = torch.cat(list(images.cpu()), dim=2)  # side by side
    _atomic_write_bytes(path, torchvision.io.encode_png(strip).numpy().tobytes())


def load_strip(path: Path, image_size: int = 32) -> torch.Tensor:
    try:
        img = torchvision.io.decode_png(torchvision.io.read_file(str(path)), mode=torchvision.io.ImageReadMode.RGB)
    except RuntimeError as exc:  # torchvision's error for unreadable, truncated and non-PNG files
        raise RunDirError(f"sample image {path} is damaged or unreadable ({first_line(exc)})") from None
    if img.shape[2] % image_size:
        raise RunDirError(f"sample image {path} is {img.shape[2]} pixels wide, not a strip of "
                          f"{image_size}-pixel images")
    return torch.stack(img.split(image_size, dim=2))


def sample_epochs(run_dir) -> list[int]:
    folder = Path(run_dir) / "samples"
    return sorted(int(m.group(1)) for p in folder.glob("epoch_*.png")
                  if (m := re.fullmatch(r"epoch_(\d+)\.png", p.name)))


def read_samples(run_dir) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor]]:
    """(gray, truth, {epoch: colorized}) as uint8 [N, 3, 32, 32] tensors.

    A damaged epoch image is left out with a `RunDirWarning` naming it; damaged gray or truth
    images (which every sample figure needs) raise `RunDirError`."""
    folder = Path(run_dir) / "samples"
    if not (folder / "truth.png").exists():
        raise RunDirError(f"{folder} holds no samples: was {run_dir} written by `colorlib train`?")
    gray, truth = load_strip(folder / "gray.png"), load_strip(folder / "truth.png")
    by_epoch = {}
    for e in sample_epochs(run_dir):
        try:
            by_epoch[e] = load_strip(folder / f"epoch_{e:04d}.png")
        except RunDirError as exc:
            warnings.warn(f"{exc}; epoch {e} is left out", RunDirWarning, stacklevel=2)
    return gray, truth, by_epoch


# ---------------------------------------------------------------- checkpoints
def first_line(exc: BaseException, limit: int = 200) -> str:
    """The start of an exception's message, for one-line errors (some exceptions have no message)."""
    lines = str(exc).splitlines()
    return lines[0][:limit] if lines else "no message"


def load_weights_file(path, formats: tuple[str, ...], what: str, remedy: str, error: type = None) -> dict:
    """`torch.load(path, weights_only=True)` onto the CPU, with one clear message for each way it
    can fail: the file is missing, damaged (truncated, not a PyTorch file), or another kind of file.
    Shared by checkpoints, data packs and the classifier."""
    error = error or RunDirError
    path = Path(path)
    if not path.exists():
        raise error(f"{what} {str(path)!r} does not exist. {remedy}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise error(f"{what} {str(path)!r} is damaged or not a PyTorch file ({type(exc).__name__}: "
                    f"{first_line(exc)}). {remedy}") from None
    fmt = obj.get("format") if isinstance(obj, dict) else None
    if fmt not in formats:
        raise error(f"{str(path)!r} is not a colorlib {what} (format {fmt!r}). {remedy}")
    return obj


# what each kind of checkpoint holds besides its format tag: name -> type
CHECKPOINT_PARTS = {
    GENERATOR_FORMAT: {"config": dict, "generator": dict},
    CHECKPOINT_FORMAT: {"config": dict, "generator": dict, "discriminator": dict, "g_opt": dict, "d_opt": dict,
                        "epoch": int},
}


def load_checkpoint(path, formats: tuple[str, ...] = (CHECKPOINT_FORMAT, GENERATOR_FORMAT)) -> dict:
    """A training checkpoint (last.pt) or a generator (generator.pt), see `load_weights_file`; one
    with a colorlib format tag but parts missing, of the wrong kind or an invalid config is refused
    with a `RunDirError` too."""
    remedy = "Use another checkpoint or retrain."
    ckpt = load_weights_file(path, formats, "checkpoint", remedy)
    for name, kind in CHECKPOINT_PARTS.get(ckpt["format"], {}).items():
        if name not in ckpt:
            raise RunDirError(f"checkpoint {str(path)!r} is incomplete: it has no {name!r}. {remedy}")
        if not isinstance(ckpt[name], kind) or isinstance(ckpt[name], bool):
            raise RunDirError(f"checkpoint {str(path)!r} is damaged: its {name!r} is a "
                              f"{type(ckpt[name]).__name__}, not a {kind.__name__}. {remedy}")
    if "generator" in ckpt and not all(isinstance(v, torch.Tensor) for v in ckpt["generator"].values()):
        raise RunDirError(f"checkpoint {str(path)!r} is damaged: its 'generator' holds values that are not "
                          f"tensors. {remedy}")
    if "config" in ckpt:
        try:
            config_from_dict(ckpt["config"])
        except ValueError as exc:  # ConfigError
            raise RunDirError(f"checkpoint {str(path)!r} has an invalid config ({exc}). {remedy}") from None
    return ckpt
