"""Run configuration: the paper's fields, then the variants' and the run's; presets override a few.

A `Config` is a plain dataclass so it reads like nanoGPT's config block: one value per
line, each overridable from the command line (`--set lr=2e-4`), from papermill
parameters, or from Python (`make_config("quick", epochs=3)`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any, Optional

from ..paper.config import PRESETS, PaperConfig

DATA_ENV = "COLORLIB_DATA"  # where users point at their own copy of the data


@dataclass
class Config(PaperConfig):
    """The paper's fields (colorlib.paper.config.PaperConfig: data size, networks, lambda,
    optimisation, seed) followed by what a variant or a run adds, all flat."""
    # --- data: where it is read from, what is held out ---
    data: Optional[str] = None  # folder / pack file; None: $COLORLIB_DATA, else torchvision CIFAR-10 in data_root
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
    chroma_grid: int = 16  # output=classes: the chroma lattice's side, chroma_grid^2 bins
    chroma_embed: int = 0  # output=classes: 0: G's last layer gives the logits; N: N channels, then a conv
    chroma_subsample: int = 1  # output=classes with chroma_embed: 2 predicts the bins at half resolution

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
    amp: bool = True  # bf16 autocast on CUDA, and on CPUs where it pays (engine/precision.py)
    compile: bool = False  # torch.compile the networks (CUDA; pays off on long runs)
    cuda_graphs: bool = True  # capture one whole training iteration as a CUDA graph (CUDA only)
    matmul_convs: bool = True  # the small-map convolutions as matrix multiplies under CPU bf16 (engine/fast_layers.py)

    preset: str = "custom"  # recorded so every figure can say which preset made it

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The one written split between the maths and the mechanics. A resumed run may change these
# fields (where its data are read from, how long, how fast, how often it reports); every other
# field changes what is computed, and engine/resume.py refuses a change of it.
RESUMABLE_FIELDS = frozenset({"data", "data_root", "epochs", "device", "threads", "checkpoint_every",
                              "log_every", "channels_last", "amp", "compile", "cuda_graphs",
                              "matmul_convs"})
# what a recipe is described by (tutorial tables): every field but these mechanics, the samples and the label
RUN_MECHANICS = RESUMABLE_FIELDS - {"epochs"} | {"n_samples", "seed", "preset"}


CHOICES = {
    "norm": ("batch", "instance", "fan", "spade", "none"),
    "d_norm": ("batch", "instance", "spectral", "none"),
    "content_loss": ("cosine", "cosine_pixel", "l1"),
    "d_arch": ("global", "patch"),
    "output": ("rgb", "ycbcr", "classes"),
    "lr_schedule": ("constant", "linear"),
    "device": None,  # checked when resolved, see device.pick_device
}

FIELD_NAMES = tuple(f.name for f in fields(Config))


class ConfigError(ValueError):
    """A configuration a user asked for that cannot run; the message says how to fix it."""


def validate(cfg: Config) -> None:
    """Refuse, with one line saying what to change, any value a run could not use: every field's
    type first (so a value from JSON or Python fails here, not deep inside training), then its range."""
    _check_types(cfg)
    _check_choices(cfg)
    _check_sizes_and_rates(cfg)
    _check_newer_fields(cfg)
    _check_seed_and_device(cfg)


def _check_types(cfg: Config) -> None:
    """Every field of a type this check knows (bool, int, float, str, or None where Optional) has it."""
    import math
    import numbers
    import typing

    hints = typing.get_type_hints(type(cfg))
    for f in fields(cfg):
        value, kind = getattr(cfg, f.name), hints.get(f.name)
        if typing.get_origin(kind) is typing.Union:  # Optional[X]: None or an X
            if value is None:
                continue
            kind = next((k for k in typing.get_args(kind) if k is not type(None)), None)
        if kind is bool:
            ok, expected = isinstance(value, bool), "true or false"
        elif kind is int:
            ok, expected = isinstance(value, numbers.Integral) and not isinstance(value, bool), "a whole number"
        elif kind is float:
            ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                  and math.isfinite(value))
            expected = "a finite number"
        elif kind is str:
            ok, expected = isinstance(value, str), "a string"
        else:  # a type this check does not know: left to the code that uses it
            continue
        if not ok:
            raise ConfigError(f"{f.name}={value!r} is not valid: expected {expected}")


def _check_choices(cfg: Config) -> None:
    """Every field with a fixed set of values (CHOICES) holds one of them."""
    for name, allowed in CHOICES.items():
        if allowed is not None and getattr(cfg, name) not in allowed:
            raise ConfigError(f"{name}={getattr(cfg, name)!r} is not valid; choose one of {', '.join(allowed)}")


def _check_sizes_and_rates(cfg: Config) -> None:
    """Counts, sizes, depths, the learning rate and the loss weights are within what a run can use."""
    positive = ["n_samples", "g_width", "g_depth", "d_width", "d_depth", "batch_size", "d_steps",
                "checkpoint_every", "log_every"]
    for name in positive:
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.threads < 0:
        raise ConfigError(f"threads must be 0 (as many as there are idle cores) or more, got {cfg.threads}")
    if cfg.epochs < 0:
        raise ConfigError(f"epochs must be 0 or more, got {cfg.epochs}")
    if cfg.train_size is not None and cfg.train_size < cfg.batch_size:
        raise ConfigError(f"train_size={cfg.train_size} is smaller than one batch ({cfg.batch_size})")
    if cfg.g_depth > 5:
        raise ConfigError(f"g_depth={cfg.g_depth}: a 32x32 image halves to 1x1 after 5 levels; use 1..5")
    if cfg.d_depth > 5:
        raise ConfigError(f"d_depth={cfg.d_depth}: use 1..5 for 32x32 images")
    if cfg.lr <= 0:
        raise ConfigError(f"lr must be positive, got {cfg.lr}")
    if cfg.lam < 0 or cfg.adv_weight < 0:
        raise ConfigError(f"the loss weights need lam and adv_weight non-negative, got lam={cfg.lam}, "
                          f"adv_weight={cfg.adv_weight}")


def _check_newer_fields(cfg: Config) -> None:
    """The newer fields (optimizer, stabilisers, chroma, validation split) are in their ranges."""
    # what the newer fields accept; each is checked where this Config has it
    ranges = {
        "d_lr": (lambda v: v > 0, "a positive learning rate, or none to use lr"),
        "beta1": (lambda v: 0 <= v < 1, "0 <= beta1 < 1 (Adam's default 0.9)"),
        "beta2": (lambda v: 0 <= v < 1, "0 <= beta2 < 1 (Adam's default 0.999)"),
        "r1_gamma": (lambda v: v >= 0, "0 (off) or more"),
        "label_smoothing": (lambda v: 0 <= v < 1, "0 <= label_smoothing < 1 (0: off; 0.1 is usual)"),
        "ema_decay": (lambda v: 0 <= v < 1, "0 <= ema_decay < 1 (0: off; 0.999 is usual)"),
        "chroma_temperature": (lambda v: v > 0, "a number above 0 (1: the mean of the bins, towards 0: the mode)"),
        "val_size": (lambda v: v >= 0, "0 (no validation split) or more"),
        "chroma_grid": (lambda v: 2 <= v <= 64, "a lattice side from 2 to 64 (16: 256 bins)"),
        "chroma_embed": (lambda v: v >= 0, "0 (the last layer gives the logits) or a channel count"),
        "chroma_subsample": (lambda v: v in (1, 2), "1 (full resolution) or 2 (half, needs chroma_embed > 0)"),
    }
    for name, (ok, rule) in ranges.items():
        value = getattr(cfg, name, None)
        if value is not None and not ok(value):
            raise ConfigError(f"{name}={value!r} is out of range: use {rule}")
    if getattr(cfg, "chroma_subsample", 1) > 1 and not getattr(cfg, "chroma_embed", 0):
        raise ConfigError("chroma_subsample=2 needs chroma_embed > 0 (the layer that predicts at half "
                          "resolution): add --set chroma_embed=32")


def _check_seed_and_device(cfg: Config) -> None:
    """The seed is one torch.manual_seed takes, and the device a string torch can parse as cpu, cuda or mps."""
    if not -2 ** 63 <= cfg.seed < 2 ** 64:
        raise ConfigError(f"seed={cfg.seed} is out of range for torch.manual_seed; use a whole number "
                          f"from 0 to 2**63 - 1")
    if cfg.device != "auto":
        import torch  # parses device strings exactly as training will; no GPU is looked for here
        try:
            kind = torch.device(cfg.device).type
        except RuntimeError:
            kind = None
        if kind not in ("cpu", "cuda", "mps"):
            raise ConfigError(f"device={cfg.device!r} is not valid; use auto, cpu, cuda, cuda:N or mps")


def make_config(preset: str = "quick", **overrides: Any) -> Config:
    """The preset's config with `overrides` applied; unknown names are an error, never ignored."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(FIELD_NAMES))
    if unknown:
        raise ConfigError(f"unknown config field(s) {', '.join(unknown)}; valid fields: {', '.join(FIELD_NAMES)}")
    values = {**PRESETS[preset], **overrides, "preset": preset}
    return Config(**values)


