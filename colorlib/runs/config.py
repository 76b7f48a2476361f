"""Run configuration: a plain dataclass, one value per line like nanoGPT's config block, each
overridable from the command line (`--set lr=2e-4`), papermill parameters or Python (`make_config`).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
import typing
from dataclasses import dataclass, fields
from typing import Any, Optional

from ..paper.config import PRESETS, PaperConfig

ACCEPTABLE_CHANGES = ("data", "precision")  # what a resume may accept (--accept-change)

DATA_ENV = "COLORLIB_DATA"  # where users point at their own copy of the data


@dataclass
class Config(PaperConfig):
    """The paper's fields (colorlib.paper.config.PaperConfig: data size, networks, lambda,
    optimisation, seed) followed by what a variant or a run adds, all flat."""
    # --- data: where it is read from, what is held out ---
    data: Optional[str] = None  # image folder; None: $COLORLIB_DATA, else torchvision CIFAR-10 in data_root
    data_root: str = "data"  # where torchvision downloads the official CIFAR-10
    val_size: int = 5000  # seeded hold-out of the training split: model selection, never trained on
    n_samples: int = 16  # fixed test images whose colorization is saved after every epoch

    # --- variants of the networks (colorlib.variants; the paper: batch, batch, global, rgb) ---
    norm: str = "batch"  # generator normalization: batch | instance | fan | spade | none (see variants/norms.py)
    d_norm: str = "batch"  # discriminator normalization: batch | instance | spectral | none
    d_arch: str = "global"  # global: one logit per image (the paper) | patch: PatchGAN (pix2pix)
    output: str = "rgb"  # rgb (the paper) | ycbcr: predict Cb, Cr and keep the input's luma exactly
    # | classes: Cb, Cr as a distribution over quantized chroma bins (Zhang et al. 2016), luma kept
    chroma_temperature: float = 0.38  # output=classes: annealed mean of the bins (1: mean, ->0: mode)

    # --- variants of the objective and the optimizer (the paper: cosine, 1, one rate, constant) ---
    content_loss: str = "cosine"  # cosine over the image (eq. 4) | cosine_pixel | l1 (pix2pix)
    # output=classes always uses the rebalanced cross-entropy over chroma bins instead
    adv_weight: float = 1.0  # 0 turns the GAN off: a plain regression U-Net baseline
    d_lr: Optional[float] = None  # discriminator learning rate (None: lr); two time-scale rule (TTUR)
    lr_schedule: str = "constant"  # constant | linear: decays both rates linearly to 0 over the second half

    # --- stabilisers (all off in the paper's recipe; see the stable preset and notebook 08) ---
    r1_gamma: float = 0.0  # R1 gradient penalty on real pairs, gamma/2 * |grad_x D|^2 (Mescheder et al. 2018)
    label_smoothing: float = 0.0  # one-sided: real pairs are labelled 1 - label_smoothing (Salimans et al. 2016)
    ema_decay: float = 0.0  # exponential moving average of G's weights (0: off); used for samples and generator.pt

    # --- run mechanics: how fast and where, never what is computed ---
    device: str = "auto"  # auto picks cuda > mps > cpu
    threads: int = 0  # CPU threads; 0: as many as there are idle cores, measured at start (device.choose_threads)
    checkpoint_every: int = 1  # epochs between checkpoints (one is always written at the end)
    log_every: int = 50  # iterations between progress-bar updates (the only host syncs on GPU)
    channels_last: bool = True
    amp: bool = True  # bf16 autocast on CUDA and on CPUs with bf16 units (runs/device.py: bf16_autocast)

    preset: str = "custom"  # recorded so every figure can say which preset made it

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The one written split between the maths and the mechanics. A resumed run may change these
# fields (where its data are read from, how long, how fast, how often it reports); every other
# field changes what is computed, and engine/resume.py refuses a change of it.
RESUMABLE_FIELDS = frozenset({"data", "data_root", "epochs", "device", "threads", "checkpoint_every",
                              "log_every", "channels_last", "amp"})
# what a recipe is described by (tutorial tables): every field but these mechanics, the samples and the label
RUN_MECHANICS = RESUMABLE_FIELDS - {"epochs"} | {"n_samples", "seed", "preset"}


CHOICES = {"norm": ("batch", "instance", "fan", "spade", "none"), "d_norm": ("batch", "instance", "spectral", "none"),
           "content_loss": ("cosine", "cosine_pixel", "l1"), "d_arch": ("global", "patch"),
           "output": ("rgb", "ycbcr", "classes"), "lr_schedule": ("constant", "linear")}

FIELD_NAMES = tuple(f.name for f in fields(Config))
COUNTS = ("n_samples", "g_width", "d_width", "batch_size", "d_steps", "checkpoint_every", "log_every")
# the ranges of the numeric fields: (test, what to use)
RANGES = {
    **{name: (lambda v: v >= 1, "at least 1") for name in COUNTS},
    **{name: (lambda v: 1 <= v <= 5, "1..5 (a 32x32 image is 1x1 after 5 levels)") for name in ("g_depth", "d_depth")},
    "lam": (lambda v: v >= 0, "0 or more"), "adv_weight": (lambda v: v >= 0, "0 (no GAN: a plain regression) or more"),
    "threads": (lambda v: v >= 0, "0 (as many as there are idle cores) or more"),
    "epochs": (lambda v: v >= 0, "0 or more"), "val_size": (lambda v: v >= 0, "0 (no validation split) or more"),
    "lr": (lambda v: v > 0, "positive"), "d_lr": (lambda v: v > 0, "a positive learning rate, or none to use lr"),
    "beta1": (lambda v: 0 <= v < 1, "0 <= beta1 < 1 (Adam's default 0.9)"),
    "beta2": (lambda v: 0 <= v < 1, "0 <= beta2 < 1 (Adam's default 0.999)"),
    "r1_gamma": (lambda v: v >= 0, "0 (off) or more"),
    "label_smoothing": (lambda v: 0 <= v < 1, "0 <= label_smoothing < 1 (0: off; 0.1 is usual)"),
    "ema_decay": (lambda v: 0 <= v < 1, "0 <= ema_decay < 1 (0: off; 0.999 is usual)"),
    "chroma_temperature": (lambda v: v > 0, "a number above 0 (1: the mean of the bins, towards 0: the mode)"),
    "seed": (lambda v: -2 ** 63 <= v < 2 ** 64, "a whole number from 0 to 2**63 - 1 (torch.manual_seed's range)"),
}


class OneLineError(Exception):
    """An error whose message says what to do: a notebook shows it as that one line, not a traceback
    (IPython calls `_render_traceback_`), as the command line does."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ConfigError(OneLineError, ValueError):
    """A configuration a user asked for that cannot run; the message says how to fix it."""


