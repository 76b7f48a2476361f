"""The run directory: the one format the trainer writes and notebooks, figures and CLI read (what each
file holds: docs/library.md). Every file is written to a temporary name and renamed into place: a crash
leaves the previous version, never half a file. last.pt is written first, then the files that describe it.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pickle
import re
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .config import Config, ConfigError, OneLineError, config_from_dict

try:
    import fcntl
except ImportError:  # Windows: no lock
    fcntl = None

LOSS_NAMES = ("g_total", "g_adv", "g_content", "d_real", "d_fake")  # of one iteration, as training_iteration's
HISTORY_COLUMNS = ("iteration", "epoch", *LOSS_NAMES)  # history.csv: one row per iteration
EPOCH_COLUMNS = ("epoch", "d_wins_share", "val_psnr_db", "val_colourfulness", "val_fd", "lr_g", "lr_d")  # epochs.csv
CHECKPOINT_FORMAT = "colorlib-checkpoint-v1"
GENERATOR_FORMAT = "colorlib-generator-v1"
LOCK_NAME = "train.lock"
TEMP_PREFIX = ".tmp"  # short, so that a 250-byte file name still has a legal temporary name


class RunDirError(OneLineError, RuntimeError):
    """A run directory or checkpoint that cannot be used; the message says what to do."""


class RunDirWarning(UserWarning):
    """Part of a run directory is damaged: left out, or rebuilt from last.pt; the message names the file."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:limit]


# ---------------------------------------------------------------- atomic writes
def atomic_write_bytes(path, data: bytes) -> None:
    """`data` into `path` through a temporary file in the same folder and os.replace: all or nothing."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.umask(umask := os.umask(0))  # mkstemp makes 0600: the mode a plain open gives instead
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno:  # named by the file being written, not the temporary one
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_save(obj: Any, path) -> None:
    """torch.save, atomically, with every tensor on the CPU (a GPU's checkpoint loads anywhere)."""
    buf = io.BytesIO()
    torch.save(to_cpu(obj), buf)
    atomic_write_bytes(path, buf.getvalue())


def remove_temporary_files(run_dir) -> None:
    """The temporary files a killed process left (call it only while holding the run's lock)."""
    for folder in (Path(run_dir), Path(run_dir) / "checkpoints", Path(run_dir) / "samples"):
        for path in folder.glob(TEMP_PREFIX + "*"):
            path.unlink(missing_ok=True)


def to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, (list, tuple)):
        return type(obj)(map(to_cpu, obj))
    if not isinstance(obj, dict):
        return obj
    out = type(obj)((k, to_cpu(v)) for k, v in obj.items())  # an OrderedDict stays one
    if hasattr(obj, "_metadata"):  # a state_dict's
        out._metadata = obj._metadata
    return out


