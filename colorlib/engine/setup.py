"""Building a Trainer, step by step (Trainer.__init__ calls these in order): the run directory's
lock, the device and its settings, the networks and their objective, the optimizers, the data,
a checkpoint to resume from, the wrappers the training step calls, and the run's first files.
Each takes the trainer `t` it sets up."""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Optional

import torch
from torch import nn

from .. import variants
from ..paper.data import to_model_range, to_uint8
from ..runs import rundir
from ..runs.config import ConfigError
from ..runs.data import fingerprint
from ..runs.device import choose_threads, pick_device
from . import run_files, schedule
from .cuda_graphs import GraphedIteration
from .fast_layers import use_matmul_convs
from .networks import StepNetwork
from .precision import autocast_for, discriminator_autocast, pinned_cpu_bf16
from .resume import keep_damaged_config
from .run_files import LOSS_NAMES


def lock_run_dir(t) -> Optional[rundir.RunLock]:
    """Take RUN/train.lock (rank 0 only) and remove what a killed training left half written."""
    if not t.dist.is_main:
        return None
    lock = rundir.RunLock(t.run_dir)
    lock.acquire()
    rundir.remove_temporary_files(t.run_dir)  # left by a training that was killed
    return lock

def start_device(t) -> None:
    """The device, the process-wide settings training runs with, and the torchrun process group."""
    t.device = pick_device(t.cfg.device)
    cuda = t.device.type == "cuda"
    use_threads(t)
    if t.dist.world_size > 1:
        t.device = t.dist.start(t.device, t.cfg.batch_size)
    if cuda:
        for name in ("cudnn.benchmark", "cuda.matmul.allow_tf32", "cudnn.allow_tf32"):
            t.settings.change(name, True)
    t.use_graphs = cuda and t.cfg.cuda_graphs and t.dist.world_size == 1
    t.memory_format = torch.channels_last if t.cfg.channels_last else torch.contiguous_format
    pinned_cpu_bf16()  # a mistyped $COLORLIB_CPU_BF16 is an error wherever it would be read, never ignored
    t.autocast = autocast_for(t.device) if t.cfg.amp else contextlib.nullcontext
    # what the run computes in, and why: recorded in last.pt and run.json, and kept on resume
    t.precision = ({"precision": t.autocast.precision, "reason": t.autocast.reason} if t.cfg.amp
                   else {"precision": "float32", "reason": "amp=false"})
    t.autocast_d = discriminator_autocast(t.cfg.d_norm, t.autocast)

def use_threads(t) -> None:
    """The CPU threads the run trains with: cfg.threads, or with threads=0 as many as there are idle
    cores (`choose_threads`). Recorded in last.pt and run.json (`threads`): the thread count changes
    how a convolution's sums are split, so the last bits of every step depend on it, and a resumed
    run with threads=0 goes on with the count it was trained with (run_files.check_unchanged)."""
    if t.cfg.threads:
        count, reason = t.cfg.threads, "threads set"
    elif t.device.type == "cpu":
        count, reason = choose_threads()
    else:
        count, reason = torch.get_num_threads(), f"PyTorch's default ({t.device.type} run)"
    t.settings.change("num_threads", count)
    t.threads = {"threads": count, "reason": reason}

def build_networks(t) -> None:
    """G, D, the objective and G's weight average from cfg.seed (colorlib.variants builds what
    cfg names), on the device (SyncBatchNorm under torchrun on GPUs)."""
    cfg = t.cfg
    # the CPU generator only (torch.manual_seed would seed the CUDA ones for the caller too):
    # the networks are built on the CPU, and no training operation draws random numbers
    torch.default_generator.manual_seed(cfg.seed)
    t.G = variants.build_generator(cfg)
    t.D = variants.build_discriminator(cfg)
    if t.dist.world_size > 1 and t.device.type == "cuda":
        # PyTorch's SyncBatchNorm runs on GPUs only; on CPU (gloo) each rank normalizes
        # with its own shard's statistics, as plain DDP does (see distributed.py)
        t.G = nn.SyncBatchNorm.convert_sync_batchnorm(t.G)
        t.D = nn.SyncBatchNorm.convert_sync_batchnorm(t.D)
    t.G.to(t.device, memory_format=t.memory_format)
    t.D.to(t.device, memory_format=t.memory_format)
    t.objective = variants.build_objective(cfg, t.G)
    t.d_steps = variants.discriminator_steps(cfg)
    t.average = variants.build_average(cfg, t.G)

