"""What a Trainer writes into its run directory and reads back; each function takes the trainer `t`.
last.pt holds both networks, both optimizers, the iteration it was taken at and the history rows it
covers, so a run stopped anywhere resumes bitwise, provided it resumes on the same training images in
the same precision: a change of either is refused unless accepted (`accept_changes`).
"""
from __future__ import annotations

import contextlib
import math
import platform
import subprocess
import warnings
from pathlib import Path
from typing import Optional

import torch

from .. import variants
from ..paper.data import to_uint8
from ..runs import rundir
from ..runs.config import ACCEPTABLE_CHANGES, Config, ConfigError
from ..runs.device import device_name
from ..runs.rundir import EPOCH_COLUMNS
from ..variants.cifar_classifier import shape_mismatch


def checkpoint_to_resume(run_dir: Path, cfg: Config) -> Optional[dict]:
    """The run's last.pt (None: the run stopped before its first), its tensors' shapes checked against
    the networks `cfg` describes on the meta device: nothing allocated, so a config.json beside a small
    last.pt cannot ask for GBs."""
    last = run_dir / "checkpoints" / "last.pt"
    if not last.exists():
        if (run_dir / "history.csv").exists():  # written only beside last.pt
            raise rundir.RunDirError(f"{last} is missing; restore it from a copy or train the run again")
        return None
    ckpt = rundir.load_checkpoint(last, (rundir.CHECKPOINT_FORMAT,))
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FAN loads its fixed network's weights into meta tensors: a no-op
        nets = {"generator": variants.build_generator(cfg), "discriminator": variants.build_discriminator(cfg)}
    for name, net in nets.items():
        if problem := shape_mismatch(net.state_dict(), ckpt[name]):
            raise rundir.RunDirError(f"{last} does not fit the {name} its run's config.json describes "
                                     f"({problem}); restore both from a copy or start a new run")
    return ckpt


def accepted(changes) -> frozenset:
    """The changes a resume may accept ("data", "precision"), a name or several; any other is an error."""
    changes = frozenset([changes] if isinstance(changes, str) else changes)
    if unknown := changes - set(ACCEPTABLE_CHANGES):
        raise ConfigError(f"unknown change(s) to accept: {', '.join(sorted(unknown))}; "
                          f"choose from {', '.join(ACCEPTABLE_CHANGES)}")
    return changes


def check_unchanged(t, ckpt: dict) -> None:
    """The same training images and precision as the checkpoint's, or a change `t.accept_changes` names."""
    then, now = ckpt.get("train_data") or {}, t.data_fingerprint
    if (then.get("images"), then.get("sha256")) != (now["images"], now["sha256"]):
        point = "point --data at the images it was trained on"
        if "data" not in t.accept_changes:
            raise ConfigError(f"cannot resume {t.run_dir}: its training images changed ({then.get('images')} then, "
                              f"{now['images']} in {t.data_source} now); {point}, or pass --accept-change data")
        if then.get("images", 0) // t.cfg.batch_size != t.iterations_per_epoch:
            raise ConfigError(f"cannot resume {t.run_dir} on {now['images']} images: an epoch would have another "
                              f"number of iterations; {point}")
        t.accepted.append(f"epoch {t.epoch}: training images changed (accepted)")
    was, used = (ckpt.get("precision") or {}).get("precision"), t.precision["precision"]
    if was != used:
        if "precision" not in t.accept_changes:
            keep = "--set amp=false" if was == "float32" else "a device with bf16"
            raise ConfigError(f"cannot resume {t.run_dir} exactly: it was trained in {was} and would continue "
                              f"in {used} ({t.precision['reason']}); resume with {keep}, or pass --accept-change "
                              f"precision")
        t.accepted.append(f"epoch {t.epoch}: precision changed from {was} to {used} (accepted)")


def restore(t, ckpt: dict, path: Path) -> None:
    t.epoch, t.iteration = int(ckpt["epoch"]), int(ckpt.get("iteration", 0))
    t.accepted = list(ckpt.get("accepted_changes", []))
    check_unchanged(t, ckpt)
    try:
        t.G.load_state_dict(ckpt["generator"])
        t.D.load_state_dict(ckpt["discriminator"])
        t.g_opt.load_state_dict(ckpt["g_opt"])
        t.d_opt.load_state_dict(ckpt["d_opt"])
        if t.average.kept:
            t.average.model.load_state_dict(ckpt["generator_ema"])
    except (KeyError, ValueError, RuntimeError) as exc:  # load_state_dict names the mismatch on its second line
        detail = (str(exc).splitlines()[1:2] or [rundir.first_line(exc)])[0].strip()[:300]
        raise rundir.RunDirError(f"checkpoint {path} does not match this run's networks ({detail})") from None
    iters = t.iterations_per_epoch
    rows = t.epoch * iters + t.iteration
    if ckpt["history"].shape != (rows, len(rundir.HISTORY_COLUMNS)) or not 0 <= t.iteration < iters:
        raise rundir.RunDirError(f"checkpoint {path} is damaged: its history does not cover epoch {t.epoch}, "
                                 f"iteration {t.iteration}; restore it from a copy or train the run again")
    t.history = ckpt["history"][:t.epoch * iters].float()
    t.partial_losses = ckpt["history"][t.epoch * iters:, 2:].float()
    t.epoch_rows = [list(r) for r in ckpt["epoch_rows"]][:t.epoch]
    t.best_fd, t.wall_time = float(ckpt.get("best_fd", math.inf)), float(ckpt.get("wall_time", 0.0))
    if t.cfg.epochs < t.epoch + (1 if t.iteration else 0):
        raise ConfigError(f"cannot resume {t.run_dir} with epochs={t.cfg.epochs}: its checkpoint already holds "
                          f"{t.epoch} epochs{f' and {t.iteration} iterations' if t.iteration else ''}; ask for "
                          f"epochs={t.epoch + (1 if t.iteration else 0)} or more")