def write_json(path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path) -> dict:
    """A JSON object; RunDirError (one line) for a missing file, bad JSON or anything but an object."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing: is {Path(path).parent} a colorlib run directory?") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} is not valid JSON ({first_line(exc)}); the run directory is damaged") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path} holds a JSON {type(data).__name__}, not an object; the run directory is damaged")
    return data


def read_config(run_dir) -> Config:
    path = Path(run_dir) / "config.json"
    try:
        return config_from_dict(read_json(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def read_run_info(run_dir) -> dict:
    return read_json(Path(run_dir) / "run.json")


def is_run_dir(run_dir) -> bool:
    return (Path(run_dir) / "config.json").exists()


# what a training writes besides config.json: a folder holding any of these holds (part of) a run
RUN_FILES = ("run.json", "history.csv", "epochs.csv", "metrics.json", "checkpoints/last.pt", "checkpoints/best.pt",
             "checkpoints/generator.pt", "samples/gray.png", "samples/truth.png")


def _write_table(path: Path, columns, rows, whole: int) -> None:
    """A header, then rows: the first `whole` columns as integers, the rest as %.6g."""
    lines = [",".join(columns)]
    lines += [",".join([str(int(v)) for v in r[:whole]] + [f"{v:.6g}" for v in r[whole:]]) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_history(run_dir, rows: torch.Tensor) -> None:
    """rows: float tensor [N, 7] in HISTORY_COLUMNS order."""
    _write_table(Path(run_dir) / "history.csv", HISTORY_COLUMNS, rows.tolist(), 2)


def write_epochs(run_dir, columns: tuple[str, ...], rows: list[list[float]]) -> None:
    _write_table(Path(run_dir) / "epochs.csv", columns, rows, 1)


def _read_table(run_dir, name: str, columns, count_key: str):
    """(header, rows) of history.csv or epochs.csv; one that is damaged, shorter than run.json counts, or
    missing beside a last.pt is rebuilt from last.pt (RunDirWarning). None: no table and none expected."""
    path, last = Path(run_dir) / name, Path(run_dir) / "checkpoints" / "last.pt"
    if not path.exists() and not last.exists():
        return None
    try:  # a ValueError says why the table is damaged
        counted = 0
        with contextlib.suppress(RunDirError):  # no run.json, or a damaged one: nothing to count against
            counted = int(read_run_info(run_dir).get(count_key) or 0)
        if not path.exists():
            raise ValueError("it is missing")
        text = path.read_bytes().decode("ascii")
        if not text.endswith("\n"):
            raise ValueError("its last line is cut off")
        header, *lines = csv.reader(text.splitlines())
        if columns is not None and tuple(header) != tuple(columns):
            raise ValueError(f"its columns are {header}")
        rows = [[float(v) for v in line] for line in lines]
        if any(len(r) != len(header) for r in rows) or [r[0] for r in rows] != list(range(1, len(rows) + 1)):
            raise ValueError("its rows are garbled")
        if len(rows) < counted:
            raise ValueError(f"it has {len(rows)} rows where run.json counts {counted}")
        return header, rows
    except (ValueError, UnicodeDecodeError) as exc:
        damaged = f"{path} is damaged ({first_line(exc)})"
    if not last.exists():
        raise RunDirError(f"{damaged}; restore it from a copy or train the run again")
    ckpt, history = load_checkpoint(last, (CHECKPOINT_FORMAT,)), name == "history.csv"
    header = HISTORY_COLUMNS if history else tuple(ckpt["epoch_columns"])
    rows = ckpt["history"].double().tolist() if history else ckpt["epoch_rows"]
    try:
        _write_table(path, header, rows, 2 if history else 1)
    except OSError:  # a read-only copy of a run: the rows are still used
        damaged += " (read-only: not rewritten)"
    warnings.warn(f"{damaged}; rebuilt from {last}", RunDirWarning, stacklevel=3)
    return header, rows


def _by_column(header, rows) -> dict[str, torch.Tensor]:
    data = torch.tensor(rows, dtype=torch.float64).reshape(-1, len(header))
    return {c: data[:, i] for i, c in enumerate(header)}


def read_history(run_dir) -> dict[str, torch.Tensor]:
    """The history as one 1-D float64 tensor per column (empty for a run with no iterations)."""
    return _by_column(*(_read_table(run_dir, "history.csv", HISTORY_COLUMNS, "history_rows") or (HISTORY_COLUMNS, [])))


def history_tensor(run_dir) -> torch.Tensor:
    return torch.stack(list(read_history(run_dir).values()), dim=1).float()


def read_epochs(run_dir) -> dict[str, torch.Tensor]:
    """epochs.csv as one 1-D tensor per column ({} where there is none)."""
    table = _read_table(run_dir, "epochs.csv", None, "epochs_done")
    return _by_column(*table) if table else {}


def save_strip(path, images: torch.Tensor) -> None:
    """uint8 [N, 3, H, W] -> one PNG strip, lossless."""
    strip = torch.cat(list(images.cpu()), dim=2)
    buf = io.BytesIO()
    Image.fromarray(strip.permute(1, 2, 0).contiguous().numpy()).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def load_strip(path) -> torch.Tensor:
    try:
        with Image.open(path) as png:
            img = torch.from_numpy(np.array(png.convert("RGB"))).permute(2, 0, 1)
    except (OSError, SyntaxError, ValueError) as exc:
        raise RunDirError(f"sample image {path} is damaged or unreadable ({first_line(exc)})") from None
    if img.shape[2] % 32:
        raise RunDirError(f"sample image {path} is not a strip of 32-pixel images")
    return torch.stack(img.split(32, dim=2))


def sample_epochs(run_dir) -> list[int]:
    return sorted(int(m.group(1)) for p in (Path(run_dir) / "samples").glob("epoch_*.png")
                  if (m := re.fullmatch(r"epoch_(\d+)\.png", p.name)))


def read_samples(run_dir) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor]]:
    """(gray, truth, {epoch: colorized}) as uint8 [N, 3, 32, 32]; a damaged epoch strip is left out
    with a RunDirWarning, damaged gray or truth strips raise RunDirError."""
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
def check_zip(path, what: str, remedy: str, error: type) -> None:
    """`error` naming the file where a zip record fails its CRC-32 check, which torch.load skips."""
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
        raise error(f"{what} {str(path)!r} is damaged ({first_line(exc)}). {remedy}") from None
    except OSError:
        return
    if bad is not None:
        raise error(f"{what} {str(path)!r} is damaged: its record {bad!r} fails its CRC-32 check. {remedy}")


def load_weights_file(path, formats: tuple[str, ...], what: str, remedy: str, error: type = RunDirError) -> dict:
    """torch.load(path, weights_only=True) on the CPU: nothing but tensors and plain data is ever
    unpickled. One line for a missing, damaged, foreign or pickled-code file."""
    path = Path(path)
    if not path.exists():
        raise error(f"{what} {str(path)!r} does not exist. {remedy}")
    check_zip(path, what, remedy, error)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's own text is pages long: one line here
        code = isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc)
        raise error(f"{str(path)!r} is not a plain-weights file; load it only if you trust it" if code else
                    f"{what} {str(path)!r} is damaged or not a PyTorch file. {remedy}") from None
    fmt = obj.get("format") if isinstance(obj, dict) else None
    if fmt not in formats:
        raise error(f"{str(path)!r} is not a colorlib {what} (format {fmt!r}). {remedy}")
    return obj


# what each kind of checkpoint holds besides its format tag
CHECKPOINT_PARTS = {GENERATOR_FORMAT: {"config": dict, "generator": dict},
                    CHECKPOINT_FORMAT: {"config": dict, "generator": dict, "discriminator": dict, "g_opt": dict,
                                        "d_opt": dict, "epoch": int, "history": torch.Tensor, "epoch_rows": list,
                                        "epoch_columns": list}}


def load_checkpoint(path, formats: tuple[str, ...] = (CHECKPOINT_FORMAT, GENERATOR_FORMAT)) -> dict:
    """last.pt or generator.pt (see load_weights_file), its parts and its config checked."""
    remedy = "Use another checkpoint or retrain."
    ckpt = load_weights_file(path, formats, "checkpoint", remedy)
    for name, kind in CHECKPOINT_PARTS[ckpt["format"]].items():
        part = ckpt.get(name)
        if not isinstance(part, kind) or isinstance(part, bool):
            raise RunDirError(f"checkpoint {str(path)!r} is damaged: its {name!r} is missing or not a "
                              f"{kind.__name__}. {remedy}")
    if not all(isinstance(v, torch.Tensor) for v in ckpt["generator"].values()):
        raise RunDirError(f"checkpoint {str(path)!r} is damaged: its 'generator' holds values that are not tensors. "
                          f"{remedy}")
    try:
        config_from_dict(ckpt["config"])
    except ValueError as exc:  # ConfigError
        raise RunDirError(f"checkpoint {str(path)!r} has an invalid config ({exc}). {remedy}") from None
    return ckpt


# ---------------------------------------------------------------- the run lock
class RunLock:
    """RUN/train.lock, held with flock while a training writes the run: the operating system
    releases it when the process ends, however it ends. The file says which process holds it."""

    def __init__(self, run_dir):
        self.run_dir, self.path, self.file = Path(run_dir), Path(run_dir) / LOCK_NAME, None
        self.created_dir = False

    def acquire(self) -> None:
        if self.file is not None or fcntl is None:
            return
        self.created_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            f = open(self.path, "a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                owner = f.read().strip() or "?"
                f.close()
                self.release()
                raise RunDirError(f"{self.run_dir} is in use by another training (process {owner}); wait for it, "
                                  f"stop it, or choose another run directory") from None
            if os.path.exists(self.path) and os.path.samestat(os.fstat(f.fileno()), os.stat(self.path)):
                break  # not a file its last holder removed while we opened it
            f.close()
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        self.file = f

    def release(self) -> None:
        if self.file is not None:
            self.path.unlink(missing_ok=True)  # before unlocking: a waiter then sees a new file
            self.file.close()
            self.file = None
        if self.created_dir:
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()  # only when empty: a refused start leaves nothing behind
            self.created_dir = False