def overrides_dict(value: Any, what: str = "overrides") -> dict[str, Any]:
    """`value` as {config field: value} (a notebook's `overrides` parameter, a plan's "set"): a
    ConfigError saying what is expected for anything that is not a mapping, or names no field."""
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping of config fields to values, e.g. "
                          f"{{\"lam\": 10.0, \"train_size\": 2000}}, not {value!r}")
    fields_ = [n for n in FIELD_NAMES if n != "preset"]  # the preset is chosen on its own
    unknown = sorted(str(k) for k in set(value) - set(fields_))
    if unknown:
        raise ConfigError(f"{what}: unknown config field(s) {', '.join(unknown)}; valid fields: {', '.join(fields_)}")
    return dict(value)


def config_from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a saved config; fields added in later versions keep their defaults."""
    known = {k: v for k, v in values.items() if k in FIELD_NAMES}
    return Config(**known)


def parse_override(text: str) -> tuple[str, Any]:
    """`name=value` from the command line, the value cast to the field's type."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like name=value")
    name, raw = text.split("=", 1)
    name = name.strip().replace("-", "_")
    if name not in FIELD_NAMES:
        raise ConfigError(f"unknown config field {name!r}; valid fields: {', '.join(FIELD_NAMES)}")
    default = getattr(Config(), name)
    return name, _cast(name, raw.strip(), default)


def _cast(name: str, raw: str, default: Any) -> Any:
    """A command-line value as the field's declared type (not its default's: a field whose
    default is None still has one); none/null for the fields that may be unset."""
    import typing

    if name == "preset":
        raise ConfigError(f"the preset cannot be changed with --set; choose it with --preset "
                          f"({', '.join(PRESETS)})")
    kind = typing.get_type_hints(Config).get(name)
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
        if raw.lower() in ("none", "null"):
            return None
        kind = next((k for k in typing.get_args(kind) if k is not type(None)), None)
    example = default if default is not None else {int: 1, float: 0.5}.get(kind, "text")
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a value like {example!r}") from None
    return raw


def default_data() -> Optional[str]:
    return os.environ.get(DATA_ENV) or None