def history_rows(t, epoch: int, losses: torch.Tensor) -> torch.Tensor:
    """History rows (HISTORY_COLUMNS) of the first len(losses) iterations of 0-based `epoch`."""
    first, n = epoch * t.iterations_per_epoch, losses.shape[0]
    cols = torch.stack([torch.arange(first + 1, first + n + 1, dtype=torch.float32),
                        torch.full((n,), float(epoch + 1))], dim=1)
    return torch.cat([cols, losses.float().cpu()], dim=1)


def kept_history(t) -> torch.Tensor:
    """The finished epochs' rows and those of the epoch in progress."""
    return torch.cat([t.history, history_rows(t, t.epoch, t.partial_losses)]) if t.iteration else t.history


def save_checkpoint(t, status: Optional[str] = None) -> None:
    """last.pt first, then what describes it: history.csv, epochs.csv, run.json (and generator.pt at the end)."""
    history = kept_history(t)
    ckpt = {"format": rundir.CHECKPOINT_FORMAT, "config": t.cfg.to_dict(), "epoch": t.epoch,
            "iteration": t.iteration, "history": history, "epoch_columns": list(EPOCH_COLUMNS),
            "epoch_rows": t.epoch_rows, "wall_time": t.wall_time, "best_fd": t.best_fd,
            "generator": t.G.state_dict(), "discriminator": t.D.state_dict(),
            "g_opt": t.g_opt.state_dict(), "d_opt": t.d_opt.state_dict(),
            "train_data": t.data_fingerprint, "precision": t.precision, "threads": t.threads,
            "accepted_changes": t.accepted}
    if t.average.kept:
        ckpt["generator_ema"] = t.average.model.state_dict()
    rundir.atomic_save(ckpt, t.run_dir / "checkpoints" / "last.pt")
    t.saved = (t.epoch, t.iteration)
    if t.epoch == t.cfg.epochs and not t.iteration:
        save_generator(t)
    write_tables(t, history)
    write_run_info(t, status or ("running" if t.epoch < t.cfg.epochs else "finished"))


def write_tables(t, history: torch.Tensor) -> None:
    rundir.write_history(t.run_dir, history)
    rundir.write_epochs(t.run_dir, EPOCH_COLUMNS, t.epoch_rows)


def save_generator(t, path: Optional[Path] = None, **extra) -> None:
    """generator.pt (or best.pt), what users colorize with: the weight average where kept."""
    rundir.atomic_save({"format": rundir.GENERATOR_FORMAT, "config": t.cfg.to_dict(), "epoch": t.epoch, **extra,
                        "generator": t.G_eval.state_dict()}, path or t.run_dir / "checkpoints" / "generator.pt")


def write_first_files(t) -> None:
    """config.json and the sample strips (resuming: the tables the checkpoint holds too). A new
    run that cannot write them (a full or read-only disk) leaves nothing behind."""
    samples = t.run_dir / "samples"
    try:
        rundir.write_json(t.run_dir / "config.json", t.cfg.to_dict())
        if t.resuming and t.epoch + t.iteration:
            write_tables(t, kept_history(t))
        if not (samples / "truth.png").exists():
            rundir.save_strip(samples / "truth.png", t.sample_images)
            rundir.save_strip(samples / "gray.png", to_uint8(t.sample_gray.expand(-1, 3, -1, -1)))
    except OSError:
        if not t.resuming:
            for path in (t.run_dir / "config.json", samples / "truth.png", samples / "gray.png", samples):
                with contextlib.suppress(OSError):
                    path.rmdir() if path == samples else path.unlink(missing_ok=True)
        raise


def write_run_info(t, status: str, error: Optional[str] = None) -> None:
    """run.json: always what last.pt holds, whatever the trainer reached in memory."""
    epoch, iteration = t.saved
    rows = epoch * t.iterations_per_epoch + iteration
    info = {"status": status, "epochs_done": epoch, "iteration_in_epoch": iteration, "epochs": t.cfg.epochs,
            "iterations_done": rows, "history_rows": rows, "wall_time_s": round(t.wall_time, 2),
            "device": str(t.device), "device_name": device_name(t.device), "torch": torch.__version__,
            "python": platform.python_version(), "data_source": t.data_source,
            "train_images": int(t.images.shape[0]), "git_commit": t.commit, "train_data": t.data_fingerprint,
            "precision": t.precision, "threads": t.threads}
    if t.accepted:
        info["accepted_changes"] = t.accepted
    if error:
        info["error"] = error
    rundir.write_json(t.run_dir / "run.json", info)


def kept_message(t) -> str:
    """What the run directory keeps, for the line an interruption ends with."""
    epoch, iteration = t.saved
    if not (t.run_dir / "checkpoints" / "last.pt").exists():
        return f"no checkpoint yet; --resume starts {t.run_dir} over with the same configuration"
    held = f"{epoch} of {t.cfg.epochs} epochs" + (f" and {iteration} iterations" if iteration else "")
    return f"{t.run_dir / 'checkpoints' / 'last.pt'} keeps {held}; continue with --resume"


def git_commit() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