def build_optimizers(t) -> None:
    """Adam for G and for D at the first epoch's learning rates (fused on CUDA)."""
    cfg = t.cfg
    opt_kw = dict(betas=(cfg.beta1, cfg.beta2))
    if t.device.type == "cuda":
        opt_kw.update(fused=True, capturable=t.use_graphs)
    # a learning rate that changes during a run must be a device tensor inside a CUDA graph
    t.lr_tensor = t.use_graphs and cfg.lr_schedule != "constant"
    g_lr, d_lr = t.rates(0)
    t.g_opt = torch.optim.Adam(trainable(t.G), lr=schedule.lr_value(t, g_lr), **opt_kw)
    t.d_opt = torch.optim.Adam(trainable(t.D), lr=schedule.lr_value(t, d_lr), **opt_kw)

def reset_progress(t) -> None:
    """The state of a run that has trained nothing; run_files.load_checkpoint replaces it."""
    t.epoch = 0  # epochs completed
    t.iteration = 0  # iterations of epoch t.epoch + 1 completed (a run saved mid-epoch resumes there)
    t.partial_losses = torch.empty(0, len(LOSS_NAMES))  # ... and their losses, until that epoch ends
    t.saved = (0, 0, 0)  # (epoch, iteration, history rows) of the checkpoint last.pt holds
    t.history = torch.empty(0, len(rundir.HISTORY_COLUMNS))
    t.epoch_rows: list[list[float]] = []  # one per epoch: EPOCH_COLUMNS
    t.best_fd = math.inf
    t.wall_time = 0.0
    t.accepted: list[str] = []  # changes of data or precision a resume accepted (run_files.check_unchanged)
    t.graphed = GraphedIteration(t.step, t._batch, (t.g_opt, t.d_opt)) if t.use_graphs else None

def load_data(t, validator: Optional[Callable]) -> None:
    """The training images (on the device, shared through data_cache), the fixed sample images,
    what the generator learns from the data before training, and the validator."""
    cfg = t.cfg
    train = t.split("train", cfg.train_size, cfg.seed)
    t.data_source = train.source
    t.images = train.images
    if getattr(train, "fingerprint", None) is None:  # once per data_cache entry: packed runs share it
        train.fingerprint = fingerprint(train.images, train.available)
    t.data_fingerprint = train.fingerprint
    check_batches(t)  # before anything is written: a refused run leaves nothing behind
    variants.fit_to_data(t.G, t.images)
    t.sample_images = t.split("test", cfg.n_samples, cfg.seed).images
    t.sample_gray, t.sample_rgb = to_model_range(t.sample_images)
    t.validator = validator(t) if validator is not None and cfg.val_size > 0 else None

def check_batches(t) -> None:
    """A ConfigError, saying what to change, where the training images make no batch."""
    n, batch = t.images.shape[0], t.cfg.batch_size
    if n // batch == 0:
        raise ConfigError(f"{n} training images make no batch of {batch}: use more images (--data, train_size) "
                          f"or a smaller batch (--set batch_size={n}); nothing was written")

def restore_or_start(t) -> None:
    """Resuming: the checkpoint's weights, optimizers and progress. A run stopped before its
    first checkpoint has none: it starts over, same config (see run_config)."""
    last = t.run_dir / "checkpoints" / "last.pt"
    loaded = t.resuming and (last.exists() or rundir.checkpoint_expected(t.run_dir))
    if loaded:
        run_files.load_checkpoint(t, last)
        run_files.check_planned_epochs(t)
    if t.average.kept and not loaded:
        t.average.model.load_state_dict(t.G.state_dict())

