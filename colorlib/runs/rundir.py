"""The run directory: the one format the trainer writes and notebooks, figures and CLI read.

    RUN/config.json            every Config field of the run
    RUN/run.json               status, epochs done, device, versions, wall time
    RUN/history.csv            one row per iteration: the five losses of Fig. 3
    RUN/samples/gray.png       the fixed test images as the generator sees them (one strip)
    RUN/samples/truth.png      ... and their ground-truth colours
    RUN/samples/epoch_NNNN.png the generator's colorization of them after epoch NNNN
    RUN/epochs.csv             one row per epoch: collapse statistic, validation scores, rates
    RUN/checkpoints/last.pt    networks + optimizers + the history rows they cover, for resuming
    RUN/checkpoints/generator.pt  the final generator alone, for colorizing and evaluation
    RUN/train.lock             while a training writes the run: its process id and host

Every file is written to a temporary name and renamed into place, so a crash or a Ctrl-C
leaves the previous version intact, never half a file. last.pt is the run's record: it is
written first, then history.csv, epochs.csv and run.json, which describe what it holds; a
history.csv or epochs.csv found damaged or missing is rewritten from it (`read_history`).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import sys
import tempfile
import time
import warnings
import weakref
import zipfile
import zlib
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from .config import Config, config_from_dict

HISTORY_COLUMNS = ("iteration", "epoch", "g_total", "g_adv", "g_content", "d_real", "d_fake")
CHECKPOINT_FORMAT = "colorlib-checkpoint-v1"
GENERATOR_FORMAT = "colorlib-generator-v1"


class RunDirError(RuntimeError):
    """A run directory or checkpoint that cannot be used; the message says what to do."""


class RunDirWarning(UserWarning):
    """Part of a run directory is damaged and was left out; the message names the file."""


class RunDirRepaired(UserWarning):
    """A damaged or missing file of a run directory was rewritten from its checkpoint; nothing is lost."""


def _umask() -> int:
    """The process's umask: reading it means setting it, so it is put back at once (and read at
    the write, not at import, so that importing colorlib never touches process state)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def naming(exc: OSError, path) -> OSError:
    """`exc` as the same kind of OSError (errno, message) naming `path`, the file the caller was
    writing, rather than a temporary name; `exc` itself where it has no errno."""
    if exc.errno is None:
        return exc
    named = OSError(exc.errno, exc.strerror, str(path))  # the subclass of the errno: PermissionError, ...
    named.__cause__ = exc
    return named


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError):  # disk full, read-only, ...: named by the file being written
            raise naming(exc, path) from exc
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


# what a training writes into its run directory besides config.json (and what evaluate adds): a
# folder holding any of these holds (part of) a run, which a new run there would overwrite
RUN_FILES = ("run.json", "history.csv", "epochs.csv", "metrics.json", "checkpoints/last.pt", "checkpoints/best.pt",
             "checkpoints/generator.pt", "samples/gray.png", "samples/truth.png")


def run_files_found(run_dir) -> list[str]:
    """The files of a run (RUN_FILES, samples/epoch_NNNN.png) that `run_dir` holds, by their names in it."""
    run_dir = Path(run_dir)
    found = [name for name in RUN_FILES if (run_dir / name).is_file()]
    return found + [f"samples/epoch_{e:04d}.png" for e in sample_epochs(run_dir)]


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


class _Damaged(Exception):
    """Why a history.csv or epochs.csv is not what the trainer wrote."""


