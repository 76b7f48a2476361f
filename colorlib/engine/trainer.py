"""The engine: the paper's training iteration (paper/step.py) run over epochs, fast, resumable
and safe to interrupt.

What this file adds around `training_iteration`, and nothing of the maths: the epoch order (a
pure function of seed and epoch, paper/data.py), progress and losses, an end-of-epoch record
(sample strip, epochs.csv, the validation hook's scores and best.pt), checkpoints and exact resume
(run_files.py, resume.py), the run directory's lock, Ctrl-C held to an iteration boundary
(interrupts.py), the process-wide torch settings (settings.py), and the speed: the dataset on the
device as uint8 with batches gathered by a shuffled index, bf16 autocast where it pays
(precision.py), channels_last, fused Adam and one whole iteration as a CUDA graph on CUDA
(cuda_graphs.py), DistributedDataParallel under torchrun (distributed.py).
"""
from __future__ import annotations

import contextlib
import math
import signal
import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ..paper.data import epoch_order, to_model_range, to_uint8
from ..paper.step import training_iteration
from ..runs import rundir
from ..runs.config import Config, ConfigError, config_from_dict
from ..runs.data import load_split
from . import run_files, schedule, setup
from .distributed import Dist
from .interrupts import DeferredInterrupt, TrainingInterrupted, signal_of
from .progress import cpu_threads, progress_bar, show_progress
from .resume import run_config
from .run_files import EPOCH_COLUMNS, LOSS_NAMES
from .settings import TorchSettings

