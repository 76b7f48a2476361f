"""The vividness dial: one number V in [0, 1] for how colourful colorize's output is.

A generator trained on a per-pixel loss predicts the mean of the plausible colours, which is
muted; more colourful outputs cost PSNR (Blau & Michaeli 2018, the perception-distortion
trade-off). A generator has knobs that move along that trade-off: a gain on its predicted chroma
(every head), and for the chroma-classes head (variants/heads.py) the temperature of its annealed
mean (1: the mean of the bins, towards 0: their mode). V is one path through them:

- V = 0: the knob setting with the best PSNR on the validation split (the safest colours);
- V = 1: the setting whose colourfulness (Hasler & Suesstrunk, lab.metrics) equals the
  validation images' own: as colourful as real photos;
- in between, colourfulness linear in V, and at each colourfulness the setting with the best
  PSNR, so the dial follows the generator's own frontier.

`colorlib.lab.vividness` measures that path (`python -m colorlib vividness-calibrate`) on a
validation split carved from the training images, never the test split, and stores it in the
generator's file under the key "vividness" (a few knots: V -> chroma gain, temperature; plain
numbers, so the file stays a `colorlib-generator-v1` that older code loads and ignores the key
in). Between knots the knobs are interpolated linearly. The calibration also holds the dial's
default, chosen by the rule stated in `lab.vividness.default_vividness`.

A generator without a calibration gets the default mapping UNCALIBRATED: chroma gain
0.75 + 0.5 V at the generator's own temperature, default V = 0.5 (gain 1: the generator's own,
unaltered output, so an uncalibrated generator's default is what colorize always wrote). The
end points are a guess from the shipped generator on 1,000 CIFAR-10 test images (gain 0.75 scored
higher PSNR than gain 1; 1.25 reached 99% of the truth's colourfulness); asking such a generator
for a vividness says so once (`uncalibrated_note`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from ..runs.config import ConfigError
from ..runs.rundir import RunDirError
from ..variants.heads import ChromaClassesOutput

VIVIDNESS_FORMAT = "colorlib-vividness-v1"
CHECKPOINT_KEY = "vividness"  # where a generator file keeps its calibration
ATTRIBUTE = "colorlib_vividness"  # where a loaded generator carries it (see `attach`)


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
    record: dict = field(default_factory=dict, compare=False)  # the stored calibration, as stored

    def settings(self, vividness: float) -> tuple[float, Optional[float]]:
        """(chroma gain, temperature or None) at `vividness`: a knot's own values on a knot, linear between."""
        v = check_vividness(vividness)
        for low, high in zip(self.knots, self.knots[1:]):
            if v == low.vividness:
                return low.chroma_gain, low.temperature
            if v < high.vividness:
                t = (v - low.vividness) / (high.vividness - low.vividness)
                return _lerp(low.chroma_gain, high.chroma_gain, t), _lerp(low.temperature, high.temperature, t)
        return self.knots[-1].chroma_gain, self.knots[-1].temperature

    def to_dict(self) -> dict:
        """What a generator file stores (plain numbers and text: `torch.load(weights_only=True)` reads it)."""
        knots = [{"vividness": k.vividness, "chroma_gain": k.chroma_gain, "temperature": k.temperature,
                  "psnr_db": k.psnr_db, "colourfulness": k.colourfulness} for k in self.knots]
        return {**self.record, "format": VIVIDNESS_FORMAT, "knots": knots, "default": self.default}


def _lerp(a: Optional[float], b: Optional[float], t: float) -> Optional[float]:
    if a is None or b is None:
        return a
    return a + t * (b - a)


UNCALIBRATED = Calibration((Knot(0.0, 0.75), Knot(1.0, 1.25)), default=0.5, calibrated=False)


def check_vividness(value) -> float:
    """`value` as a float in [0, 1], else a ConfigError saying what the dial takes."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(value, bool) or not (0.0 <= v <= 1.0):  # (NaN fails both comparisons)
        raise ConfigError(f"vividness={value!r} must be a number from 0 (the safest colours) to 1 (as "
                          f"colourful as real photos)")
    return v


def parse_vividness(text: str) -> float:
    """The command line's --vividness: a number in [0, 1], else a one-line ConfigError."""
    try:
        return check_vividness(text)
    except ConfigError:
        raise ConfigError(f"--vividness {text!r}: give a number from 0 (the safest colours, the best PSNR) "
                          f"to 1 (as colourful as real photos), e.g. --vividness 0.5") from None