def _parse_table(path: Path, columns: Optional[tuple[str, ...]]) -> tuple[tuple[str, ...], list[list[float]]]:
    """A CSV table as the trainer writes it: a header, then numbered rows of numbers."""
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError:
        raise _Damaged("it holds bytes that are not text") from None
    if not text:
        raise _Damaged("it is empty")
    if not text.endswith("\n"):
        raise _Damaged("its last line is cut off")
    lines = text[:-1].split("\n")
    header = tuple(lines[0].split(","))
    if columns is not None and header != tuple(columns):
        raise _Damaged(f"it has columns {list(header)}, expected {tuple(columns)}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(",")
        if len(fields) != len(header):
            raise _Damaged(f"line {number} has {len(fields)} fields, not {len(header)}")
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            raise _Damaged(f"line {number} is garbled") from None
    if [r[0] for r in rows] != list(range(1, len(rows) + 1)):
        raise _Damaged(f"its rows are not numbered 1 to {len(rows)}")
    return header, rows


def _run_info_count(run_dir: Path, key: str) -> Optional[int]:
    """A count from run.json, where run.json is readable and was written with it (else None)."""
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    value = info.get(key) if isinstance(info, dict) and "history_rows" in info else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _rebuild(run_dir: Path, name: str, reason: str) -> tuple[tuple[str, ...], list[list[float]]]:
    """Rewrite RUN/name (history.csv or epochs.csv) from the rows last.pt carries, with a
    `RunDirRepaired` warning; a `RunDirError` of one line where that is not possible."""
    path, last = run_dir / name, run_dir / "checkpoints" / "last.pt"
    damaged = f"{path} is damaged ({reason})"
    if not last.exists():
        raise RunDirError(f"{damaged} and there is no checkpoint to rebuild it from ({last} does not exist). "
                          f"Restore the file from a copy or train the run again in another run directory.")
    try:
        ckpt = load_checkpoint(last, (CHECKPOINT_FORMAT,))
    except RunDirError as exc:
        raise RunDirError(f"{damaged}, and it cannot be rebuilt: {exc}") from None
    if name == "history.csv":
        if not isinstance(ckpt.get("history"), torch.Tensor):
            raise RunDirError(f"{damaged}, and {last} was written before checkpoints kept the history, so it "
                              f"cannot be rebuilt. Restore the file from a copy or train the run again in another "
                              f"run directory.")
        columns, rows = HISTORY_COLUMNS, ckpt["history"].double().tolist()
        write = lambda: write_history(run_dir, ckpt["history"])  # noqa: E731
    else:
        if "epoch_columns" not in ckpt:
            raise RunDirError(f"{damaged}, and {last} was written before checkpoints kept the epoch table, so "
                              f"it cannot be rebuilt. Restore the file from a copy or train the run again in "
                              f"another run directory.")
        columns, rows = tuple(ckpt["epoch_columns"]), [list(r) for r in ckpt.get("epoch_rows", [])]
        write = lambda: write_epochs(run_dir, columns, rows)  # noqa: E731
    try:
        write()
        done = "rewritten from"
    except OSError as exc:  # a read-only copy of a run: the rows are still used
        done = f"read from (could not rewrite it: {first_line(exc)})"
    warnings.warn(f"{damaged}; {done} {last}, which holds {len(rows)} rows of it", RunDirRepaired, stacklevel=4)
    return columns, rows


def _read_table(run_dir, name: str, columns: Optional[tuple[str, ...]], count_key: str,
                repair: bool) -> Optional[tuple[tuple[str, ...], list[list[float]]]]:
    """history.csv or epochs.csv, checked: a table that cannot be parsed, is shorter than run.json
    says, or is missing while there is a checkpoint, is damaged; it is rebuilt from last.pt when
    `repair`, else refused. None: no table, and none expected."""
    run_dir = Path(run_dir)
    path = run_dir / name
    try:
        if not path.exists():
            expected = _run_info_count(run_dir, count_key) or 0
            if not (run_dir / "checkpoints" / "last.pt").exists() and expected == 0:
                return None
            if name == "epochs.csv" and expected == 0 and not _checkpoint_has_epoch_rows(run_dir):
                return None  # a run from before epochs.csv existed
            raise _Damaged("it is missing")
        header, rows = _parse_table(path, columns)
        expected = _run_info_count(run_dir, count_key)
        if expected is not None and len(rows) < expected:
            raise _Damaged(f"it has {len(rows)} rows where run.json counts {expected}")
        return header, rows
    except _Damaged as exc:
        if not repair:
            raise RunDirError(f"{path} is damaged ({exc}).") from None
        return _rebuild(run_dir, name, str(exc))


def _checkpoint_has_epoch_rows(run_dir: Path) -> bool:
    last = run_dir / "checkpoints" / "last.pt"
    if not last.exists():
        return False
    try:
        return bool(load_checkpoint(last, (CHECKPOINT_FORMAT,)).get("epoch_rows"))
    except RunDirError:
        return False


def read_epochs(run_dir, repair: bool = True) -> dict[str, torch.Tensor]:
    """epochs.csv as one 1-D tensor per column ({} for runs made before it existed). A damaged or
    missing one is rebuilt from last.pt (see `read_history`)."""
    table = _read_table(run_dir, "epochs.csv", None, "epochs_done", repair)
    if table is None:
        return {}
    header, rows = table
    data = torch.tensor(rows, dtype=torch.float64).reshape(-1, len(header))
    return {c: data[:, i] for i, c in enumerate(header)}


def read_history(run_dir, repair: bool = True) -> dict[str, torch.Tensor]:
    """The history as one 1-D tensor per column (empty tensors for a run with no iterations).

    A history.csv that is truncated, garbled, shorter than run.json counts, or missing while the
    run has a checkpoint, is rewritten from the rows last.pt carries, with a `RunDirRepaired`
    warning; where that is not possible (or with repair=False) a `RunDirError` says why."""
    table = _read_table(run_dir, "history.csv", HISTORY_COLUMNS, "history_rows", repair)
    rows = table[1] if table is not None else []
    table = torch.tensor(rows, dtype=torch.float64).reshape(-1, len(HISTORY_COLUMNS))
    return {c: table[:, i] for i, c in enumerate(HISTORY_COLUMNS)}


def history_tensor(run_dir, repair: bool = True) -> torch.Tensor:
    h = read_history(run_dir, repair)
    return torch.stack([h[c] for c in HISTORY_COLUMNS], dim=1).float()


def checkpoint_expected(run_dir) -> bool:
    """Whether run.json says the run has written last.pt (a run stopped before its first
    checkpoint has none, and resuming it starts it over)."""
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(info, dict):
        return False
    return any(isinstance(info.get(k), int) and info[k] > 0 for k in ("epochs_done", "iterations_done"))


# ---------------------------------------------------------------- samples
def save_strip(path: Path, images: torch.Tensor) -> None:
    """uint8 [N, 3, H, W] -> one PNG strip, lossless, viewable in any image viewer (Pillow)."""
    strip = torch.cat(list(images.cpu()), dim=2)  # side by side
    buf = io.BytesIO()
    Image.fromarray(strip.permute(1, 2, 0).contiguous().numpy()).save(buf, format="PNG")
    _atomic_write_bytes(path, buf.getvalue())


def load_strip(path: Path, image_size: int = 32) -> torch.Tensor:
    try:
        with Image.open(path) as png:
            img = torch.from_numpy(np.array(png.convert("RGB"))).permute(2, 0, 1)
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for unreadable, truncated, non-image files
        raise RunDirError(f"sample image {path} is damaged or unreadable ({type(exc).__name__}: "
                          f"{first_line(exc)})") from None
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


def state_dict_mismatch(exc: Exception) -> str:
    """The informative lines of load_state_dict's error ("size mismatch for ...", "Missing key(s) ...")."""
    lines = [line.strip() for line in str(exc).splitlines()[1:3] if line.strip()]
    return "; ".join(lines)[:300] or first_line(exc)


def check_zip(path: Path, what: str, remedy: str, error: type) -> None:
    """`error` naming the file when a PyTorch (zip) file's records fail their CRC-32 check, which
    torch.load skips (a few milliseconds for the 12 MB shipped generator). Files that are not zip
    archives (a legacy torch.save, a truncated or foreign file) are left to torch.load, whose
    errors load_weights_file reports."""
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
        raise error(f"{what} {str(path)!r} is damaged: its zip structure cannot be read "
                    f"({type(exc).__name__}: {first_line(exc)}). {remedy}") from None
    except OSError:  # unreadable: torch.load says so below
        return
    if bad is not None:
        raise error(f"{what} {str(path)!r} is damaged: its record {bad!r} fails its CRC-32 check (its bytes "
                    f"changed after it was written). {remedy}")


def load_weights_file(path, formats: tuple[str, ...], what: str, remedy: str, error: type = None) -> dict:
    """`torch.load(path, weights_only=True)` onto the CPU, with one clear message for each way it
    can fail: the file is missing, damaged (truncated, not a PyTorch file), or another kind of file.
    Shared by checkpoints, data packs and the classifier; their zip records are checked first (check_zip)."""
    error = error or RunDirError
    path = Path(path)
    if not path.exists():
        raise error(f"{what} {str(path)!r} does not exist. {remedy}")
    check_zip(path, what, remedy, error)
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


# ---------------------------------------------------------------- the run lock
LOCK_NAME = "train.lock"
_HELD: dict[str, "weakref.ref[RunLock]"] = {}  # run directory -> this process's lock on it


def _process_start(pid: int) -> Optional[int]:
    """The start time of process `pid` in clock ticks since boot (Linux), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _process_alive(pid: int, start: Optional[int]) -> bool:
    """Whether process `pid` of this host still runs (and is the one that started at `start`)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    except OSError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":  # exited, not yet reaped by its parent
            return False
        return start is None or int(fields[19]) == start
    except (OSError, ValueError, IndexError):
        return True


def _read_lock(path: Path) -> Optional[dict]:
    try:
        owner = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _command_line() -> str:
    """This process's command, as typed: `python -m colorlib train ...` rather than a path to __main__.py."""
    argv = list(sys.argv) or [""]
    first = Path(argv[0])
    argv[0] = f"python -m {first.parent.name}" if first.name == "__main__.py" else first.name
    return " ".join(argv)[:300]


def describe_lock_owner(owner: dict) -> str:
    command = f", `{owner['command']}`" if owner.get("command") else ""
    return (f"process {owner.get('pid', '?')} on {owner.get('host', '?')}, started "
            f"{owner.get('started', '?')}{command}")


class RunLock:
    """RUN/train.lock: one training at a time writes a run directory.

    The file holds the owner's process id, host, start time and command line. It is created
    whole, with a hard link from a finished temporary file, so it is never seen half-written. A
    lock whose process no longer runs on this host (killed, crashed, machine restarted) is stale
    and taken over; a lock from another host cannot be checked, so the message says to delete it
    if that training is gone. Within one process a second Trainer may take over a run directory
    from one that is not training (a notebook cell run again)."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.key = os.path.abspath(self.path)
        self.held = False
        self.training = False  # set by the trainer while it trains
        self._created_dir = False
        self._finalizer = None

    def acquire(self) -> None:
        if self.held:
            return
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "process_start": _process_start(os.getpid()),
              "command": _command_line()}
        try:  # a read-only or full disk, a path through a file: named by the lock the run needs
            if not self.run_dir.exists():
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self._created_dir = True
            fd, tmp = tempfile.mkstemp(dir=self.run_dir, prefix=f".{LOCK_NAME}.", suffix=".tmp")
        except OSError as exc:
            raise naming(exc, self.path) from exc
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
                f.flush()
                os.fsync(f.fileno())
            for _ in range(100):
                if self._link(tmp):
                    break
                owner = _read_lock(self.path)
                if owner is None:  # released in the meantime
                    continue
                if owner == {}:  # unreadable: being written without a link, or damaged
                    if time.time() - self._mtime() < 5:
                        time.sleep(0.05)
                        continue
                    self._break(owner)
                    continue
                if self._mine(owner):
                    break
                if owner.get("host") == me["host"] and isinstance(owner.get("pid"), int) and \
                        not _process_alive(owner["pid"], owner.get("process_start")):
                    self._break(owner)
                    continue
                where = "this host" if owner.get("host") == me["host"] else "another host"
                raise RunDirError(
                    f"{self.run_dir} is in use by another training ({describe_lock_owner(owner)}): two "
                    f"trainings would overwrite each other's files. Wait for it to finish, stop it, or "
                    f"choose another run directory; if that training is no longer running on {where}, "
                    f"delete {self.path}.")
            else:
                raise RunDirError(f"could not lock {self.run_dir}: {self.path} keeps changing. Try again.")
        except OSError as exc:
            raise naming(exc, self.path) from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self.held = True
        _HELD[self.key] = weakref.ref(self)
        self._finalizer = weakref.finalize(self, _release_lock_file, self.path, self.key, None)

    def _link(self, tmp: str) -> bool:
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive creation instead
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(Path(tmp).read_bytes())
            return True

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return time.time()

    def _mine(self, owner: dict) -> bool:
        """A lock of this process, on a run directory no Trainer of it is training: taken over."""
        if owner.get("pid") != os.getpid() or owner.get("host") != socket.gethostname():
            return False
        ref = _HELD.get(self.key)
        other = ref() if ref is not None else None
        if other is not None and other is not self and other.held and other.training:
            return False
        if other is not None and other is not self:
            other.held = False
            if other._finalizer is not None:
                other._finalizer.detach()
        return True

    def _break(self, stale: dict) -> None:
        """Remove a stale lock, unless someone else replaced it meanwhile (a second mutex keeps two
        processes that found the same stale lock from both taking it)."""
        mutex = self.path.with_name(LOCK_NAME + ".break")
        try:
            fd = os.open(mutex, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            try:
                holder = int(mutex.read_text() or 0)
                if holder and not _process_alive(holder, None) or time.time() - mutex.stat().st_mtime > 10:
                    mutex.unlink()  # left by a process killed while breaking
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
            return
        try:
            os.write(fd, str(os.getpid()).encode())
            if _read_lock(self.path) == stale:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                mutex.unlink()

    def release(self) -> None:
        """Remove the lock file (and the run directory, where acquire made it and it stayed empty).
        Also after an acquire that was interrupted (Ctrl-C) between making the file and noting it:
        a lock file of this process that no other lock of it holds is removed."""
        self.held = False
        self.training = False
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        _release_lock_file(self.path, self.key, self)
        if self._created_dir:
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()  # only succeeds when empty


def _release_lock_file(path: Path, key: str, lock: Optional[RunLock]) -> None:
    ref = _HELD.get(key)
    current = ref() if ref is not None else None
    if current is not None and lock is not None and current is not lock:
        return  # another lock of this process took the directory over
    _HELD.pop(key, None)
    owner = _read_lock(path)
    if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_temporary_files(run_dir) -> list[Path]:
    """Delete the temporary files of atomic writes that a killed process left in a run directory
    (call it only while holding the run's lock: then no write of it is in flight)."""
    removed = []
    run_dir = Path(run_dir)
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "samples"):
        for path in folder.glob(".*.tmp"):
            try:
                if path.name.startswith(f".{LOCK_NAME}.") and time.time() - path.stat().st_mtime < 60:
                    continue  # another process trying to lock the run right now
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed
