"""The paper's training iteration (paper/step.py) run over epochs, resumable and safe to stop; nothing
here changes the maths. Speed: the data on the device as uint8, bf16 autocast where the hardware has it,
channels_last, fused Adam on CUDA.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from .. import variants
from ..paper.data import epoch_order, to_model_range, to_uint8
from ..paper.step import training_iteration
from ..runs import rundir
from ..runs.config import Config, ConfigError
from ..runs.data import fingerprint, load_split
from ..runs.device import bf16_autocast, choose_threads, pick_device
from ..runs.rundir import EPOCH_COLUMNS, LOSS_NAMES
from . import run_files, schedule
from .interrupts import StopRequests, TrainingInterrupted, signal_of
from .resume import run_config
from .settings import TorchSettings

# "D wins outright" in an iteration when its two BCE terms sum below this: it then gives the
# right answer with ~99.5% confidence on both real and generated pairs, and G's adversarial
# gradient vanishes. The share of such iterations per epoch is the collapse statistic.
D_WINS_LOSS = 0.01
CUDA_SETTINGS = ("cudnn.benchmark", "cuda.matmul.allow_tf32", "cudnn.allow_tf32")  # on for CUDA runs


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class Autocast:
    """A network as training_iteration calls it: under the run's autocast; with float_io (the
    discriminator) reading colour and giving logits in float32, so the losses are float32."""

    def __init__(self, module: nn.Module, autocast, float_io: bool = False):
        self.module, self.autocast, self.float_io = module, autocast, float_io

    def parameters(self):
        return self.module.parameters()

    def __call__(self, gray: torch.Tensor, *colour: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            out = self.module(gray, *(c.float() for c in colour))
        return out.float() if self.float_io else out


class Trainer(contextlib.AbstractContextManager):
    """One training run: resume=False starts `cfg` anew in `run_dir`, True continues the run there, "auto"
    whichever applies. validator(trainer) -> an object whose score(G) gives the epoch's validation scores.
    The run directory is locked until fit() ends; close() puts back the torch settings changed here."""

    def __init__(self, cfg: Config | None, run_dir, resume: bool | str = False, progress: bool = True,
                 epoch_lines: bool = False, validator: Optional[Callable] = None, accept_changes=(),
                 data_cache: Optional[dict] = None):
        self.run_dir, self.progress, self.epoch_lines = Path(run_dir), progress, epoch_lines
        self.accept_changes = run_files.accepted(accept_changes)  # see run_files.check_unchanged
        self.data_cache = {} if data_cache is None else data_cache  # decoded data, shared by trainers
        self.settings, self.lock = TorchSettings(), rundir.RunLock(self.run_dir)
        self.lock.acquire()
        try:
            rundir.remove_temporary_files(self.run_dir)  # left by a killed training
            self.cfg, self.resuming = cfg, resuming = run_config(self.run_dir, cfg, resume=resume)
            ckpt = run_files.checkpoint_to_resume(self.run_dir, cfg) if resuming else None  # shapes checked

            self.device = pick_device(cfg.device)
            self.threads = threads_for(cfg, self.device, ckpt)
            self.settings.change("num_threads", self.threads["threads"])
            for name in CUDA_SETTINGS if self.device.type == "cuda" else ():
                self.settings.change(name, True)
            self.precision, self.autocast = precision_for(cfg, self.device)
            self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

            with torch.random.fork_rng(devices=[]):  # seeded from cfg.seed; the caller's RNG is left as it was
                torch.default_generator.manual_seed(cfg.seed)  # the CPU's only: networks are built there
                self.G = variants.build_generator(cfg).to(self.device, memory_format=self.memory_format)
                self.D = variants.build_discriminator(cfg).to(self.device, memory_format=self.memory_format)
                self.objective = variants.build_objective(cfg, self.G)
            self.d_steps = variants.discriminator_steps(cfg)
            self.average = variants.build_average(cfg, self.G)
            adam = dict(betas=(cfg.beta1, cfg.beta2), **({"fused": True} if self.device.type == "cuda" else {}))
            g_lr, d_lr = schedule.rates(cfg, 0)
            self.g_opt = torch.optim.Adam([p for p in self.G.parameters() if p.requires_grad], lr=g_lr, **adam)
            self.d_opt = torch.optim.Adam([p for p in self.D.parameters() if p.requires_grad], lr=d_lr, **adam)
            d_autocast = contextlib.nullcontext if cfg.d_norm == "spectral" else self.autocast  # fp32 power iteration
            self.G_step, self.D_step = Autocast(self.G, self.autocast), Autocast(self.D, d_autocast, float_io=True)

            train = self.split("train", cfg.train_size, cfg.seed)
            self.images, self.data_source = train.images, train.source
            self.data_fingerprint = fingerprint(train.images, train.available)
            if self.iterations_per_epoch == 0:
                raise ConfigError(f"{len(self.images)} training images make no batch of {cfg.batch_size}: use more "
                                  f"images or --set batch_size={len(self.images)}; nothing was written")
            variants.fit_to_data(self.G, self.images)
            self.sample_images = self.split("test", cfg.n_samples, cfg.seed).images
            self.sample_gray = to_model_range(self.sample_images)[0]
            self.validator = validator(self) if validator is not None and cfg.val_size > 0 else None

            self.epoch = self.iteration = 0  # epochs done; iterations done of the next one
            self.history = torch.empty(0, len(rundir.HISTORY_COLUMNS))
            self.partial_losses = torch.empty(0, len(LOSS_NAMES))  # of the epoch in progress, until it ends
            self.epoch_rows, self.best_fd, self.wall_time, self.accepted = [], math.inf, 0.0, []
            if ckpt is not None:
                run_files.restore(self, ckpt, self.run_dir / "checkpoints" / "last.pt")
            elif self.average.kept:
                self.average.model.load_state_dict(self.G.state_dict())
            self.saved, self.commit = (self.epoch, self.iteration), run_files.git_commit()
            run_files.write_first_files(self)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the run directory and put back the torch settings changed; safe to call twice."""
        self.lock.release()
        self.settings.restore()

    def __exit__(self, *exc) -> None:
        self.close()

    def split(self, split: str, size=None, seed: int = 0):
        """A split of the run's data on the device, decoded once per data_cache."""
        cfg = self.cfg
        key = (cfg.data, cfg.data_root, split, size, seed, cfg.val_size, str(self.device))
        if key not in self.data_cache:
            loaded = load_split(cfg.data, split, size, seed, cfg.data_root, val_size=cfg.val_size)
            loaded.images = loaded.images.to(self.device)
            self.data_cache[key] = loaded
        return self.data_cache[key]

    @property
    def iterations_per_epoch(self) -> int:
        return self.images.shape[0] // self.cfg.batch_size

    @property
    def G_eval(self) -> nn.Module:
        """The generator that samples, validation and generator.pt use: the weight average where kept."""
        return self.average.model

    @property
    def G_ema(self) -> Optional[nn.Module]:
        return self.average.model if self.average.kept else None

    def step(self, gray: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """The paper's training_iteration on a batch in model range, then the weight average's update;
        the LOSS_NAMES losses, on the device."""
        losses = training_iteration(self.G_step, self.D_step, self.g_opt, self.d_opt, gray, rgb,
                                    self.objective, self.d_steps)
        self.average.update()
        return losses

    def train_step(self, index: torch.Tensor) -> torch.Tensor:
        """`step` on the training images at `index`; fit advances the counters and writes around it."""
        gray, rgb = to_model_range(self.images.index_select(0, index))
        return self.step(gray.contiguous(memory_format=self.memory_format),
                         rgb.contiguous(memory_format=self.memory_format))

    def fit(self) -> Path:
        """Train to cfg.epochs. A stop signal is taken at the next iteration boundary: the run is
        saved there and TrainingInterrupted says what is kept (resuming continues bitwise)."""
        self.lock.acquire()  # released when fit ends; a later fit() takes it again
        self._started, bar = time.perf_counter(), progress_bar(self)
        try:
            with StopRequests() as stop:
                run_files.write_run_info(self, "running")
                while self.epoch < self.cfg.epochs:
                    epoch, iters, batch = self.epoch, self.iterations_per_epoch, self.cfg.batch_size
                    for opt, lr in zip((self.g_opt, self.d_opt), schedule.rates(self.cfg, epoch)):
                        for group in opt.param_groups:
                            group["lr"] = lr
                    order = epoch_order(self.images.shape[0], epoch, self.cfg.seed, self.device)
                    losses = torch.empty(iters, len(LOSS_NAMES), device=self.device)
                    losses[:self.iteration] = self.partial_losses.to(self.device)
                    for it in range(self.iteration, iters):
                        if stop.signum:
                            self._stop_here(losses, stop.signum)
                        losses[it] = self.train_step(order[it * batch:(it + 1) * batch])
                        self.iteration = it + 1
                        if (it + 1) % self.cfg.log_every == 0 or it + 1 == iters:
                            self._report(losses[it], epoch, it, bar)
                    end_epoch(self, losses.cpu())
                    if stop.signum and self.epoch < self.cfg.epochs:
                        self._stop_here(None, stop.signum)
                if not (self.run_dir / "checkpoints" / "generator.pt").exists():
                    run_files.save_generator(self)  # a run killed between its last two files
                run_files.write_run_info(self, "finished")
        except (TrainingInterrupted, TrainingDiverged):
            raise
        except KeyboardInterrupt as exc:  # a second signal, mid-iteration: last.pt is kept as it was
            run_files.write_run_info(self, "interrupted")
            raise TrainingInterrupted(f"interrupted: {run_files.kept_message(self)}", signal_of(exc)) from None
        except Exception as exc:  # recorded where the disk still takes it: the error may be a full disk
            with contextlib.suppress(OSError):
                run_files.write_run_info(self, "failed", error=f"{type(exc).__name__}: {rundir.first_line(exc)}")
            raise
        finally:
            bar.close()
            self.lock.release()
        return self.run_dir

    def _report(self, last: torch.Tensor, epoch: int, it: int, bar) -> None:
        values = last.tolist()  # the one host sync per log_every iterations
        if not all(math.isfinite(v) for v in values):
            self._diverged(epoch, it, values)
        bar.update(epoch * self.iterations_per_epoch + it + 1 - bar.n)
        bar.set_postfix(epoch=epoch + 1, **{k: f"{v:.3f}" for k, v in zip(LOSS_NAMES, values)}, refresh=False)

    def _diverged(self, epoch: int, it: int, values: list) -> None:
        detail = ", ".join(f"{k}={v:.4g}" for k, v in zip(LOSS_NAMES, values))
        msg = (f"training diverged in epoch {epoch + 1}, iteration {it + 1} ({detail}); the last good checkpoint "
               f"is kept in {self.run_dir / 'checkpoints'}; lower the learning rate (lr={self.cfg.lr:g}) and "
               f"start a new run")
        run_files.write_run_info(self, "diverged", error=msg)
        raise TrainingDiverged(msg)

    def _stop_here(self, losses: Optional[torch.Tensor], signum: int) -> None:
        """Save the run at this iteration boundary (unless last.pt holds it already, or a loss of the
        partial epoch is not finite), mark it interrupted, and raise TrainingInterrupted."""
        if losses is not None:
            self.partial_losses = losses[:self.iteration].cpu()
        if (self.epoch, self.iteration) != self.saved and torch.isfinite(self.partial_losses).all():
            self.wall_time += time.perf_counter() - self._started
            run_files.save_checkpoint(self, status="interrupted")
        else:
            run_files.write_run_info(self, "interrupted")
        raise TrainingInterrupted(f"interrupted: {run_files.kept_message(self)}", signum)

    @torch.inference_mode()
    def colorize_samples(self) -> torch.Tensor:
        G = self.G_eval
        G.eval()
        with self.autocast():
            out = G(self.sample_gray.contiguous(memory_format=self.memory_format))
        G.train()
        return to_uint8(out)


def end_epoch(t: Trainer, losses: torch.Tensor) -> None:
    """The epoch joins the history; epochs.csv, the sample strip, best.pt and the checkpoint."""
    epoch = t.epoch
    if not torch.isfinite(losses).all():
        bad = int((~torch.isfinite(losses)).any(1).nonzero()[0])
        t._diverged(epoch, bad, losses[bad].tolist())
    t.history = torch.cat([t.history, run_files.history_rows(t, epoch, losses)])
    t.epoch, t.iteration, t.partial_losses = epoch + 1, 0, losses[:0]
    seconds = time.perf_counter() - t._started
    t.wall_time += seconds
    d_wins = float(((losses[:, 3] + losses[:, 4]) < D_WINS_LOSS).float().mean()) if t.d_steps else 0.0
    val = t.validator.score(t.G_eval) if t.validator is not None else {}
    psnr, colourfulness, fd = (val.get(k, math.nan) for k in ("psnr_dataset_db", "colourfulness", "feature_fd"))
    t.epoch_rows.append([t.epoch, d_wins, psnr, colourfulness, fd, *schedule.rates(t.cfg, epoch)])
    rundir.write_epochs(t.run_dir, EPOCH_COLUMNS, t.epoch_rows)
    rundir.save_strip(t.run_dir / "samples" / f"epoch_{t.epoch:04d}.png", t.colorize_samples())
    if math.isfinite(fd) and fd < t.best_fd:  # best.pt: the generator of the lowest validation FD so far
        t.best_fd = fd
        run_files.save_generator(t, t.run_dir / "checkpoints" / "best.pt", validation=val)
    if t.epoch % t.cfg.checkpoint_every == 0 or t.epoch == t.cfg.epochs:
        run_files.save_checkpoint(t)
    if t.epoch_lines:
        means = ", ".join(f"{k}={v:.4f}" for k, v in zip(LOSS_NAMES, losses.mean(0).tolist()))
        print(f"epoch {t.epoch}/{t.cfg.epochs}: {means} ({seconds:.1f} s)", flush=True)
    t._started = time.perf_counter()


def progress_bar(t: Trainer):
    from tqdm.auto import tqdm
    iters = t.iterations_per_epoch
    cpu = f", {t.threads['threads']} CPU threads" if t.device.type == "cpu" else ""
    return tqdm(total=t.cfg.epochs * iters, initial=t.epoch * iters + t.iteration, unit="it",
                desc=f"{t.cfg.preset} on {t.device.type}{cpu}", dynamic_ncols=True, disable=not t.progress)


def precision_for(cfg: Config, device: torch.device):
    """({"precision", "reason"} for the records, the autocast factory the networks run under)."""
    bf16, why = bf16_autocast(device) if cfg.amp else (False, "amp=false")
    autocast = functools.partial(torch.autocast, device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext
    return {"precision": "bfloat16" if bf16 else "float32", "reason": why}, autocast


def threads_for(cfg: Config, device: torch.device, ckpt: Optional[dict]) -> dict:
    """The CPU threads a run trains with, and why: cfg.threads; else the count the checkpoint was
    trained with (it decides how a convolution's sums are split, so the last bits of every step);
    else, on the CPU, as many as there are idle cores (runs/device.py: choose_threads)."""
    was = (ckpt or {}).get("threads")
    if cfg.threads:
        return {"threads": cfg.threads, "reason": "threads set"}
    if isinstance(was, dict) and isinstance(was.get("threads"), int) and was["threads"] > 0:
        return {"threads": was["threads"], "reason": f"kept from the checkpoint ({was.get('reason')})"}
    if device.type == "cpu":
        count, reason = choose_threads()
        return {"threads": count, "reason": reason}
    return {"threads": torch.get_num_threads(), "reason": f"PyTorch's default ({device.type} run)"}


def train(cfg: Optional[Config], run_dir, **options) -> Path:
    with Trainer(cfg, run_dir, **options) as trainer:
        return trainer.fit()
