"""Training: the paper's schedule (Sec. III-D, IV-B), fast, resumable and safe to interrupt.

One iteration, as in the paper: the generator colorizes a batch of 50 grayscale images once;
the discriminator is updated twice on (gray, real colour) vs (gray, generated colour); then
the generator is updated once on eq. (5). Adam keeps PyTorch's defaults (lr 1e-3, betas
0.9/0.999), the paper's "default parameters".

Speed without changing the maths (beyond bf16 rounding): the whole dataset sits on the
training device as uint8 and batches are gathered by a shuffled index; bf16 autocast runs on
CUDA and on CPUs with bf16 units; on CUDA we add channels_last, fused Adam, and capture one
entire iteration (three optimizer steps) as a CUDA graph, so a
100-epoch run is bounded by the GPU, not by Python. The host only synchronises when the
progress bar is updated and at the end of each epoch.

Resuming is exact: the epoch order is a pure function of (seed, epoch), and a checkpoint
holds both networks and both optimizers, the iteration it was taken at within its epoch and
the history rows it covers (a partial epoch's losses included), so a run stopped at any
iteration and resumed ends with the same weights and history as one that never stopped. Ctrl-C
is held until the iteration in progress is done and the run is saved there (Trainer.iterate);
run.json always describes what last.pt holds; RUN/train.lock keeps a second training out.

Distributed: under `torchrun` each rank trains on its shard of every global batch with
DistributedDataParallel; on GPUs batch norm statistics are synchronised across ranks
(SyncBatchNorm) so that N processes compute what one process does on the whole batch. PyTorch's
SyncBatchNorm has no CPU kernel, so multi-process CPU runs (gloo, for testing) keep per-rank
statistics, which is plain DDP's behaviour; with instance or no normalization the N-process
step equals the one-process step. Only rank 0 writes the run directory.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from . import rundir
from .config import Config, ConfigError, config_from_dict
from .color import rgb_to_ycbcr
from .data import epoch_order, load_split, to_model_range, to_uint8
from .checkpoints import load_generator, state_dict_mismatch  # noqa: F401 (colorlib.training.load_generator)
from .device import device_name, pick_device  # noqa: F401 (re-exported)
from .precision import autocast_for
from .losses import discriminator_loss, generator_adversarial_loss, generator_loss, r1_penalty
from .models import build_discriminator, build_generator

# fields that may change when a run is resumed (see run_config): they change speed or bookkeeping, not the maths
RESUMABLE_FIELDS = {"epochs", "device", "threads", "log_every", "checkpoint_every", "amp", "compile",
                    "cuda_graphs", "channels_last", "data", "data_root"}
LOSS_NAMES = ("g_total", "g_adv", "g_content", "d_real", "d_fake")
# "D wins outright" in an iteration when its two BCE terms sum below this: it then gives the
# right answer with ~99.5% confidence on both real and generated pairs, and G's adversarial
# gradient vanishes. The share of such iterations per epoch is the collapse statistic.
D_WINS_LOSS = 0.01
EPOCH_COLUMNS = ("epoch", "d_wins_share", "val_psnr_db", "val_colourfulness", "val_fd", "lr_g", "lr_d")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training; the message says what the run directory keeps (see Trainer.iterate)."""


class DeferredInterrupt:
    """While active (a `with` block), Ctrl-C (SIGINT) is noted instead of raised, so that the
    trainer stops at the next iteration boundary, where the run can be saved exactly; a second
    Ctrl-C raises KeyboardInterrupt at once. Active only in the main thread and only where SIGINT
    has Python's default handler (as in a terminal or a Jupyter cell); elsewhere it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self.broke = False  # a KeyboardInterrupt left a `with` block: its work may be half done
        self._previous = None

    def __enter__(self) -> "DeferredInterrupt":
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.broke = self.broke or (kind is not None and issubclass(kind, KeyboardInterrupt))
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _note(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("colorlib: stopping after this iteration to save the run there (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


@dataclass
class Dist:
    """This process's place in a torchrun job (world_size 1 without torchrun)."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Dist":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))


def run_config(run_dir, cfg: Config | None = None, overrides: dict | None = None,
               resume: bool | str = False, *, main_process: bool = True) -> tuple[Config, bool]:
    """The configuration a training into `run_dir` uses, and whether it continues the run there:
    (config, resuming). Every way in (`Trainer`, `train`, the command line's `train --resume`,
    `baselines.run_baselines`, `packing.make_trainers`) decides by these rules.

    resume=False, a new run: `cfg` (required) with `overrides` applied. A directory that already
    holds a run (RUN/config.json) is refused (`rundir.RunDirError`), nothing overwritten.

    resume=True, continue the run in `run_dir`: it must hold one (else `rundir.RunDirError`).
    The run's own config.json wins. Only the fields in RESUMABLE_FIELDS (length, device, speed
    and bookkeeping options, where the data are read from) may change, taken from `cfg` when
    given and then from `overrides`; any other field of theirs that differs from config.json
    (a maths field: lr, norm, seed, ...) is refused with a `ConfigError` naming it ("preset" is
    a label and is never compared). With neither, the run continues exactly as configured.

    resume="auto": as resume=True when `run_dir` holds a run, with `cfg` ignored (it describes
    only a new run): loops over many runs (baselines, sweeps) continue each as it was planned,
    including epochs a packed sweep fitted to its time budget; `overrides` still apply. As
    resume=False otherwise.

    A run stopped before its first checkpoint has a config.json but no last.pt: resuming it
    starts it over from its first iteration with that configuration. What the checkpoint holds
    is checked by the Trainer when it loads it: a missing last.pt that run.json says was written
    is an error, and `epochs` cannot be planned below what the checkpoint already holds.

    main_process=False (the other ranks of a torchrun job) skips the refusal of an existing
    directory for a new run: rank 0 may already have written it."""
    if resume not in (False, True, "auto"):
        raise ValueError(f"resume must be False, True or 'auto', not {resume!r}")
    run_dir = Path(run_dir)
    overrides = dict(overrides or {})
    exists = rundir.is_run_dir(run_dir)
    if resume == "auto":
        resume, cfg = exists, (None if exists else cfg)
    if not resume:
        if cfg is None:
            raise ConfigError(f"a new run in {run_dir} needs a configuration (cfg)")
        if exists and main_process:
            info = rundir.read_json(run_dir / "run.json") if (run_dir / "run.json").exists() else {}
            raise rundir.RunDirError(
                f"{run_dir} already holds a run ({info.get('epochs_done', '?')} of "
                f"{info.get('epochs', '?')} epochs, status {info.get('status', 'unknown')}). Pass --resume "
                f"(resume=True) to continue it, or choose another run directory; nothing was overwritten.")
        return (config_from_dict({**cfg.to_dict(), **overrides}) if overrides else cfg), False
    if not exists:
        raise rundir.RunDirError(f"cannot resume: {run_dir} holds no run (no config.json). "
                                 f"Start a new run there without --resume.")
    saved = rundir.read_config(run_dir)
    asked = {**(cfg.to_dict() if cfg is not None else {}), **overrides}
    changed = sorted(k for k, v in asked.items()
                     if k != "preset" and k not in RESUMABLE_FIELDS and v != getattr(saved, k))
    if changed:
        raise ConfigError(f"cannot resume {run_dir} with different {', '.join(changed)}: "
                          f"only {', '.join(sorted(RESUMABLE_FIELDS))} may change. "
                          f"Start a new run directory for a different configuration.")
    kept = {k: v for k, v in asked.items() if k in RESUMABLE_FIELDS}
    return (config_from_dict({**saved.to_dict(), **kept}) if kept else saved), True


