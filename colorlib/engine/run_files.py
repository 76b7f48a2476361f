"""What a Trainer writes into its run directory and reads back from it: last.pt, generator.pt,
history.csv, epochs.csv and run.json, and resuming from last.pt.

Resuming is exact: a checkpoint holds both networks and both optimizers, the iteration it was
taken at within its epoch and the history rows it covers (a partial epoch's losses included), so
a run stopped at any iteration and resumed ends with the same weights and history as one that
never stopped, provided it resumes on the same training images in the same precision: both are
recorded in last.pt and run.json (`train_data`: count and SHA-256 of the pixels; `precision`:
bfloat16 or float32 and why), and a change of either is refused on resume unless asked for
(`check_unchanged`). run.json always describes what last.pt holds. Each function takes the
trainer `t` whose state it saves or restores.
"""
from __future__ import annotations

import math
import platform
import subprocess
import warnings
from pathlib import Path
from typing import Optional

import torch

from ..runs import rundir
from ..runs.config import ConfigError
from ..runs.device import device_name
from . import schedule
from .precision import Autocast, cpu_has_bf16_units, discriminator_autocast, pinned_cpu_bf16

# the losses of one iteration, in the order of history.csv's columns after (iteration, epoch)
LOSS_NAMES = ("g_total", "g_adv", "g_content", "d_real", "d_fake")
# the columns of epochs.csv: one row per epoch
EPOCH_COLUMNS = ("epoch", "d_wins_share", "val_psnr_db", "val_colourfulness", "val_fd", "lr_g", "lr_d")
# what a resume may be asked to accept (Trainer(accept_changes=...), `train --accept-change`)
CHANGES = ("data", "precision")


def accepted(changes) -> frozenset:
    """The changes a resume accepts, checked against CHANGES (a ConfigError names the valid ones)."""
    changes = frozenset([changes] if isinstance(changes, str) else changes or ())
    unknown = sorted(changes - set(CHANGES))
    if unknown:
        raise ConfigError(f"unknown change(s) to accept: {', '.join(unknown)}; choose from {', '.join(CHANGES)}")
    return changes


def load_checkpoint(t, path: Path) -> None:
    try:
        ckpt = rundir.load_checkpoint(path, (rundir.CHECKPOINT_FORMAT,))
    except rundir.RunDirError as exc:  # rundir's remedy is for any checkpoint; here it is this run's
        reason = str(exc).split(" Use another checkpoint")[0].rstrip(".")
        raise rundir.RunDirError(f"cannot resume {t.run_dir}: {reason}. Restore {path} from a copy, or train "
                                 f"the run again in another run directory; nothing was changed here.") from None
    check_unchanged(t, ckpt)
    try:
        t.G.load_state_dict(ckpt["generator"])
        t.D.load_state_dict(ckpt["discriminator"])
        t.g_opt.load_state_dict(ckpt["g_opt"])
        t.d_opt.load_state_dict(ckpt["d_opt"])
        for group in t.g_opt.param_groups + t.d_opt.param_groups:
            group["lr"] = schedule.lr_value(t, float(group["lr"]))  # saved on the CPU: back on the device
        if t.G_ema is not None:
            t.G_ema.load_state_dict(ckpt["generator_ema"])
    except (KeyError, RuntimeError) as exc:
        raise rundir.RunDirError(f"checkpoint {path} does not match this run's networks "
                                 f"({rundir.state_dict_mismatch(exc)})") from None
    t.epoch = int(ckpt["epoch"])
    t.iteration = int(ckpt.get("iteration", 0))
    t.wall_time = float(ckpt.get("wall_time", 0.0))
    t.epoch_rows = [list(r) for r in ckpt.get("epoch_rows", [])][:t.epoch]
    t.best_fd = float(ckpt.get("best_fd", math.inf))
    iters = t.iterations_per_epoch
    rows = t.epoch * iters + t.iteration
    if "history" in ckpt:  # the rows this checkpoint covers travel with it
        history = ckpt["history"]
        if (not isinstance(history, torch.Tensor) or history.shape != (rows, len(rundir.HISTORY_COLUMNS))
                or not 0 <= t.iteration <= iters):
            raise rundir.RunDirError(f"checkpoint {path} is damaged: its history does not cover epoch "
                                     f"{t.epoch}, iteration {t.iteration}. Restore it from a copy, or train "
                                     f"the run again in another run directory.")
    else:  # written before checkpoints kept the history: history.csv, rows after the checkpoint redone
        history = rundir.history_tensor(t.run_dir, repair=False)
        history = history[history[:, 1] <= t.epoch]
        if history.shape[0] != rows:
            raise rundir.RunDirError(
                f"{t.run_dir / 'history.csv'} holds {history.shape[0]} rows up to epoch {t.epoch}, "
                f"where checkpoint {path} covers {rows}, and this older checkpoint has no copy to "
                f"rebuild it from. Restore the file from a copy or train the run again in another run "
                f"directory.")
    t.history = history[:t.epoch * iters].float()
    t.partial_losses = history[t.epoch * iters:, 2:].float()
    t.saved = (t.epoch, t.iteration, rows)


