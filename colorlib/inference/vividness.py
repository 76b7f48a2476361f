"""The vividness dial: one number V in [0, 1] for how colourful colorize's output is.

A generator trained on a per-pixel loss predicts the muted mean of the plausible colours; more colourful
outputs cost PSNR (Blau & Michaeli 2018). V turns the knobs along that trade-off, a gain on the predicted
chroma and the chroma-classes head's temperature: V = 0 is the best validation PSNR, V = 1 as colourful as
the validation images, linear in colourfulness between (knots measured by `colorlib.lab.vividness`,
interpolated). Uncalibrated: gain 0.75 + 0.5 V, default V = 0.5 (gain 1), a guess from the shipped generator.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from ..runs.config import ConfigError
from ..runs.rundir import RunDirError
from ..variants.heads import ChromaClassesOutput

VIVIDNESS_FORMAT = "colorlib-vividness-v1"
CHECKPOINT_KEY = "vividness"  # where a generator file keeps its calibration
ATTRIBUTE = "colorlib_vividness"  # where a loaded generator carries it
# the knobs' sane ranges: gain 3 already saturates every photo; a gain beyond float32 made black photos
MAX_GAIN, MIN_TEMPERATURE, MAX_TEMPERATURE = 100.0, 0.01, 100.0


@dataclass(frozen=True)
class Knot:
    """One point of the dial: at `vividness`, this chroma gain and temperature (None: the generator's own)."""
    vividness: float
    chroma_gain: float
    temperature: Optional[float] = None
    psnr_db: Optional[float] = None  # measured on the validation split at this setting
    colourfulness: Optional[float] = None


@dataclass(frozen=True)
class Calibration:
    """The dial of one generator: knots from V = 0 to V = 1, its default V, and how they were found."""
    knots: tuple[Knot, ...]
    default: float
    calibrated: bool = True  # False: the default mapping of a generator without a calibration
    record: dict = field(default_factory=dict, compare=False)  # the rest of the stored calibration

    def settings(self, vividness: float) -> tuple[float, Optional[float]]:
        """(chroma gain, temperature or None) at `vividness`: a knot's own values on a knot, linear between."""
        v, at = check_vividness(vividness), [k.vividness for k in self.knots]
        gain = float(np.interp(v, at, [k.chroma_gain for k in self.knots]))
        if self.knots[0].temperature is None:
            return gain, None
        return gain, float(np.interp(v, at, [k.temperature for k in self.knots]))

    def to_dict(self) -> dict:
        """What a generator file stores (plain numbers and text: weights_only loading reads it)."""
        knots = [asdict(k) for k in self.knots]
        return {**self.record, "format": VIVIDNESS_FORMAT, "knots": knots, "default": self.default}


UNCALIBRATED = Calibration((Knot(0.0, 0.75), Knot(1.0, 1.25)), default=0.5, calibrated=False)


def check_vividness(value) -> float:
    if isinstance(value, bool) or not _within(value, 0.0, 1.0):
        raise ConfigError(f"vividness={value!r} must be a number from 0 (the safest colours) to 1 (as "
                          f"colourful as real photos), e.g. --vividness 0.5")
    return float(value)


def check_knobs(chroma_gain: Optional[float], temperature: Optional[float]) -> None:
    if chroma_gain is not None and not _within(chroma_gain, 0.0, MAX_GAIN):
        raise ConfigError(f"chroma_gain={chroma_gain!r} must be a number from 0 to {MAX_GAIN:g}")
    if temperature is not None and not _within(temperature, MIN_TEMPERATURE, MAX_TEMPERATURE):
        raise ConfigError(f"temperature={temperature!r} must be a number from {MIN_TEMPERATURE} to {MAX_TEMPERATURE:g}")


def _within(value, low: float, high: float) -> bool:
    """A number from low to high; NaN and what is no number are not."""
    try:
        return low <= float(value) <= high
    except (TypeError, ValueError):
        return False


def from_dict(stored, where: str = "the calibration") -> Calibration:
    """A stored calibration read back; RunDirError where it is damaged or its knobs are out of range."""
    try:
        if stored.get("format") != VIVIDNESS_FORMAT:
            raise ValueError(f"format {stored.get('format')!r}, not {VIVIDNESS_FORMAT!r}")
        knots = tuple(Knot(float(k["vividness"]), float(k["chroma_gain"]),
                           None if k.get("temperature") is None else float(k["temperature"]),
                           k.get("psnr_db"), k.get("colourfulness")) for k in stored["knots"])
        vs = [k.vividness for k in knots]
        if len(knots) < 2 or vs[0] != 0.0 or vs[-1] != 1.0 or vs != sorted(set(vs)):
            raise ValueError("the knots must run from V = 0 to V = 1, increasing")
        if len({k.temperature is None for k in knots}) > 1:
            raise ValueError("every knot, or none, sets the temperature")
        for k in knots:
            check_knobs(k.chroma_gain, k.temperature)
        default = check_vividness(stored["default"])
    except (AttributeError, KeyError, TypeError, ValueError, ConfigError) as exc:
        raise RunDirError(f"{where} has a damaged vividness calibration ({exc}); calibrate it again "
                          f"with `python -m colorlib vividness-calibrate`") from None
    record = {k: v for k, v in stored.items() if k not in ("knots", "default", "format")}
    return Calibration(knots, default, True, record)


def calibration_of(model) -> Calibration:
    return getattr(model, ATTRIBUTE, None) or UNCALIBRATED


def has_temperature(model) -> bool:
    return isinstance(getattr(model, "output", None), ChromaClassesOutput)


def knobs(model, vividness=None, chroma_gain: Optional[float] = None,
          temperature: Optional[float] = None) -> tuple[float, Optional[float]]:
    """(chroma gain, temperature or None: the generator's own) for colorize: the knobs when given (gain 1 where
    not), else the dial at V = `vividness` (None: the generator's default); both at once is a ConfigError."""
    if chroma_gain is not None or temperature is not None:
        if vividness is not None:
            raise ConfigError("give vividness or the knobs it turns (chroma_gain, temperature), not both")
        check_knobs(chroma_gain, temperature)
        if temperature is not None and not has_temperature(model):
            raise ConfigError("temperature applies to generators with the chroma-classes head (output=classes) only")
        return (1.0 if chroma_gain is None else float(chroma_gain)), temperature
    dial = calibration_of(model)
    gain, temp = dial.settings(dial.default if vividness is None else vividness)
    return gain, (temp if has_temperature(model) else None)


def uncalibrated_note(model) -> Optional[str]:
    if calibration_of(model).calibrated:
        return None
    return ("this generator has no vividness calibration: V follows the default mapping (chroma gain "
            "0.75 + 0.5 V); calibrate it with `python -m colorlib vividness-calibrate GENERATOR.pt`")