# Process-wide torch settings a Trainer may change, as (read, write) pairs. A Trainer changes them
# when it is built and puts back, on close(), each one that still holds its value (see Trainer).
TORCH_SETTINGS = {
    "num_threads": (torch.get_num_threads, torch.set_num_threads),
    "cudnn.benchmark": (lambda: torch.backends.cudnn.benchmark,
                        lambda v: setattr(torch.backends.cudnn, "benchmark", v)),
    "cuda.matmul.allow_tf32": (lambda: torch.backends.cuda.matmul.allow_tf32,
                               lambda v: setattr(torch.backends.cuda.matmul, "allow_tf32", v)),
    "cudnn.allow_tf32": (lambda: torch.backends.cudnn.allow_tf32,
                         lambda v: setattr(torch.backends.cudnn, "allow_tf32", v)),
}


class Trainer:
    """Owns the networks, optimizers, data and run directory of one training run.

    `Trainer(cfg, run_dir, resume=...)`: which configuration is used follows `run_config`:
    resume=False starts `cfg` as a new run; resume=True continues the run in `run_dir`, whose
    config.json wins, and `cfg` may then be None (continue exactly as configured) or a config
    that differs from it only in RESUMABLE_FIELDS; resume="auto" continues the run there if any
    (its own configuration), else starts `cfg`.

    Process-wide state: the Trainer builds its networks from `cfg.seed` without disturbing the
    caller's random numbers (the global generator is forked for the construction). From
    construction to `close()` it holds the settings it trains with: `cfg.threads` (when set) and,
    on CUDA, cuDNN autotuning and TF32 matmuls; `close()` (or leaving a `with Trainer(...)`
    block; `train` does it) puts each back as it was, unless something else changed it since.
    Under torchrun the process group and the current CUDA device are necessarily global: the
    process is the rank; close() leaves the group.

    One training iteration is `train_step(index)` (the batch picked from the training images
    by index, as `fit` does) or `step(gray, rgb)` (a batch given)."""

    def __init__(self, cfg: Config | None, run_dir, resume: bool | str = False, progress: bool = True,
                 dist: Optional[Dist] = None, epoch_lines: bool = False, data_cache: Optional[dict] = None):
        """data_cache: a dict shared by trainers packed into one process (see packing.py), so
        that they decode the data, and hold it on the device, once.

        The run directory is locked (RUN/train.lock) from here until training ends, on every
        path out: a second training into it is refused, naming the first."""
        self.dist = dist or Dist.from_env()
        self.run_dir = Path(run_dir)
        self.progress = progress and self.dist.is_main
        self.epoch_lines = epoch_lines and self.dist.is_main  # one log line per epoch, for batch logs
        self.data_cache = data_cache if data_cache is not None else {}
        self.commit = git_commit()  # once: run.json is rewritten at every checkpoint
        self._changed_settings: dict = {}  # TORCH_SETTINGS name -> (value before, value set)
        self.lock = self._lock_run_dir()
        try:
            with torch.random.fork_rng(devices=[]):  # seeded here; the caller's generator is left as it was
                self.cfg, self.resuming = run_config(self.run_dir, cfg, resume=resume,
                                                     main_process=self.dist.is_main)
                self._start_device()
                self._build_networks()
                self._build_optimizers()
                self._reset_progress()
                self._load_data()
                self._restore_or_start()
                self._wrap_networks()
                self._write_run_files()
        except BaseException:
            self._restore_torch_settings()
            self.release_lock()
            raise

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(wait=kind is None)

    def release_lock(self) -> None:
        if getattr(self, "lock", None) is not None:
            self.lock.release()

    # ------------------------------------------------------------ setup, in order
    def _lock_run_dir(self) -> Optional[rundir.RunLock]:
        """Take RUN/train.lock (rank 0 only) and remove what a killed training left half written."""
        if not self.dist.is_main:
            return None
        lock = rundir.RunLock(self.run_dir)
        lock.acquire()
        rundir.remove_temporary_files(self.run_dir)  # left by a training that was killed
        return lock

    def _start_device(self) -> None:
        """The device, the process-wide settings training runs with, and the torchrun process group."""
        self.device = pick_device(self.cfg.device)
        cuda = self.device.type == "cuda"
        if self.cfg.threads:
            self._change_torch_setting("num_threads", self.cfg.threads)
        if self.dist.world_size > 1:
            self._init_process_group()
        if cuda:
            self._change_torch_setting("cudnn.benchmark", True)
            self._change_torch_setting("cuda.matmul.allow_tf32", True)
            self._change_torch_setting("cudnn.allow_tf32", True)
        self.use_graphs = cuda and self.cfg.cuda_graphs and self.dist.world_size == 1
        self.memory_format = torch.channels_last if self.cfg.channels_last else torch.contiguous_format
        self.autocast = autocast_for(self.device) if self.cfg.amp else contextlib.nullcontext
        # spectral normalization estimates sigma by power iteration on every forward; under bf16
        # autocast its matrix-vector products round to 8 bits, so a spectral-norm D runs in fp32
        # (it is small: about a tenth of an iteration's arithmetic)
        self.autocast_d = contextlib.nullcontext if self.cfg.d_norm == "spectral" else self.autocast

    def _change_torch_setting(self, name: str, value) -> None:
        read, write = TORCH_SETTINGS[name]
        before = read()
        if before != value:
            write(value)
            self._changed_settings.setdefault(name, (before, value))

    def _restore_torch_settings(self) -> None:
        """Put back each process-wide setting this trainer changed, unless something (another
        trainer, the user) has set it to another value since."""
        for name, (before, value) in self._changed_settings.items():
            read, write = TORCH_SETTINGS[name]
            if read() == value:
                write(before)
        self._changed_settings = {}

    def _build_networks(self) -> None:
        """G and D from cfg.seed, on the device (SyncBatchNorm under torchrun on GPUs), and G's
        exponential moving average when cfg.ema_decay > 0."""
        cfg = self.cfg
        # the CPU generator only (torch.manual_seed would seed the CUDA ones for the caller too):
        # the networks are built on the CPU, and no training operation draws random numbers
        torch.default_generator.manual_seed(cfg.seed)
        self.G = build_generator(cfg)
        self.D = build_discriminator(cfg)
        if self.dist.world_size > 1 and self.device.type == "cuda":
            # PyTorch's SyncBatchNorm runs on GPUs only; on CPU (gloo) each rank normalizes
            # with its own shard's statistics, as plain DDP does (see module docstring)
            self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
            self.D = nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
        self.G.to(self.device, memory_format=self.memory_format)
        self.D.to(self.device, memory_format=self.memory_format)
        # the exponential moving average of G's weights (Karras et al. 2018; Yazici et al. 2019):
        # a low-pass filter over the oscillations of adversarial training
        self.G_ema = None
        if cfg.ema_decay > 0:
            self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
            self._ema_pairs = [(e, p) for e, p in zip(self.G_ema.parameters(), self.G.parameters())
                               if p.requires_grad]
            self._ema_buffers = list(zip(self.G_ema.buffers(), self.G.buffers()))

    def _build_optimizers(self) -> None:
        """Adam for G and for D at the first epoch's learning rates (fused on CUDA)."""
        cfg = self.cfg
        opt_kw = dict(betas=(cfg.beta1, cfg.beta2))
        if self.device.type == "cuda":
            opt_kw.update(fused=True, capturable=self.use_graphs)
        # a learning rate that changes during a run must be a device tensor inside a CUDA graph
        self.lr_tensor = self.use_graphs and cfg.lr_schedule != "constant"
        g_lr, d_lr = self.rates(0)
        self.g_opt = torch.optim.Adam(self.trainable(self.G), lr=self._lr_value(g_lr), **opt_kw)
        self.d_opt = torch.optim.Adam(self.trainable(self.D), lr=self._lr_value(d_lr), **opt_kw)

    def _reset_progress(self) -> None:
        """The state of a run that has trained nothing; `_load` replaces it from a checkpoint."""
        self.epoch = 0  # epochs completed
        self.iteration = 0  # iterations of epoch self.epoch + 1 completed (a run saved mid-epoch resumes there)
        self.partial_losses = torch.empty(0, len(LOSS_NAMES))  # ... and their losses, until that epoch ends
        self.saved = (0, 0, 0)  # (epoch, iteration, history rows) of the checkpoint last.pt holds
        self.history = torch.empty(0, len(rundir.HISTORY_COLUMNS))
        self.epoch_rows: list[list[float]] = []  # one per epoch: EPOCH_COLUMNS
        self.best_fd = math.inf
        self.wall_time = 0.0
        self.graph = None  # the captured CUDA graph of one iteration (train_step)
        self.step_calls = 0

    def _load_data(self) -> None:
        """The training images (on the device, shared through data_cache), the fixed sample
        images, and the validator; the class-rebalancing prior of a classes generator."""
        cfg = self.cfg
        train = self._cached_split("train", cfg.train_size, cfg.seed)
        self.data_source = train.source
        self.images = train.images
        if self.G.bins is not None:  # the class-rebalancing weights come from the training colours
            _, rgb = to_model_range(self.images[:5000])
            self.G.bins.fit_prior(rgb_to_ycbcr(rgb)[:, 1:])
        self.sample_images = self._cached_split("test", cfg.n_samples, cfg.seed).images
        self.sample_gray, self.sample_rgb = to_model_range(self.sample_images)
        self.validator = None
        if cfg.val_size > 0:
            from .validation import Validator
            key = ("validator", cfg.data, cfg.val_size, str(self.device))
            if key not in self.data_cache:
                self.data_cache[key] = Validator(self._cached_split("val", None, 0).images, self.device)
            self.validator = self.data_cache[key]

    def _restore_or_start(self) -> None:
        """Resuming: the checkpoint's weights, optimizers and progress. A run stopped before its
        first checkpoint has none: it starts over, same config (see run_config)."""
        last = self.run_dir / "checkpoints" / "last.pt"
        loaded = self.resuming and (last.exists() or rundir.checkpoint_expected(self.run_dir))
        if loaded:
            self._load(last)
            self._check_planned_epochs()
        if self.G_ema is not None and not loaded:
            self.G_ema.load_state_dict(self.G.state_dict())

    def _wrap_networks(self) -> None:
        """The networks the training step calls: DDP- and compile-wrapped views of self.G /
        self.D, which stay the plain modules whose state_dict is saved. The generator update runs
        D as a frozen function of the fake images, so it calls D_frozen, the plain module under
        DDP: the D wrapper would wait for D gradients that never come."""
        self.G_train, self.D_train, self.D_frozen = self.G, self.D, self.D
        if self.dist.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G_train = nn.parallel.DistributedDataParallel(self.G, device_ids=ids)
            self.D_train = nn.parallel.DistributedDataParallel(self.D, device_ids=ids)
        if self.cfg.compile:
            self.G_train, self.D_train = torch.compile(self.G_train), torch.compile(self.D_train)
            self.D_frozen = torch.compile(self.D_frozen) if self.dist.world_size > 1 else self.D_train

    def _write_run_files(self) -> None:
        """config.json (and, resuming, the tables the checkpoint holds) and the sample strips; rank
        0 only, and only now that the data loaded: a failed start leaves no run behind."""
        if not self.dist.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        rundir.write_json(self.run_dir / "config.json", self.cfg.to_dict())
        if self.resuming:  # history.csv and epochs.csv say what the checkpoint holds, repaired if damaged
            self._write_tables(self._kept_history(), repair_note=True)
        if not (self.run_dir / "samples" / "truth.png").exists():
            rundir.save_strip(self.run_dir / "samples" / "truth.png", self.sample_images)
            rundir.save_strip(self.run_dir / "samples" / "gray.png",
                              to_uint8(self.sample_gray.expand(-1, 3, -1, -1)))

    def _init_process_group(self) -> None:
        import torch.distributed as td
        if not td.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                self.device = torch.device("cuda", self.dist.local_rank)
                torch.cuda.set_device(self.device)
            td.init_process_group(backend)
        if self.cfg.batch_size % self.dist.world_size:
            raise ConfigError(f"batch_size={self.cfg.batch_size} must divide evenly over "
                              f"{self.dist.world_size} processes")

    @staticmethod
    def trainable(module: nn.Module) -> list:
        return [p for p in module.parameters() if p.requires_grad]  # not FAN's fixed network

    def _lr_value(self, lr: float):
        return torch.tensor(lr, device=self.device) if self.lr_tensor else lr

    def _cached_split(self, split: str, size, seed):
        cfg = self.cfg
        key = (cfg.data, cfg.data_root, split, size, seed, cfg.val_size, str(self.device))
        if key not in self.data_cache:
            loaded = load_split(cfg.data, split, size, seed, cfg.data_root, val_size=cfg.val_size)
            loaded.images = loaded.images.to(self.device)
            self.data_cache[key] = loaded
        return self.data_cache[key]

    def lr_factor(self, epoch: int) -> float:
        """The learning-rate multiplier of epoch `epoch` (0-based): pix2pix's linear decay to zero
        over the second half of the run, or 1."""
        if self.cfg.lr_schedule == "constant":
            return 1.0
        half = self.cfg.epochs // 2
        return 1.0 - max(0, epoch + 1 - half) / (self.cfg.epochs - half + 1)

    def rates(self, epoch: int) -> tuple[float, float]:
        """(G's, D's) learning rates in epoch `epoch` (0-based)."""
        factor = self.lr_factor(epoch)
        return self.cfg.lr * factor, (self.cfg.d_lr or self.cfg.lr) * factor

    def _set_lrs(self, epoch: int) -> None:
        for opt, lr in zip((self.g_opt, self.d_opt), self.rates(epoch)):
            for group in opt.param_groups:
                if isinstance(group["lr"], torch.Tensor):
                    # in place: a captured CUDA graph holds this tensor's address, so a new tensor
                    # would leave the graph reading freed memory
                    group["lr"].fill_(lr)
                else:
                    group["lr"] = self._lr_value(lr)

    def set_epochs(self, epochs: int) -> None:
        """Change the planned length of a run that has not finished (a packed study fits its
        epochs to the time it has); config.json follows."""
        if epochs < max(self.epoch, 1):
            raise ConfigError(f"cannot plan {epochs} epochs: {self.epoch} are done")
        if self.iteration > 0:  # the epoch in progress is finished: its updates are in the weights
            epochs = max(epochs, self.epoch + 1)
        self.cfg = config_from_dict({**self.cfg.to_dict(), "epochs": epochs})
        if self.dist.is_main:
            rundir.write_json(self.run_dir / "config.json", self.cfg.to_dict())

    def _load(self, path: Path) -> None:
        ckpt = rundir.load_checkpoint(path, (rundir.CHECKPOINT_FORMAT,))
        try:
            self.G.load_state_dict(ckpt["generator"])
            self.D.load_state_dict(ckpt["discriminator"])
            self.g_opt.load_state_dict(ckpt["g_opt"])
            self.d_opt.load_state_dict(ckpt["d_opt"])
            for group in self.g_opt.param_groups + self.d_opt.param_groups:
                group["lr"] = self._lr_value(float(group["lr"]))  # saved on the CPU: back on the device
            if self.G_ema is not None:
                self.G_ema.load_state_dict(ckpt["generator_ema"])
        except (KeyError, RuntimeError) as exc:
            raise rundir.RunDirError(f"checkpoint {path} does not match this run's networks "
                                     f"({state_dict_mismatch(exc)})") from None
        self.epoch = int(ckpt["epoch"])
        self.iteration = int(ckpt.get("iteration", 0))
        self.wall_time = float(ckpt.get("wall_time", 0.0))
        self.epoch_rows = [list(r) for r in ckpt.get("epoch_rows", [])][:self.epoch]
        self.best_fd = float(ckpt.get("best_fd", math.inf))
        iters = self.iterations_per_epoch
        rows = self.epoch * iters + self.iteration
        if "history" in ckpt:  # the rows this checkpoint covers travel with it
            history = ckpt["history"]
            if (not isinstance(history, torch.Tensor) or history.shape != (rows, len(rundir.HISTORY_COLUMNS))
                    or not 0 <= self.iteration <= iters):
                raise rundir.RunDirError(f"checkpoint {path} is damaged: its history does not cover epoch "
                                         f"{self.epoch}, iteration {self.iteration}. Use another checkpoint or "
                                         f"retrain.")
        else:  # written before checkpoints kept the history: history.csv, rows after the checkpoint redone
            history = rundir.history_tensor(self.run_dir, repair=False)
            history = history[history[:, 1] <= self.epoch]
            if history.shape[0] != rows:
                raise rundir.RunDirError(
                    f"{self.run_dir / 'history.csv'} holds {history.shape[0]} rows up to epoch {self.epoch}, "
                    f"where checkpoint {path} covers {rows}, and this older checkpoint has no copy to "
                    f"rebuild it from. Restore the file from a copy or train the run again.")
        self.history = history[:self.epoch * iters].float()
        self.partial_losses = history[self.epoch * iters:, 2:].float()
        self.saved = (self.epoch, self.iteration, rows)

    def _check_planned_epochs(self) -> None:
        """A resumed run cannot be planned shorter than what its checkpoint holds."""
        least = self.epoch + (1 if self.iteration else 0)
        if self.cfg.epochs < least:
            held = f"{self.epoch} epoch{'s' if self.epoch != 1 else ''}"
            if self.iteration:
                held += f" and {self.iteration} iterations of epoch {self.epoch + 1}"
            raise ConfigError(f"cannot resume {self.run_dir} with epochs={self.cfg.epochs}: its checkpoint "
                              f"already holds {held}. Ask for epochs={least} or more; the run was left as it was.")

    @property
    def iterations_per_epoch(self) -> int:
        return self.images.shape[0] // self.cfg.batch_size

    # ------------------------------------------------------------ one iteration
    def step(self, gray: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """One training iteration on the batch given (model range, see data.to_model_range):
        G colorizes `gray` once, then `cfg.d_steps` discriminator updates (none without the
        adversarial term) and one generator update. Returns the LOSS_NAMES losses (on the
        device; the D losses averaged over its updates). Always eager: `train_step`, which picks
        the batch by index, is the iteration `fit` runs and the one a CUDA graph replays."""
        cfg = self.cfg
        classes = cfg.output == "classes"
        with self.autocast():
            fake, chroma_logits = self.G_train(gray, with_logits=True) if classes else (self.G_train(gray), None)
        d_real_sum = d_fake_sum = torch.zeros((), device=gray.device)
        if cfg.adv_weight > 0:
            for _ in range(cfg.d_steps):
                self.d_opt.zero_grad(set_to_none=True)
                real = rgb.detach().requires_grad_(True) if cfg.r1_gamma > 0 else rgb
                with self.autocast_d():
                    real_logits = self.D_train(gray, real.float())
                    fake_logits = self.D_train(gray, fake.detach().float())
                d_real, d_fake = discriminator_loss(real_logits.float(), fake_logits.float(), cfg.label_smoothing)
                d_loss = d_real + d_fake
                if cfg.r1_gamma > 0:
                    d_loss = d_loss + cfg.r1_gamma / 2 * r1_penalty(real_logits, real)
                d_loss.backward()
                self.d_opt.step()
                d_real_sum = d_real_sum + d_real.detach()
                d_fake_sum = d_fake_sum + d_fake.detach()
            set_requires_grad(self.D, False)  # the G step needs gradients through D, not for D
            with self.autocast_d():
                fake_logits = self.D_frozen(gray, fake.float())
        else:  # regression baseline: no discriminator at all
            fake_logits = torch.zeros(gray.shape[0], device=gray.device)
        self.g_opt.zero_grad(set_to_none=True)
        if classes:  # the rebalanced cross-entropy over chroma bins replaces the content loss
            adv = generator_adversarial_loss(fake_logits.float())
            content = self.G.bins.loss(chroma_logits, rgb_to_ycbcr(rgb)[:, 1:])
            total = cfg.adv_weight * adv + cfg.lam * content
        else:
            total, adv, content = generator_loss(fake_logits.float(), fake, rgb, cfg.lam, cfg.content_loss,
                                                 cfg.adv_weight)
        total.backward()
        self.g_opt.step()
        if self.G_ema is not None:
            self._update_ema()
        set_requires_grad(self.D, True)
        steps = max(cfg.d_steps, 1)
        out = torch.stack([total.detach(), adv.detach(), content.detach(), d_real_sum / steps, d_fake_sum / steps])
        if self.dist.world_size > 1:  # log the global batch's losses, not this rank's shard
            import torch.distributed as td
            td.all_reduce(out)  # SUM: gloo has no AVG
            out /= self.dist.world_size
        return out

    @torch.no_grad()
    def _update_ema(self) -> None:
        # foreach ops on device tensors only: no host sync, so it is captured in the CUDA graph
        # (torch.optim.swa_utils.AveragedModel keeps a host-side counter, which a graph cannot)
        ema, live = zip(*self._ema_pairs)
        torch._foreach_lerp_(list(ema), list(live), 1.0 - self.cfg.ema_decay)
        for e, b in self._ema_buffers:  # batch-norm statistics follow the live network
            e.copy_(b)

    @property
    def G_eval(self) -> nn.Module:
        """The generator that samples, validation and generator.pt use: the EMA one when kept."""
        return self.G_ema if self.G_ema is not None else self.G

    def _batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gray, rgb = to_model_range(self.images.index_select(0, index))
        return (gray.contiguous(memory_format=self.memory_format),
                rgb.contiguous(memory_format=self.memory_format))

    def train_step(self, index: torch.Tensor) -> torch.Tensor:
        """One training iteration (`cfg.d_steps` discriminator updates, then one generator
        update; see `step`) on the training images at `index` (a 1-D tensor of indices into
        `self.images`, on the device, one batch long). Returns the losses tensor, LOSS_NAMES
        order, on the device (not synchronised). On CUDA with cuda_graphs, from the fourth call
        on it replays one captured graph of the whole iteration. It does not advance the run's
        epoch/iteration counters or write anything: `fit`/`iterate` do that around it."""
        self.step_calls += 1
        if not self.use_graphs:
            return self.step(*self._batch(index))
        if self.graph is None and self.step_calls > 3:
            self._capture(index)
        if self.graph is None:  # warm-up iterations on a side stream, as CUDA graphs require
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                out = self.step(*self._batch(index))
            torch.cuda.current_stream().wait_stream(stream)
            return out
        self.static_index.copy_(index)
        self.graph.replay()
        return self.static_out.clone()

    def _capture(self, index: torch.Tensor) -> None:
        self.static_index = index.clone()
        self.g_opt.zero_grad(set_to_none=True)  # gradients are then allocated in the graph's pool
        self.d_opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: CUDA calls from other threads (e.g. a DataLoader's pin-memory
            # thread) must not invalidate this capture
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.static_out = self.step(*self._batch(self.static_index))
        except Exception as exc:  # any op that cannot be captured: stay correct, run eagerly
            print(f"colorlib: CUDA graph capture failed ({type(exc).__name__}: {exc}); training eagerly",
                  file=sys.stderr)
            self.use_graphs = False
            torch.cuda.synchronize()
            return
        self.graph = graph

    # ------------------------------------------------------------ the loop
    def fit(self) -> Path:
        steps = self.iterate()
        try:
            for _ in steps:
                pass
        except KeyboardInterrupt as exc:  # Ctrl-C between two iterations: saved there, see iterate
            if isinstance(exc, TrainingInterrupted):
                raise
            steps.close()
            raise TrainingInterrupted(f"interrupted: {self._kept_message()}") from None
        finally:
            steps.close()
        return self.run_dir

    def iterate(self):
        """Train to the end, yielding after every iteration: `fit` runs it through, and
        packing.train_packed interleaves several runs' iterations on one device.

        Stopping loses nothing. Ctrl-C during an iteration or an epoch's end is held until it is
        done (`DeferredInterrupt`); the run is then saved at that iteration boundary (the
        checkpoint records the iteration within the epoch, and the partial epoch's losses travel
        in its history) and `TrainingInterrupted` says what is kept: resuming continues exactly
        there, bitwise as if never stopped. Closing the generator at a yield (a caller or a
        packed run stopping) saves the same way. A second Ctrl-C stops at once and keeps the last
        checkpoint; run.json always describes what last.pt holds."""
        gate = DeferredInterrupt()
        if self.lock is not None:  # released when training ends; a later fit() takes it again
            self.lock.acquire()
            self.lock.training = True
        bar = losses = None
        started = time.perf_counter()
        try:
            cfg, dist = self.cfg, self.dist
            iters = self.iterations_per_epoch
            if iters == 0:
                raise ConfigError(f"{self.images.shape[0]} training images make no batch of {cfg.batch_size}")
            local = cfg.batch_size // dist.world_size
            if self.progress:
                from tqdm.auto import tqdm
                bar = tqdm(total=cfg.epochs * iters, initial=self.epoch * iters + self.iteration, unit="it",
                           desc=f"{cfg.preset} on {self.device.type}", dynamic_ncols=True)
            self._write_run_info("running")
            started = time.perf_counter()
            while self.epoch < self.cfg.epochs:  # cfg re-read: set_epochs may change the plan
                cfg = self.cfg
                epoch = self.epoch
                with gate:
                    if cfg.lr_schedule != "constant":
                        self._set_lrs(epoch)
                    order = epoch_order(self.images.shape[0], epoch, cfg.seed, self.device)
                    losses = torch.empty(iters, len(LOSS_NAMES), device=self.device)
                    first = self.iteration  # > 0: a run saved in the middle of this epoch
                    if first:
                        losses[:first] = self.partial_losses.to(self.device)
                for it in range(first, iters):
                    with gate:
                        batch = order[it * cfg.batch_size:(it + 1) * cfg.batch_size]
                        losses[it] = self.train_step(batch[dist.rank * local:(dist.rank + 1) * local])
                        self.iteration = it + 1
                        if (it + 1) % cfg.log_every == 0 or it + 1 == iters:
                            self._check_and_report(losses[it], epoch, it, bar)
                    if gate.requested:
                        with gate:
                            self._stop_here(losses, started, raise_interrupt=True)
                    try:
                        yield
                    except GeneratorExit:
                        with gate:
                            self._stop_here(losses, started, raise_interrupt=False)
                        raise
                with gate:
                    losses = losses.cpu()
                    if not torch.isfinite(losses).all():
                        bad = int((~torch.isfinite(losses)).any(1).nonzero()[0])
                        self._diverged(epoch, bad, losses[bad])
                    self.iteration, self.partial_losses = 0, losses[:0]  # the epoch joins the history
                    self._end_epoch(epoch, losses, started)
                    if self.epoch_lines:
                        means = ", ".join(f"{k}={v:.4f}" for k, v in zip(LOSS_NAMES, losses.mean(0).tolist()))
                        print(f"epoch {self.epoch}/{cfg.epochs}: {means} ({time.perf_counter() - started:.1f} s)",
                              flush=True)
                    started = time.perf_counter()
                if gate.requested and self.epoch < self.cfg.epochs:  # at the very end: just finish
                    with gate:
                        self._stop_here(None, started, raise_interrupt=True)
            with gate:
                if self.epoch == self.cfg.epochs:
                    if self.dist.is_main and not (self.run_dir / "checkpoints" / "generator.pt").exists():
                        self._save_generator()  # a run killed between its last two files
                    self._write_run_info("finished")
        except (TrainingInterrupted, TrainingDiverged, GeneratorExit):
            raise
        except KeyboardInterrupt:
            if gate.broke:  # at once, inside an iteration (a second Ctrl-C, or no handler): last.pt is kept
                self._write_run_info("interrupted")
            else:  # between the guarded blocks, at an iteration boundary: saved there
                with gate:
                    self._stop_here(losses, started, raise_interrupt=False)
            raise TrainingInterrupted(f"interrupted: {self._kept_message()}") from None
        except Exception as exc:
            self._write_run_info("failed", error=f"{type(exc).__name__}: {rundir.first_line(exc)}")
            raise
        finally:
            if bar is not None:
                bar.close()
            self.release_lock()

    def _stop_here(self, losses: Optional[torch.Tensor], started: float, raise_interrupt: bool) -> None:
        """Save the run at the iteration boundary it stands at (unless last.pt already holds it, or
        a loss of the partial epoch is not finite), mark it interrupted, and with raise_interrupt
        raise `TrainingInterrupted` saying what is kept."""
        if self.dist.is_main:
            partial = losses[:self.iteration].cpu() if losses is not None else self.partial_losses
            here = (self.epoch, self.iteration)
            if here != self.saved[:2] and torch.isfinite(partial).all():
                self.partial_losses = partial.float()
                self.wall_time += time.perf_counter() - started
                self.save_checkpoint(status="interrupted")
            else:
                self._write_run_info("interrupted")
        if raise_interrupt:
            raise TrainingInterrupted(f"interrupted: {self._kept_message()}")

    def _kept_message(self) -> str:
        epoch, iteration, _ = self.saved
        if not (self.run_dir / "checkpoints" / "last.pt").exists():
            return (f"no checkpoint was written yet; continue with --resume (resume=True), which starts "
                    f"{self.run_dir} over from its first iteration with the same configuration")
        held = f"{epoch} of {self.cfg.epochs} epochs"
        if iteration:
            held += f" and {iteration} of {self.iterations_per_epoch} iterations of epoch {epoch + 1}"
        return (f"{self.run_dir / 'checkpoints' / 'last.pt'} keeps {held} (run.json agrees); "
                f"continue with --resume (resume=True)")

    def close(self, wait: bool = True) -> None:
        """Under torchrun: wait until rank 0 has written everything, then leave the process group
        (a rank that exits with gloo threads still running aborts the whole job). Releases the
        run directory's lock if training has not already, and puts back the process-wide torch
        settings the trainer changed (threads; on CUDA cuDNN autotuning and TF32). Safe to call
        twice; the networks, data and run directory stay usable (a later fit() runs with the
        process's settings as they then are)."""
        self.release_lock()
        self._restore_torch_settings()
        import torch.distributed as td
        if self.dist.world_size > 1 and td.is_initialized():
            try:
                if wait:
                    td.barrier()
            finally:
                td.destroy_process_group()

    def _check_and_report(self, last: torch.Tensor, epoch: int, it: int, bar) -> None:
        values = last.tolist()  # the one host sync per log_every iterations
        if not all(math.isfinite(v) for v in values):
            self._diverged(epoch, it, last.cpu())
        if bar is not None:
            bar.total = self.cfg.epochs * self.iterations_per_epoch
            bar.update(epoch * self.iterations_per_epoch + it + 1 - bar.n)
            bar.set_postfix(epoch=epoch + 1, **{k: f"{v:.3f}" for k, v in zip(LOSS_NAMES, values)}, refresh=False)

    def _diverged(self, epoch: int, it: int, values: torch.Tensor) -> None:
        detail = ", ".join(f"{k}={v:.4g}" for k, v in zip(LOSS_NAMES, values.tolist()))
        saved_epoch, saved_iteration, _ = self.saved
        after = (f"after epoch {saved_epoch}" if not saved_iteration
                 else f"epoch {saved_epoch + 1}, iteration {saved_iteration}")
        kept = (f"The last good checkpoint ({after}) is kept in {self.run_dir / 'checkpoints'}."
                if (self.run_dir / "checkpoints" / "last.pt").exists() else "No checkpoint had been written yet.")
        msg = (f"training diverged in epoch {epoch + 1}, iteration {it + 1}: a loss is not finite ({detail}). "
               f"{kept} Lower the learning rate (lr={self.cfg.lr:g}) and start a new run.")
        self._write_run_info("diverged", error=msg)
        raise TrainingDiverged(msg)

    def _end_epoch(self, epoch: int, losses: torch.Tensor, started: float) -> None:
        iters = losses.shape[0]
        first = epoch * iters
        cols = torch.stack([torch.arange(first + 1, first + iters + 1, dtype=torch.float32),
                            torch.full((iters,), float(epoch + 1))], dim=1)
        self.history = torch.cat([self.history, torch.cat([cols, losses.float()], dim=1)])
        self.epoch = epoch + 1
        self.wall_time += time.perf_counter() - started
        if not self.dist.is_main:
            return
        d_wins = float(((losses[:, 3] + losses[:, 4]) < D_WINS_LOSS).float().mean()) if self.cfg.adv_weight > 0 else 0.0
        val = self.validator.score(self.G_eval) if self.validator is not None else {}
        lrs = self.rates(epoch)
        self.epoch_rows.append([self.epoch, d_wins, val.get("psnr_dataset_db", math.nan),
                                val.get("colourfulness", math.nan), val.get("feature_fd", math.nan), *lrs])
        rundir.write_epochs(self.run_dir, EPOCH_COLUMNS, self.epoch_rows)
        rundir.save_strip(self.run_dir / "samples" / f"epoch_{self.epoch:04d}.png", self.colorize_samples())
        fd = val.get("feature_fd")
        if fd is not None and math.isfinite(fd) and fd < self.best_fd:
            self.best_fd = fd
            rundir.atomic_save(rundir.to_cpu({"format": rundir.GENERATOR_FORMAT, "config": self.cfg.to_dict(),
                                              "epoch": self.epoch, "validation": val,
                                              "generator": self.G_eval.state_dict()}),
                               self.run_dir / "checkpoints" / "best.pt")
        if self.epoch % self.cfg.checkpoint_every == 0 or self.epoch == self.cfg.epochs:
            self.save_checkpoint()

    @torch.inference_mode()
    def colorize_samples(self) -> torch.Tensor:
        G = self.G_eval
        G.eval()
        with self.autocast():
            out = G(self.sample_gray.contiguous(memory_format=self.memory_format))
        G.train()
        return to_uint8(out)

    def save_checkpoint(self, status: Optional[str] = None) -> None:
        """last.pt first, then the files that describe it: history.csv, epochs.csv, run.json.

        The checkpoint carries the history rows it covers (those of a partial epoch included,
        when it is saved mid-epoch), so a kill between two of these files leaves last.pt ahead,
        and resuming rewrites the others from it; read_history repairs a damaged history.csv
        from it too."""
        ckpt_dir = self.run_dir / "checkpoints"
        history = self._kept_history()
        ckpt = {"format": rundir.CHECKPOINT_FORMAT, "config": self.cfg.to_dict(), "epoch": self.epoch,
                "iteration": self.iteration, "history": history, "epoch_columns": list(EPOCH_COLUMNS),
                "wall_time": self.wall_time, "generator": self.G.state_dict(),
                "discriminator": self.D.state_dict(), "g_opt": self.g_opt.state_dict(),
                "d_opt": self.d_opt.state_dict(), "epoch_rows": self.epoch_rows, "best_fd": self.best_fd}
        if self.G_ema is not None:
            ckpt["generator_ema"] = self.G_ema.state_dict()
        rundir.atomic_save(rundir.to_cpu(ckpt), ckpt_dir / "last.pt")
        self.saved = (self.epoch, self.iteration, int(history.shape[0]))
        if self.epoch == self.cfg.epochs and not self.iteration:
            self._save_generator()
        self._write_tables(history)
        self._write_run_info(status or ("running" if self.epoch < self.cfg.epochs else "finished"))

    def _save_generator(self) -> None:
        """generator.pt, what users colorize with: the EMA generator when kept."""
        rundir.atomic_save(rundir.to_cpu({"format": rundir.GENERATOR_FORMAT, "config": self.cfg.to_dict(),
                                          "epoch": self.epoch, "generator": self.G_eval.state_dict()}),
                           self.run_dir / "checkpoints" / "generator.pt")

    def _history_rows(self, epoch: int, losses: torch.Tensor) -> torch.Tensor:
        """History rows (HISTORY_COLUMNS) of the first len(losses) iterations of 0-based `epoch`."""
        first, n = epoch * self.iterations_per_epoch, losses.shape[0]
        cols = torch.stack([torch.arange(first + 1, first + n + 1, dtype=torch.float32),
                            torch.full((n,), float(epoch + 1))], dim=1)
        return torch.cat([cols, losses.float().cpu()], dim=1)

    def _kept_history(self) -> torch.Tensor:
        """The finished epochs' rows and those of the partial epoch in progress."""
        if not self.iteration:
            return self.history
        return torch.cat([self.history, self._history_rows(self.epoch, self.partial_losses)])

    def _write_tables(self, history: torch.Tensor, repair_note: bool = False) -> None:
        """history.csv and epochs.csv as the checkpoint holds them. With repair_note (on resume),
        a file that was not a shorter or longer version of that (damaged) is named in a warning."""
        files = {"history.csv": lambda: rundir.write_history(self.run_dir, history),
                 "epochs.csv": lambda: rundir.write_epochs(self.run_dir, EPOCH_COLUMNS, self.epoch_rows)}
        for name, write in files.items():
            path = self.run_dir / name
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
            warnings.warn(f"{path} was damaged ({reason}); rewritten from {self.run_dir / 'checkpoints' / 'last.pt'}",
                          rundir.RunDirRepaired, stacklevel=2)

    def _write_run_info(self, status: str, error: Optional[str] = None) -> None:
        """run.json: always what last.pt holds (epochs_done, and iteration_in_epoch for a run saved
        in the middle of an epoch), whatever the trainer had reached in memory."""
        if not self.dist.is_main:
            return
        epoch, iteration, rows = getattr(self, "saved", (0, 0, 0))
        info = {
            "status": status, "epochs_done": epoch, "iteration_in_epoch": iteration, "epochs": self.cfg.epochs,
            "iterations_done": rows, "history_rows": rows, "wall_time_s": round(self.wall_time, 2),
            "device": str(self.device), "device_name": device_name(self.device),
            "world_size": self.dist.world_size, "torch": torch.__version__, "python": platform.python_version(),
            "data_source": getattr(self, "data_source", None), "train_images": int(self.images.shape[0])
            if hasattr(self, "images") else None, "git_commit": self.commit,
        }
        if error:
            info["error"] = error
        rundir.write_json(self.run_dir / "run.json", info)


def git_commit() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def train(cfg: Optional[Config], run_dir, resume: bool | str = False, progress: bool = True,
          epoch_lines: bool = False) -> Path:
    """Train `cfg` into `run_dir` (or continue the run there with resume=True, or with
    resume="auto" if it holds one: see `run_config`), then close the trainer."""
    trainer = Trainer(cfg, run_dir, resume=resume, progress=progress, epoch_lines=epoch_lines)
    try:
        out = trainer.fit()
    except BaseException:
        trainer.close(wait=False)  # a failing rank must not wait for the others at a barrier
        raise
    trainer.close()
    return out