def check_unchanged(t, ckpt: dict) -> None:
    """Resuming continues the run exactly only on the training images and in the precision its
    checkpoint was trained with. A change of either is refused with a ConfigError saying what
    changed and what to do, unless `t.accept_changes` names it; an accepted change is recorded
    (`t.accepted`, carried by later checkpoints and run.json). Checkpoints from before these
    records are not checked."""
    notes = list(ckpt.get("accepted_changes", []))
    then, now = ckpt.get("train_data"), t.data_fingerprint
    if isinstance(then, dict) and (then.get("images"), then.get("sha256")) != (now["images"], now["sha256"]):
        if "data" not in t.accept_changes:
            raise ConfigError(data_changed_message(t, then, now))
        if then.get("images", 0) // t.cfg.batch_size != t.iterations_per_epoch:
            raise ConfigError(f"cannot resume {t.run_dir} on {now['images']} training images: an epoch would "
                              f"have {t.iterations_per_epoch} iterations where the checkpoint's had "
                              f"{then['images'] // t.cfg.batch_size}, so its history cannot continue. Point "
                              f"--data at the images it was trained on, or train a new run in another run "
                              f"directory; nothing was changed here.")
        notes.append(f"epoch {ckpt['epoch']}, iteration {ckpt.get('iteration', 0)}: training images changed from "
                     f"{describe_data(then)} to {describe_data(now)} (accepted)")
    was = ckpt.get("precision")
    if isinstance(was, dict) and was.get("precision") != t.precision["precision"] and not keep_precision(t, was):
        if "precision" not in t.accept_changes:
            raise ConfigError(precision_changed_message(t, was))
        notes.append(f"epoch {ckpt['epoch']}, iteration {ckpt.get('iteration', 0)}: precision changed from "
                     f"{was['precision']} to {t.precision['precision']} ({t.precision['reason']}; accepted)")
    keep_threads(t, ckpt)
    t.accepted = notes


def keep_precision(t, was: dict) -> bool:
    """On a CPU whose precision nobody pinned, bf16 or float32 is only a speed choice, made by a
    seconds-long calibration that a busy machine can tip either way: a resumed run keeps the
    precision it was trained in wherever this CPU can compute it, so it continues exactly. A
    precision asked for ($COLORLIB_CPU_BF16, amp=false) is a change: check_unchanged's to refuse."""
    if t.device.type != "cpu" or not t.cfg.amp or pinned_cpu_bf16() is not None:
        return False
    bf16 = was.get("precision") == "bfloat16"
    if was.get("precision") not in ("bfloat16", "float32") or (bf16 and not cpu_has_bf16_units()):
        return False
    t.autocast = Autocast("cpu" if bf16 else None, f"kept from the checkpoint: {was.get('reason')}")
    t.autocast_d = discriminator_autocast(t.cfg.d_norm, t.autocast)
    t.precision = {"precision": t.autocast.precision, "reason": t.autocast.reason}
    return True


def keep_threads(t, ckpt: dict) -> None:
    """threads=0 resumes with the thread count the run was trained with, not today's choice: the
    count sets how each convolution's sums are split, so it decides the last bits of every step."""
    was = ckpt.get("threads")
    if t.cfg.threads or not isinstance(was, dict) or was.get("threads") == t.threads["threads"]:
        return
    t.settings.change("num_threads", int(was["threads"]))
    t.threads = {"threads": int(was["threads"]), "reason": f"kept from the checkpoint ({was.get('reason')}) "
                 f"so the run continues exactly; --set threads=N to change it"}


def describe_data(record: dict) -> str:
    held = f" of {record['available']}" if record.get("available") is not None else ""
    return f"{record.get('images')} images{held} (sha256 {str(record.get('sha256'))[:12]})"


