"""Calibrating the vividness dial (inference/vividness.py) on a validation split.

`calibrate` walks the knobs on validation images carved from the training split (never the test
split): V = 0 is the setting with the best PSNR, V = 1 the best one at the truth's colourfulness,
KNOTS knots between linear in colourfulness. Every score is of the colorize command's own output
(`colorize.colorized_files`), decoded.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..inference import colorize, vividness as dial
from ..inference.checkpoints import generator_from_checkpoint, run_checkpoint
from ..paper.data import to_model_range, to_uint8
from ..runs import rundir
from ..runs.config import ConfigError
from ..runs.data import DataError, load_split, resolve_source
from .metrics import colourfulness, decode_outputs, gray_baseline, mse_per_image, output_format_for, psnr_from_mse

GAIN_STEP, GAIN_MAX = 0.1, 3.0  # the chroma gains tried: 0, 0.1, ... (and GAIN_STEP / 2 either side of the best)
TEMPERATURES = (1.0, 0.7, 0.5, 0.38, 0.25, 0.15)  # the chroma-classes head's, tried with every gain
KNOTS = 11  # V = 0, 0.1, ..., 1
MARGIN_DB = 0.6  # the default V's rule: at least this much above the gray copy's validation PSNR
DEFAULT_VAL_SIZE = 5000  # the hold-out for a generator whose run had none (the paper preset's)


class Scorer:
    """The colorize command's outputs for colour images (uint8 [N, 3, H, W]): dataset PSNR, mean colourfulness."""

    def __init__(self, model, images: torch.Tensor, fmt: str = "JPEG", batch: int = 500):
        self.model, self.images, self.fmt, self.batch = model, images, fmt, batch
        self.photos = [colorize.gray_from_pil(colorize.to_pil(image)) for image in images]  # as the command reads
        self.truth_colourfulness = colourfulness(images).mean().item()
        self.gray_psnr_db = self._psnr(to_uint8(gray_baseline(to_model_range(images)[0])))

    def score(self, **how) -> dict:
        """PSNR and colourfulness of the command's files with `how`: vividness= or the knobs."""
        files = []
        for start in range(0, len(self.photos), self.batch):
            chunk = self.photos[start:start + self.batch]
            files += colorize.colorized_files(chunk, self.model, colorize.DEFAULT_RENDER_SIZE, [self.fmt] * len(chunk),
                                              **how)
        pred = decode_outputs(files)
        return {"psnr_db": self._psnr(pred), "colourfulness": colourfulness(pred).mean().item()}

    def _psnr(self, pred: torch.Tensor) -> float:
        return psnr_from_mse(mse_per_image(pred, self.images).mean()).item()


def sweep(scorer: Scorer, temperatures: Sequence[Optional[float]], log=print) -> list[dict]:
    """Per temperature the gains from 0 up, until the output is more colourful than the truth and its
    PSNR falls; then the best one's neighbours. Every (temperature, gain) tried, scored."""
    points, gray = [], None
    for temperature in temperatures:
        previous = None
        for k in range(round(GAIN_MAX / GAIN_STEP) + 1):
            gain = round(k * GAIN_STEP, 4)
            s = gray if gain == 0 and gray is not None else scorer.score(chroma_gain=gain, temperature=temperature)
            gray = gray or s  # no chroma: the same gray output at every temperature
            points.append({"temperature": temperature, "chroma_gain": gain, **s})
            if s["colourfulness"] > scorer.truth_colourfulness and previous is not None and s["psnr_db"] < previous:
                break
            previous = s["psnr_db"]
        log(f"  temperature {temperature or 'own'}: gains 0-{points[-1]['chroma_gain']:g}")
    best = max(points, key=lambda p: p["psnr_db"])
    for gain in (best["chroma_gain"] - GAIN_STEP / 2, best["chroma_gain"] + GAIN_STEP / 2):
        if gain >= 0:
            s = scorer.score(chroma_gain=round(gain, 4), temperature=best["temperature"])
            points.append({"temperature": best["temperature"], "chroma_gain": round(gain, 4), **s})
    return points


def _at_colourfulness(curve: list[dict], target: float) -> Optional[dict]:
    """Along points sorted by gain, the first gain whose colourfulness is `target`, with the PSNR
    interpolated there; None where the curve does not reach it."""
    for a, b in zip(curve, curve[1:]):
        if a["colourfulness"] <= target <= b["colourfulness"] and b["colourfulness"] > a["colourfulness"]:
            t = (target - a["colourfulness"]) / (b["colourfulness"] - a["colourfulness"])
            return {"temperature": a.get("temperature"), "colourfulness": target,
                    "chroma_gain": a["chroma_gain"] + t * (b["chroma_gain"] - a["chroma_gain"]),
                    "psnr_db": a["psnr_db"] + t * (b["psnr_db"] - a["psnr_db"])}
    return None