def wrap_networks(t) -> None:
    """The networks the training step calls. G_train / D_train are the DDP- and compile-wrapped
    views of t.G / t.D, which stay the plain modules whose state_dict is saved; the
    generator update runs D frozen, through D_frozen (the plain module under DDP: the D wrapper
    would wait for D gradients that never come). The step is given them as StepNetworks."""
    t.G_train, t.D_train, t.D_frozen = t.dist.wrap(t.G, t.device), \
        t.dist.wrap(t.D, t.device), t.D
    if t.cfg.compile:
        t.G_train, t.D_train = torch.compile(t.G_train), torch.compile(t.D_train)
        t.D_frozen = torch.compile(t.D_frozen) if t.dist.world_size > 1 else t.D_train
    t.precision["matmul_convs"] = matmul_convs(t)
    t.G_step = StepNetwork(t.G, t.G_train, t.autocast)
    t.D_step = StepNetwork(t.D, t.D_train, t.autocast_d, frozen_call=t.D_frozen, float_io=True)

# the largest map (pixels a side; the smaller of a layer's input and output) whose convolutions
# run as matrix multiplies, measured on the paper's networks (bench --profile, AMD EPYC with
# AVX512-BF16, bf16): at 2x2 oneDNN's backward ran at ~120 GFLOP/s and the matmul form faster; at
# 4x4 and above oneDNN ran near the matmul ceiling and the im2col/col2im copies made it slower.
# Only the wide ones (weights of at least 2^20 entries: the paper's 256 -> 512 and 512 -> 256
# layers): end to end they gained 2-6% of a paper-preset iteration (1 thread); the quick preset's
# narrower 2x2 layers (128 -> 256) gained nothing (-1% to -8%), nor did D's last 1x1 layer
MATMUL_CONV_MAX_SIDE = 2
MATMUL_CONV_MIN_WEIGHTS = 2 ** 20


def matmul_convs(t) -> list[str]:
    """Swap the matmul formulation (fast_layers.py) into the small-map convolutions of G and D
    where cfg.matmul_convs asks for it and it pays: on the CPU under bf16 autocast, eager (not
    compiled). Returns the swapped layers' names ("G.down.2.conv", ...), recorded with the
    precision; float32 runs compute exactly as without it."""
    if not (t.cfg.matmul_convs and t.device.type == "cpu" and t.precision["precision"] == "bfloat16"
            and not t.cfg.compile):
        return []
    gray, rgb = t.sample_gray[:2], t.sample_rgb[:2]
    names = [f"G.{n}" for n in use_matmul_convs(t.G, MATMUL_CONV_MAX_SIDE, MATMUL_CONV_MIN_WEIGHTS, gray)]
    if t.autocast_d is t.autocast:  # a spectral-norm D runs in float32
        names += [f"D.{n}" for n in use_matmul_convs(t.D, MATMUL_CONV_MAX_SIDE, MATMUL_CONV_MIN_WEIGHTS, gray, rgb)]
    return names


def write_run_files(t) -> None:
    """config.json (and, resuming, the tables the checkpoint holds) and the sample strips; rank
    0 only, and only now that the data loaded: a failed start leaves no run behind."""
    if not t.dist.is_main:
        return
    samples = t.run_dir / "samples"
    written = [] if t.resuming else [t.run_dir / "config.json", samples / "truth.png", samples / "gray.png"]
    try:
        t.run_dir.mkdir(parents=True, exist_ok=True)
        if t.resuming:
            keep_damaged_config(t.run_dir)
        rundir.write_json(t.run_dir / "config.json", t.cfg.to_dict())
        if t.resuming:  # history.csv and epochs.csv say what the checkpoint holds, repaired if damaged
            run_files.write_tables(t, run_files.kept_history(t), repair_note=True)
        if not (samples / "truth.png").exists():
            rundir.save_strip(samples / "truth.png", t.sample_images)
            rundir.save_strip(samples / "gray.png", to_uint8(t.sample_gray.expand(-1, 3, -1, -1)))
    except Exception:  # a full or read-only disk: a new run that could not start leaves nothing behind
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            samples.rmdir()  # only when empty
        raise

def trainable(module: nn.Module) -> list:
    return [p for p in module.parameters() if p.requires_grad]  # not FAN's fixed network