def data_changed_message(t, then: dict, now: dict) -> str:
    why = ""
    if then.get("available") is not None and now.get("available") is not None \
            and then["available"] != now["available"]:
        fewer = now["available"] < then["available"]
        why = (f": its training split holds {now['available']} images where it held {then['available']} "
               f"(images were {'removed' if fewer else 'added'})")
    return (f"cannot resume {t.run_dir}: its training images changed{why}. The run was trained on "
            f"{describe_data(then)} and {t.data_source} now gives {describe_data(now)}, so it would not continue "
            f"the same run. Point --data at the images it was trained on, or pass --accept-change data "
            f"(accept_changes=('data',)) to continue on these; nothing was changed here.")


def precision_changed_message(t, was: dict) -> str:
    now = t.precision
    if was["precision"] == "float32":
        keep = "--set amp=false"
    elif t.device.type == "cpu":
        keep = "--set amp=true and $COLORLIB_CPU_BF16=1"
    else:
        keep = "amp=true on a device with bfloat16 (CUDA, or a CPU with $COLORLIB_CPU_BF16=1)"
    return (f"cannot resume {t.run_dir} exactly: it was trained in {was['precision']} ({was.get('reason')}) and "
            f"would continue in {now['precision']} ({now['reason']}). Resume with {keep} to keep "
            f"{was['precision']}, or pass --accept-change precision (accept_changes=('precision',)) to continue "
            f"in {now['precision']}; nothing was changed here.")

def check_planned_epochs(t) -> None:
    """A resumed run cannot be planned shorter than what its checkpoint holds."""
    least = t.epoch + (1 if t.iteration else 0)
    if t.cfg.epochs < least:
        held = f"{t.epoch} epoch{'s' if t.epoch != 1 else ''}"
        if t.iteration:
            held += f" and {t.iteration} iterations of epoch {t.epoch + 1}"
        raise ConfigError(f"cannot resume {t.run_dir} with epochs={t.cfg.epochs}: its checkpoint "
                          f"already holds {held}. Ask for epochs={least} or more; the run was left as it was.")


def save_checkpoint(t, status: Optional[str] = None) -> None:
    """last.pt first, then the files that describe it: history.csv, epochs.csv, run.json.

    The checkpoint carries the history rows it covers (those of a partial epoch included,
    when it is saved mid-epoch), so a kill between two of these files leaves last.pt ahead,
    and resuming rewrites the others from it; read_history repairs a damaged history.csv
    from it too."""
    ckpt_dir = t.run_dir / "checkpoints"
    history = kept_history(t)
    ckpt = {"format": rundir.CHECKPOINT_FORMAT, "config": t.cfg.to_dict(), "epoch": t.epoch,
            "iteration": t.iteration, "history": history, "epoch_columns": list(EPOCH_COLUMNS),
            "wall_time": t.wall_time, "generator": t.G.state_dict(),
            "discriminator": t.D.state_dict(), "g_opt": t.g_opt.state_dict(),
            "d_opt": t.d_opt.state_dict(), "epoch_rows": t.epoch_rows, "best_fd": t.best_fd,
            "train_data": t.data_fingerprint, "precision": t.precision, "threads": t.threads,
            "accepted_changes": t.accepted}
    if t.G_ema is not None:
        ckpt["generator_ema"] = t.G_ema.state_dict()
    rundir.atomic_save(rundir.to_cpu(ckpt), ckpt_dir / "last.pt")
    t.saved = (t.epoch, t.iteration, int(history.shape[0]))
    if t.epoch == t.cfg.epochs and not t.iteration:
        save_generator(t)
    write_tables(t, history)
    write_run_info(t, status or ("running" if t.epoch < t.cfg.epochs else "finished"))

def save_generator(t) -> None:
    """generator.pt, what users colorize with: the EMA generator when kept."""
    rundir.atomic_save(rundir.to_cpu({"format": rundir.GENERATOR_FORMAT, "config": t.cfg.to_dict(),
                                      "epoch": t.epoch, "generator": t.G_eval.state_dict()}),
                       t.run_dir / "checkpoints" / "generator.pt")

def history_rows(t, epoch: int, losses: torch.Tensor) -> torch.Tensor:
    """History rows (HISTORY_COLUMNS) of the first len(losses) iterations of 0-based `epoch`."""
    first, n = epoch * t.iterations_per_epoch, losses.shape[0]
    cols = torch.stack([torch.arange(first + 1, first + n + 1, dtype=torch.float32),
                        torch.full((n,), float(epoch + 1))], dim=1)
    return torch.cat([cols, losses.float().cpu()], dim=1)

def kept_history(t) -> torch.Tensor:
    """The finished epochs' rows and those of the partial epoch in progress."""
    if not t.iteration:
        return t.history
    return torch.cat([t.history, history_rows(t, t.epoch, t.partial_losses)])