def frontier_settings(points: list[dict], truth_colourfulness: float, knots: int = KNOTS) -> list[dict]:
    """The dial's knots from the swept points: V = 0 the best PSNR, V = 1 the truth's colourfulness
    (or V = 0's, if more colourful), linear in colourfulness between, each of best PSNR there."""
    best = max(points, key=lambda p: p["psnr_db"])
    low, high = best["colourfulness"], max(truth_colourfulness, best["colourfulness"])
    curves = [sorted((p for p in points if p["temperature"] == t), key=lambda p: p["chroma_gain"])
              for t in dict.fromkeys(p["temperature"] for p in points)]
    settings = [{**best, "vividness": 0.0}]
    for i in range(1, knots):
        v = i / (knots - 1)
        found = [c for c in (_at_colourfulness(curve, low + v * (high - low)) for curve in curves) if c]
        choice = max(found, key=lambda c: c["psnr_db"]) if found else max(points, key=lambda p: p["colourfulness"])
        settings.append({**choice, "vividness": round(v, 6), "chroma_gain": round(choice["chroma_gain"], 4)})
    return settings


def default_vividness(knots: Sequence[dial.Knot], gray_psnr_db: float, held_out: bool) -> tuple[float, str]:
    """The dial's default and the rule that chose it, from the knots' validation scores."""
    if not held_out:
        return 0.0, ("V = 0, the validation-PSNR optimum: the generator trained on its validation images, so "
                     "their PSNR flatters every setting and cannot pick a more vivid one")
    good = [k.vividness for k in knots if k.psnr_db is not None and k.psnr_db >= gray_psnr_db + MARGIN_DB]
    rule = f"the most colourful knot whose validation PSNR is at least the gray copy's + {MARGIN_DB} dB; none: V = 0"
    return (max(good) if good else 0.0), rule


def calibrate(model, config: dict, data: Optional[str] = None, limit: Optional[int] = 1000, log=print,
              val_size: Optional[int] = None) -> dial.Calibration:
    """The vividness calibration of a generator on its run's validation hold-out (its raw config's
    val_size); a generator whose run held none out: `val_size` images (default 5,000), seen in training."""
    held_out = int(config.get("val_size", 0) or 0)
    if held_out and val_size and val_size != held_out:
        raise ConfigError(f"this generator's run held out {held_out:,} images, which its calibration uses; "
                          f"leave --val-size out (it is for generators trained on every image)")
    val_size, source = held_out or val_size or DEFAULT_VAL_SIZE, data or config.get("data")
    try:
        val = load_split(source, "val", limit, seed=0, data_root=config.get("data_root", "data"), val_size=val_size)
    except DataError as exc:
        raise DataError(f"{exc} (vividness-calibrate --val-size N)") from None
    fmt = output_format_for(source)
    scorer = Scorer(model, val.images, fmt)
    temperatures = [None]
    if dial.has_temperature(model):
        temperatures = sorted(set(TEMPERATURES) | {float(model.output.temperature)}, reverse=True)
    log(f"calibrating on {len(val):,} validation images ({'held out of' if held_out else 'also in'} its training)")
    points = sweep(scorer, temperatures, log)
    knots = []
    for s in frontier_settings(points, scorer.truth_colourfulness):
        measured = s if s["vividness"] == 0.0 else scorer.score(chroma_gain=s["chroma_gain"],
                                                                temperature=s["temperature"])
        knots.append(dial.Knot(s["vividness"], s["chroma_gain"], s["temperature"], measured["psnr_db"],
                               measured["colourfulness"]))
    default, rule = default_vividness(knots, scorer.gray_psnr_db, held_out > 0)
    record = {"default_rule": rule, "torch": str(torch.__version__),
              "validation": {"split": "val", "val_size": val_size, "images": len(val), "held_out": held_out > 0,
                             "source": Path(resolve_source(source)).name, "format": fmt,
                             "render_size": colorize.DEFAULT_RENDER_SIZE, "gray_psnr_db": scorer.gray_psnr_db,
                             "truth_colourfulness": scorer.truth_colourfulness},
              "sweep": [[p["temperature"], p["chroma_gain"], p["psnr_db"], p["colourfulness"]] for p in points]}
    calibration = dial.Calibration(tuple(knots), default, True, record)
    dial.from_dict(calibration.to_dict(), "the new calibration")  # its knobs in range: never black photos
    return calibration


def calibrate_file(checkpoint, out=None, data: Optional[str] = None, limit: Optional[int] = 1000,
                   device: str = "cpu", log=print, val_size: Optional[int] = None) -> Path:
    """Calibrate a generator.pt (or a run's) in place or into a new file `out`, written atomically; every
    other part of the file is kept (weights bitwise, checked on the bytes to be written)."""
    path = Path(checkpoint)
    path = run_checkpoint(path, ("generator.pt",)) if path.is_dir() else path
    target = Path(out) if out is not None else path
    if target.exists() and target.resolve() != path.resolve():
        raise rundir.RunDirError(f"{target} exists; choose another --out (nothing was written)")
    ckpt = rundir.load_checkpoint(path, (rundir.GENERATOR_FORMAT,))
    model, _ = generator_from_checkpoint(ckpt, path, device)
    calibration = calibrate(model, ckpt["config"], data, limit, log, val_size)
    buf = io.BytesIO()
    torch.save({**ckpt, dial.CHECKPOINT_KEY: calibration.to_dict()}, buf)
    new = torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)
    if any(not torch.equal(v, new["generator"][k]) for k, v in ckpt["generator"].items()) or \
            new.keys() - {dial.CHECKPOINT_KEY} != ckpt.keys() - {dial.CHECKPOINT_KEY}:
        raise rundir.RunDirError(f"calibrating {path} would change more than its calibration; nothing was written")
    rundir.atomic_write_bytes(target, buf.getvalue())
    log(f"calibrated: {target} (default V = {calibration.default:g})")
    return target