def refuse_existing(path, option: str = "--out") -> None:
    """The one rule for a file a command writes (bench, train-classifier): one that is there, or a link,
    is never replaced, and the command stops before any work."""
    if os.path.lexists(path):
        raise ConfigError(f"{path} already exists: colorlib never replaces a file that is there; choose another "
                          f"{option}, or delete it first")


def _kind(name: str):
    """(the field's declared type, whether it may be None)."""
    kind = typing.get_type_hints(Config)[name]
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
        return next(k for k in typing.get_args(kind) if k is not type(None)), True
    return kind, False


def validate(cfg: Config) -> None:
    """Refuse, with one line saying what to change, any value a run could not use: its type first (a
    value from JSON or Python fails here, not deep inside training), then its range."""
    types = {bool: (bool, "true or false"), int: (numbers.Integral, "a whole number"),
             float: (numbers.Real, "a finite number"), str: (str, "a string")}
    for f in fields(cfg):
        value, (kind, optional) = getattr(cfg, f.name), _kind(f.name)
        if kind not in types or (value is None and optional):
            continue
        ok = isinstance(value, types[kind][0]) and (kind is bool or not isinstance(value, bool))
        if not ok or (kind is float and not math.isfinite(value)):
            raise ConfigError(f"{f.name}={value!r} is not valid: expected {types[kind][1]}")
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ConfigError(f"{name}={getattr(cfg, name)!r} is not valid; choose one of {', '.join(allowed)}")
    for name, (ok, rule) in RANGES.items():
        value = getattr(cfg, name)
        if value is not None and not ok(value):
            raise ConfigError(f"{name} must be {rule}, got {value}" if name in (*COUNTS, "threads", "epochs", "lr") else
                              f"{name}={value!r} is out of range: use {rule}")
    if cfg.train_size is not None and cfg.train_size < cfg.batch_size:
        raise ConfigError(f"train_size={cfg.train_size} is smaller than one batch ({cfg.batch_size})")
    if cfg.device != "auto" and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", cfg.device):
        raise ConfigError(f"device={cfg.device!r} is not valid; use auto, cpu, cuda, cuda:N or mps")


def make_config(preset: str = "quick", **overrides: Any) -> Config:
    """The preset's config with `overrides` applied; unknown names are an error, never ignored."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return Config(**{**PRESETS[preset], **overrides_dict(overrides), "preset": preset})


def overrides_dict(value: Any, what: str = "overrides") -> dict[str, Any]:
    """`value` as {config field: value} (a notebook's `overrides` parameter, a plan's "set")."""
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping of config fields to values, e.g. "
                          f"{{\"lam\": 10.0, \"train_size\": 2000}}, not {value!r}")
    fields_ = [n for n in FIELD_NAMES if n != "preset"]  # the preset is chosen on its own
    if unknown := sorted(str(k) for k in set(value) - set(fields_)):
        raise ConfigError(f"{what}: unknown config field(s) {', '.join(unknown)}; valid fields: {', '.join(fields_)}")
    return dict(value)


def config_from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a saved config; fields added in later versions keep their defaults."""
    return Config(**{k: v for k, v in values.items() if k in FIELD_NAMES})


def parse_override(text: str) -> tuple[str, Any]:
    """`name=value` from the command line, the value cast to the field's declared type."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like name=value")
    name, raw = (part.strip() for part in text.split("=", 1))
    name = name.replace("-", "_")
    if name not in FIELD_NAMES:
        raise ConfigError(f"unknown config field {name!r}; valid fields: {', '.join(FIELD_NAMES)}")
    if name == "preset":
        raise ConfigError(f"the preset cannot be changed with --set; choose it with --preset ({', '.join(PRESETS)})")
    kind, optional = _kind(name)
    if optional and raw.lower() in ("none", "null"):
        return name, None
    booleans = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
    try:
        if kind is bool:
            return name, booleans[raw.lower()]
        return name, kind(raw) if kind in (int, float) else raw
    except (KeyError, ValueError):
        default = getattr(Config(), name)
        example = default if default is not None else {int: 1, float: 0.5}.get(kind, "text")
        raise ConfigError(f"{name}={raw!r}: expected a value like {example!r}") from None