def from_dict(stored: dict, where: str = "the calibration") -> Calibration:
    """A stored calibration (`Calibration.to_dict`) read back; RunDirError where it is damaged."""
    try:
        if stored.get("format") != VIVIDNESS_FORMAT:
            raise ValueError(f"format {stored.get('format')!r}, not {VIVIDNESS_FORMAT!r}")
        knots = tuple(Knot(float(k["vividness"]), float(k["chroma_gain"]),
                           None if k.get("temperature") is None else float(k["temperature"]),
                           k.get("psnr_db"), k.get("colourfulness")) for k in stored["knots"])
        _check_knots(knots)
        default = check_vividness(stored["default"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise RunDirError(f"{where} has a damaged vividness calibration ({exc}); calibrate it again with "
                          f"`python -m colorlib vividness-calibrate`") from None
    record = {k: v for k, v in stored.items() if k not in ("knots", "default", "format")}
    return Calibration(knots, default, True, record)


def _check_knots(knots: tuple[Knot, ...]) -> None:
    if len(knots) < 2 or knots[0].vividness != 0.0 or knots[-1].vividness != 1.0:
        raise ValueError("the knots must run from V = 0 to V = 1")
    if any(b.vividness <= a.vividness for a, b in zip(knots, knots[1:])):
        raise ValueError("the knots' vividness must increase")
    for k in knots:
        if not (math.isfinite(k.chroma_gain) and k.chroma_gain >= 0):
            raise ValueError(f"chroma gain {k.chroma_gain} at V = {k.vividness}")
        if k.temperature is not None and not (math.isfinite(k.temperature) and k.temperature > 0):
            raise ValueError(f"temperature {k.temperature} at V = {k.vividness}")
    if len({k.temperature is None for k in knots}) > 1:
        raise ValueError("every knot, or none, sets the temperature")


def from_checkpoint(ckpt: dict, path) -> Optional[Calibration]:
    """The calibration a generator file holds (None: it has none); RunDirError where it is damaged."""
    stored = ckpt.get(CHECKPOINT_KEY)
    if stored is None:
        return None
    if not isinstance(stored, dict):
        raise RunDirError(f"checkpoint {str(path)!r} has a damaged vividness calibration (a "
                          f"{type(stored).__name__}); calibrate it again with `python -m colorlib vividness-calibrate`")
    return from_dict(stored, f"checkpoint {str(path)!r}")


def attach(model, calibration: Optional[Calibration]):
    """Give a loaded generator its calibration (None: none, the default mapping); returns the model."""
    setattr(model, ATTRIBUTE, calibration)
    return model


def calibration_of(model) -> Calibration:
    """The generator's dial: its calibration, or UNCALIBRATED."""
    found = getattr(model, ATTRIBUTE, None)
    return found if found is not None else UNCALIBRATED


def has_temperature(model) -> bool:
    """True for a generator whose head has an annealing temperature (output=classes)."""
    return isinstance(getattr(model, "output", None), ChromaClassesOutput)


def knobs(model, vividness=None, chroma_gain: Optional[float] = None,
          temperature: Optional[float] = None) -> tuple[float, Optional[float]]:
    """(chroma gain, temperature or None for the generator's own) that colorize uses.

    Either the knobs themselves (chroma_gain, temperature: the dial is then not used; a knob not
    given keeps its neutral value, gain 1 and the generator's own temperature), or the dial: V =
    `vividness`, None meaning the generator's default (its calibration's; 0.5 without one, which
    is gain 1: the generator's own output). Both at once is a ConfigError."""
    if chroma_gain is not None or temperature is not None:
        if vividness is not None:
            raise ConfigError("give vividness or the knobs it turns (chroma_gain, temperature), not both")
        return (1.0 if chroma_gain is None else chroma_gain), temperature
    dial = calibration_of(model)
    gain, temp = dial.settings(dial.default if vividness is None else vividness)
    return gain, (temp if has_temperature(model) else None)


def uncalibrated_note(model) -> Optional[str]:
    """A one-line note when `model` has no calibration (its V follows the default mapping), else None."""
    if calibration_of(model).calibrated:
        return None
    return ("this generator has no vividness calibration: V follows the default mapping (chroma gain "
            "0.75 + 0.5 V); calibrate it with `python -m colorlib vividness-calibrate GENERATOR.pt`")