# "D wins outright" in an iteration when its two BCE terms sum below this: it then gives the
# right answer with ~99.5% confidence on both real and generated pairs, and G's adversarial
# gradient vanishes. The share of such iterations per epoch is the collapse statistic.
D_WINS_LOSS = 0.01


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class Trainer:
    """Owns the networks, optimizers, data and run directory of one training run.

    Which configuration is used follows `resume.run_config`: resume=False starts `cfg` as a new
    run; resume=True continues the run in `run_dir` (its config.json wins; `cfg` may be None or
    differ only in RESUMABLE_FIELDS); resume="auto" continues a run there if any, else starts `cfg`.
    validator: `validator(trainer)` -> an object whose `score(G)` gives the epoch's validation
    scores (lab.validation.validator_for); None: no validation (NaN in epochs.csv, no best.pt).
    Resuming is exact only on the training images and in the precision the checkpoint was trained
    with (run_files.check_unchanged): a change of either is refused unless named in
    `accept_changes` ("data", "precision"); run.json then records it.
    The networks are built from `cfg.seed` without disturbing the caller's random numbers; the
    process-wide settings the trainer changes (`cfg.threads`; cuDNN autotuning and TF32 on CUDA)
    are put back by `close()` (or by leaving `with Trainer(...)`; `train` does it).
    One iteration is `train_step(index)` (a batch picked by index, as `fit` does) or `step(gray, rgb)`."""

    def __init__(self, cfg: Config | None, run_dir, resume: bool | str = False, progress: bool = True,
                 dist: Optional[Dist] = None, epoch_lines: bool = False, data_cache: Optional[dict] = None,
                 validator: Optional[Callable] = None, accept_changes=()):
        """data_cache: a dict shared by trainers packed into one process (see lab/packing.py), so
        that they decode the data, and hold it on the device, once.

        The run directory is locked (RUN/train.lock) from here until training ends, on every
        path out: a second training into it is refused, naming the first."""
        self.dist = dist or Dist.from_env()
        self.run_dir = Path(run_dir)
        self.progress = progress and self.dist.is_main
        self.epoch_lines = epoch_lines and self.dist.is_main  # one log line per epoch, for batch logs
        self.data_cache = data_cache if data_cache is not None else {}
        self.accept_changes = run_files.accepted(accept_changes)
        self.commit = run_files.git_commit()  # once: run.json is rewritten at every checkpoint
        self.settings = TorchSettings()
        self.lock = setup.lock_run_dir(self)
        try:
            with torch.random.fork_rng(devices=[]):  # seeded here; the caller's generator is left as it was
                self.cfg, self.resuming = run_config(self.run_dir, cfg, resume=resume,
                                                     main_process=self.dist.is_main)
                setup.start_device(self)
                setup.build_networks(self)
                setup.build_optimizers(self)
                setup.reset_progress(self)
                setup.load_data(self, validator)
                setup.restore_or_start(self)
                setup.wrap_networks(self)
                setup.write_run_files(self)
        except BaseException:
            self.settings.restore()
            self.release_lock()
            raise

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(wait=kind is None)

    def release_lock(self) -> None:
        if getattr(self, "lock", None) is not None:
            self.lock.release()

    def split(self, split: str, size=None, seed: int = 0):
        """A split of the run's data (runs.data.load_split), on the device, decoded once per data_cache."""
        cfg = self.cfg
        key = (cfg.data, cfg.data_root, split, size, seed, cfg.val_size, str(self.device))
        if key not in self.data_cache:
            loaded = load_split(cfg.data, split, size, seed, cfg.data_root, val_size=cfg.val_size)
            loaded.images = loaded.images.to(self.device)
            self.data_cache[key] = loaded
        return self.data_cache[key]

    def rates(self, epoch: int) -> tuple[float, float]:
        """(G's, D's) learning rates in epoch `epoch` (0-based; engine/schedule.py)."""
        return schedule.rates(self.cfg, epoch)

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

    @property
    def iterations_per_epoch(self) -> int:
        return self.images.shape[0] // self.cfg.batch_size

    @property
    def G_eval(self) -> nn.Module:
        """The generator that samples, validation and generator.pt use: the weight average when kept."""
        return self.average.model

    @property
    def G_ema(self) -> Optional[nn.Module]:
        return self.average.model if self.average.kept else None

    # ------------------------------------------------------------ one iteration
    def step(self, gray: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """One training iteration on the batch given (model range, see paper.data.to_model_range):
        the paper's `training_iteration`, then the weight average's update. Returns the LOSS_NAMES
        losses on the device (under torchrun, the global batch's). Always eager: `train_step`, which
        picks the batch by index, is the iteration `fit` runs and the one a CUDA graph replays."""
        losses = training_iteration(self.G_step, self.D_step, self.g_opt, self.d_opt, gray, rgb,
                                    self.objective, self.d_steps)
        self.average.update()
        return self.dist.mean(losses)

    def _batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gray, rgb = to_model_range(self.images.index_select(0, index))
        return (gray.contiguous(memory_format=self.memory_format),
                rgb.contiguous(memory_format=self.memory_format))

    def train_step(self, index: torch.Tensor) -> torch.Tensor:
        """One training iteration (see `step`) on the training images at `index` (a 1-D tensor of
        indices into `self.images`, on the device, one batch long). Returns the losses, LOSS_NAMES
        order, on the device (not synchronised). On CUDA with cuda_graphs, from the fourth call on
        it replays one captured graph of the whole iteration. It does not advance the run's
        epoch/iteration counters or write anything: `fit`/`iterate` do that around it."""
        if self.graphed is not None:
            return self.graphed(index)
        return self.step(*self._batch(index))

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
            raise TrainingInterrupted(f"interrupted: {run_files.kept_message(self)}", signal_of(exc)) from None
        finally:
            steps.close()
        return self.run_dir

    def iterate(self):
        """Train to the end, yielding after every iteration: `fit` runs it through, and
        lab/packing.train_packed interleaves several runs' iterations on one device.

        Stopping loses nothing. Ctrl-C (or SIGTERM, SIGHUP) during an iteration or an epoch's end
        is held until it is done (`DeferredInterrupt`); the run is then saved at that iteration boundary (the
        checkpoint records the iteration within the epoch, and the partial epoch's losses travel
        in its history) and `TrainingInterrupted` says what is kept: resuming continues exactly
        there, bitwise as if never stopped. Closing the generator at a yield (a caller or a
        packed run stopping) saves the same way. A second Ctrl-C stops at once and keeps the last
        checkpoint; run.json always describes what last.pt holds."""
        gate = DeferredInterrupt()
        if self.lock is not None:  # released when training ends; a later fit() takes it again
            self.lock.acquire()
            self.lock.training = True
        self._bar, self._losses, self._started = None, None, time.perf_counter()
        try:
            setup.check_batches(self)
            self._bar = progress_bar(self) if self.progress else None
            self._write_run_info("running")
            self._started = time.perf_counter()
            while self.epoch < self.cfg.epochs:  # cfg re-read: set_epochs may change the plan
                yield from self._epoch(gate)
                if gate.requested and self.epoch < self.cfg.epochs:  # at the very end: just finish
                    with gate:
                        self._stop_here(raise_interrupt=True, signum=gate.signum)
            with gate:
                if self.epoch == self.cfg.epochs:
                    if self.dist.is_main and not (self.run_dir / "checkpoints" / "generator.pt").exists():
                        run_files.save_generator(self)  # a run killed between its last two files
                    self._write_run_info("finished")
        except (TrainingInterrupted, TrainingDiverged, GeneratorExit):
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP
            if gate.broke:  # at once, inside an iteration (a second signal, or no handler): last.pt is kept
                self._write_run_info("interrupted")
            else:  # between the guarded blocks, at an iteration boundary: saved there
                with gate:
                    self._stop_here(raise_interrupt=False)
            raise TrainingInterrupted(f"interrupted: {run_files.kept_message(self)}",
                                      getattr(exc, "signum", None) or gate.signum) from None
        except Exception as exc:  # recorded where the disk still takes it: the error itself may be a full disk
            with contextlib.suppress(OSError):
                self._write_run_info("failed", error=f"{type(exc).__name__}: {rundir.first_line(exc)}")
            raise
        finally:
            if self._bar is not None:
                self._bar.close()
            self.release_lock()

    def _epoch(self, gate: DeferredInterrupt):
        """One epoch (or the rest of one a checkpoint stopped in), yielding after every iteration."""
        cfg, epoch, iters = self.cfg, self.epoch, self.iterations_per_epoch
        local = cfg.batch_size // self.dist.world_size  # this rank's shard of every batch
        with gate:
            if cfg.lr_schedule != "constant":
                schedule.set_rates(self, epoch)
            order = epoch_order(self.images.shape[0], epoch, cfg.seed, self.device)
            self._losses = losses = torch.empty(iters, len(LOSS_NAMES), device=self.device)
            first = self.iteration  # > 0: a run saved in the middle of this epoch
            if first:
                losses[:first] = self.partial_losses.to(self.device)
        for it in range(first, iters):
            with gate:
                batch = order[it * cfg.batch_size:(it + 1) * cfg.batch_size]
                losses[it] = self.train_step(batch[self.dist.rank * local:(self.dist.rank + 1) * local])
                self.iteration = it + 1
                if (it + 1) % cfg.log_every == 0 or it + 1 == iters:
                    self._check_and_report(losses[it], epoch, it)
            if gate.requested:
                with gate:
                    self._stop_here(raise_interrupt=True, signum=gate.signum)
            try:
                yield
            except GeneratorExit:
                with gate:
                    self._stop_here(raise_interrupt=False)
                raise
        with gate:
            losses = losses.cpu()
            if not torch.isfinite(losses).all():
                bad = int((~torch.isfinite(losses)).any(1).nonzero()[0])
                self._diverged(epoch, bad, losses[bad])
            self.iteration, self.partial_losses = 0, losses[:0]  # the epoch joins the history
            self._losses = None
            self._end_epoch(epoch, losses, self._started)
            if self.epoch_lines:
                means = ", ".join(f"{k}={v:.4f}" for k, v in zip(LOSS_NAMES, losses.mean(0).tolist()))
                print(f"epoch {self.epoch}/{cfg.epochs}: {means} "
                      f"({time.perf_counter() - self._started:.1f} s{cpu_threads(self)})",
                      flush=True)
            self._started = time.perf_counter()

    def _stop_here(self, raise_interrupt: bool, signum: int = signal.SIGINT) -> None:
        """Save the run at the iteration boundary it stands at (unless last.pt already holds it, or
        a loss of the partial epoch is not finite), mark it interrupted, and with raise_interrupt
        raise `TrainingInterrupted` saying what is kept."""
        if self.dist.is_main:
            losses = self._losses
            partial = losses[:self.iteration].cpu() if losses is not None else self.partial_losses
            here = (self.epoch, self.iteration)
            if here != self.saved[:2] and torch.isfinite(partial).all():
                self.partial_losses = partial.float()
                self.wall_time += time.perf_counter() - self._started
                self.save_checkpoint(status="interrupted")
            else:
                self._write_run_info("interrupted")
        if raise_interrupt:
            raise TrainingInterrupted(f"interrupted: {run_files.kept_message(self)}", signum)

    def close(self, wait: bool = True) -> None:
        """Release the run directory's lock if training has not already, put back the process-wide
        torch settings the trainer changed, and under torchrun leave the process group (waiting
        for rank 0 with wait=True). Safe to call twice; the networks, data and run directory stay
        usable (a later fit() runs with the process's settings as they then are)."""
        self.release_lock()
        self.settings.restore()
        self.dist.leave(wait)

    def _check_and_report(self, last: torch.Tensor, epoch: int, it: int) -> None:
        values = last.tolist()  # the one host sync per log_every iterations
        if not all(math.isfinite(v) for v in values):
            self._diverged(epoch, it, last.cpu())
        if self._bar is not None:
            show_progress(self._bar, self, values, epoch, it)

    def _diverged(self, epoch: int, it: int, values: torch.Tensor) -> None:
        msg = run_files.diverged_message(self, epoch, it, values)
        self._write_run_info("diverged", error=msg)
        raise TrainingDiverged(msg)

    def _end_epoch(self, epoch: int, losses: torch.Tensor, started: float) -> None:
        end_epoch(self, epoch, losses, started)

    @torch.inference_mode()
    def colorize_samples(self) -> torch.Tensor:
        G = self.G_eval
        G.eval()
        with self.autocast():
            out = G(self.sample_gray.contiguous(memory_format=self.memory_format))
        G.train()
        return to_uint8(out)

    def save_checkpoint(self, status: Optional[str] = None) -> None:
        """last.pt, then history.csv, epochs.csv and run.json (run_files.save_checkpoint)."""
        run_files.save_checkpoint(self, status)

    def _write_run_info(self, status: str, error: Optional[str] = None) -> None:
        run_files.write_run_info(self, status, error)


def end_epoch(self: Trainer, epoch: int, losses: torch.Tensor, started: float) -> None:
    """The end of an epoch of `Trainer._epoch`: the epoch joins the history; rank 0 records it:
    epochs.csv (D's wins, the validation hook's scores, the rates), the sample strip, best.pt by
    the feature distance, and a checkpoint every checkpoint_every epochs."""
    self.history = torch.cat([self.history, run_files.history_rows(self, epoch, losses)])
    self.epoch = epoch + 1
    self.wall_time += time.perf_counter() - started
    if not self.dist.is_main:
        return
    d_wins = float(((losses[:, 3] + losses[:, 4]) < D_WINS_LOSS).float().mean()) if self.d_steps else 0.0
    val = self.validator.score(self.G_eval) if self.validator is not None else {}
    self.epoch_rows.append([self.epoch, d_wins, val.get("psnr_dataset_db", math.nan),
                            val.get("colourfulness", math.nan), val.get("feature_fd", math.nan),
                            *self.rates(epoch)])
    rundir.write_epochs(self.run_dir, EPOCH_COLUMNS, self.epoch_rows)
    rundir.save_strip(self.run_dir / "samples" / f"epoch_{self.epoch:04d}.png", self.colorize_samples())
    run_files.save_if_best(self, val)
    if self.epoch % self.cfg.checkpoint_every == 0 or self.epoch == self.cfg.epochs:
        self.save_checkpoint()


def train(cfg: Optional[Config], run_dir, resume: bool | str = False, progress: bool = True,
          epoch_lines: bool = False, validator: Optional[Callable] = None, accept_changes=()) -> Path:
    """Train `cfg` into `run_dir` (or continue the run there with resume=True, or with
    resume="auto" if it holds one: see `resume.run_config`), then close the trainer."""
    trainer = Trainer(cfg, run_dir, resume=resume, progress=progress, epoch_lines=epoch_lines, validator=validator,
                      accept_changes=accept_changes)
    try:
        out = trainer.fit()
    except BaseException:
        trainer.close(wait=False)  # a failing rank must not wait for the others at a barrier
        raise
    trainer.close()
    return out