def write_tables(t, history: torch.Tensor, repair_note: bool = False) -> None:
    """history.csv and epochs.csv as the checkpoint holds them. With repair_note (on resume),
    a file that was not a shorter or longer version of that (damaged) is named in a warning."""
    files = {"history.csv": lambda: rundir.write_history(t.run_dir, history),
             "epochs.csv": lambda: rundir.write_epochs(t.run_dir, EPOCH_COLUMNS, t.epoch_rows)}
    for name, write in files.items():
        path = t.run_dir / name
        before = path.read_bytes() if repair_note and path.exists() else None
        write()
        if not repair_note:
            continue
        after = path.read_bytes().splitlines()
        old = before.splitlines() if before is not None else None
        shorter = min(len(after), len(old)) if old is not None else 0
        if old is None and len(after) > 1:
            reason = "it was missing"
        elif old is not None and old[:shorter] != after[:shorter]:
            reason = "it did not match the checkpoint"
        else:
            continue
        warnings.warn(f"{path} was damaged ({reason}); rewritten from {t.run_dir / 'checkpoints' / 'last.pt'}",
                      rundir.RunDirRepaired, stacklevel=2)

def write_run_info(t, status: str, error: Optional[str] = None) -> None:
    """run.json: always what last.pt holds (epochs_done, and iteration_in_epoch for a run saved
    in the middle of an epoch), whatever the trainer had reached in memory."""
    if not t.dist.is_main:
        return
    epoch, iteration, rows = getattr(t, "saved", (0, 0, 0))
    info = {
        "status": status, "epochs_done": epoch, "iteration_in_epoch": iteration, "epochs": t.cfg.epochs,
        "iterations_done": rows, "history_rows": rows, "wall_time_s": round(t.wall_time, 2),
        "device": str(t.device), "device_name": device_name(t.device),
        "world_size": t.dist.world_size, "torch": torch.__version__, "python": platform.python_version(),
        "data_source": getattr(t, "data_source", None), "train_images": int(t.images.shape[0])
        if hasattr(t, "images") else None, "git_commit": t.commit,
        "train_data": getattr(t, "data_fingerprint", None), "precision": getattr(t, "precision", None),
        "threads": getattr(t, "threads", None),
    }
    if getattr(t, "accepted", None):
        info["accepted_changes"] = t.accepted
    if error:
        info["error"] = error
    rundir.write_json(t.run_dir / "run.json", info)



def kept_message(t) -> str:
    epoch, iteration, _ = t.saved
    if not (t.run_dir / "checkpoints" / "last.pt").exists():
        return (f"no checkpoint was written yet; continue with --resume (resume=True), which starts "
                f"{t.run_dir} over from its first iteration with the same configuration")
    held = f"{epoch} of {t.cfg.epochs} epochs"
    if iteration:
        held += f" and {iteration} of {t.iterations_per_epoch} iterations of epoch {epoch + 1}"
    return (f"{t.run_dir / 'checkpoints' / 'last.pt'} keeps {held} (run.json agrees); "
            f"continue with --resume (resume=True)")


def diverged_message(t, epoch: int, it: int, values: torch.Tensor) -> str:
    """What to say when a loss of 0-based `epoch`, iteration `it` is not finite: what is kept, what to do."""
    detail = ", ".join(f"{k}={v:.4g}" for k, v in zip(LOSS_NAMES, values.tolist()))
    saved_epoch, saved_iteration, _ = t.saved
    after = (f"after epoch {saved_epoch}" if not saved_iteration
             else f"epoch {saved_epoch + 1}, iteration {saved_iteration}")
    kept = (f"The last good checkpoint ({after}) is kept in {t.run_dir / 'checkpoints'}."
            if (t.run_dir / "checkpoints" / "last.pt").exists() else "No checkpoint had been written yet.")
    msg = (f"training diverged in epoch {epoch + 1}, iteration {it + 1}: a loss is not finite ({detail}). "
           f"{kept} Lower the learning rate (lr={t.cfg.lr:g}) and start a new run.")
    return msg


def save_if_best(t, val: dict) -> None:
    """best.pt: the generator of the epoch with the lowest validation feature distance so far."""
    fd = val.get("feature_fd")
    if fd is not None and math.isfinite(fd) and fd < t.best_fd:
        t.best_fd = fd
        rundir.atomic_save(rundir.to_cpu({"format": rundir.GENERATOR_FORMAT, "config": t.cfg.to_dict(),
                                          "epoch": t.epoch, "validation": val, "generator": t.G_eval.state_dict()}),
                           t.run_dir / "checkpoints" / "best.pt")


def git_commit() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
