"""Calibrating the vividness dial (inference/vividness.py) on a validation split, and measuring it.

    python -m colorlib vividness-calibrate colorlib/weights/generator.pt        # in place, weights untouched
    python -m colorlib vividness-frontier --limit 1000 --out figures/paper/vividness

`calibrate` walks the knobs on validation images carved from the training split (the run's own
hold-out, never the test split): the chroma gain in steps of GAIN_STEP from 0 until the output is
more colourful than the truth and its PSNR falls, at each of TEMPERATURES for the classes head.
V = 0 is the setting with the best PSNR, V = 1 the best one at the truth's colourfulness, and
KNOTS knots between are linear in colourfulness, each the best-PSNR setting there (interpolated
along each temperature's gain curve, then measured). Every score is the colorize command's own
output (`colorize.colorized_files`), decoded. `frontier` scores the dial on the test split, next to
the chroma gain alone at matching colourfulness (metrics.json, frontier.png, table.md).
"""
from __future__ import annotations

import io
import platform
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
FRONTIER_VIVIDNESS = (0.0, 0.25, 0.5, 0.75, 1.0)
FRONTIER_FORMAT = "colorlib-vividness-frontier-v1"


class Scorer:
    """The colorize command's outputs for colour images (uint8 [N, 3, H, W]), scored against them:
    dataset PSNR and mean colourfulness."""

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
    """Every (temperature, gain) tried, scored: per temperature the gains from 0 up, until the
    output is more colourful than the truth and its PSNR falls; then the best one's neighbours."""
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
        return 0.0, ("V = 0, the validation-PSNR optimum: the generator trained on its validation images, "
                     f"so their PSNR flatters every setting and cannot pick a more vivid one (the rule for "
                     f"held-out validation images: the most colourful knot at least {MARGIN_DB} dB above "
                     f"the gray copy)")
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
    val_size = held_out or val_size or DEFAULT_VAL_SIZE
    try:
        val = load_split(data or config.get("data"), "val", limit, seed=0, data_root=config.get("data_root", "data"),
                         val_size=val_size)
    except DataError as exc:
        raise DataError(f"{exc} (vividness-calibrate --val-size N)") from None
    fmt = output_format_for(data or config.get("data"))
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
                             "source": Path(resolve_source(data or config.get("data"))).name, "format": fmt,
                             "render_size": colorize.DEFAULT_RENDER_SIZE, "gray_psnr_db": scorer.gray_psnr_db,
                             "truth_colourfulness": scorer.truth_colourfulness},
              "sweep": [[p["temperature"], p["chroma_gain"], p["psnr_db"], p["colourfulness"]] for p in points]}
    calibration = dial.Calibration(tuple(knots), default, True, record)
    dial.from_dict(calibration.to_dict(), "the new calibration")  # its knobs in range: never black photos
    return calibration


def calibrate_file(checkpoint, out=None, data: Optional[str] = None, limit: Optional[int] = 1000,
                   device: str = "cpu", log=print, val_size: Optional[int] = None) -> Path:
    """Calibrate a generator.pt (or a run's) and store the calibration in it (out=None) or in a new
    file `out`; every other part of the file is kept as it is (weights bitwise, checked on the bytes
    to be written), and it is written atomically."""
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


# ---------------------------------------------------------------- the frontier on the test split
def _row(scorer: Scorer, result: dict, **extra) -> dict:
    return {**extra, **result, "psnr_vs_gray_db": result["psnr_db"] - scorer.gray_psnr_db,
            "colourfulness_pct": 100.0 * result["colourfulness"] / scorer.truth_colourfulness}


def measure_frontier(model, images: torch.Tensor, fmt: str = "JPEG", log=print) -> dict:
    """The dial at FRONTIER_VIVIDNESS and its default, the plain output (gain 1) and the chroma gain
    alone (from 0 until past 120% of the truth's colourfulness), scored on `images`."""
    scorer, calibration = Scorer(model, images, fmt), dial.calibration_of(model)
    log(f"scoring the dial on {len(images):,} images")
    rows = [_row(scorer, scorer.score(vividness=v), vividness=v, chroma_gain=dial.knobs(model, v)[0],
                 temperature=dial.knobs(model, v)[1], default=v == calibration.default)
            for v in sorted(set(FRONTIER_VIVIDNESS) | {calibration.default})]
    log("scoring the chroma gain alone")
    sweep_rows = []
    for k in range(round(GAIN_MAX / GAIN_STEP) + 1):
        sweep_rows.append(_row(scorer, scorer.score(chroma_gain=round(k * GAIN_STEP, 4)),
                               chroma_gain=round(k * GAIN_STEP, 4)))
        if sweep_rows[-1]["colourfulness_pct"] > 120:
            break
    for row in rows:
        alone = _at_colourfulness(sweep_rows, row["colourfulness"])
        row["gain_alone"] = alone and {"chroma_gain": alone["chroma_gain"], "psnr_db": alone["psnr_db"]}
    return {"images": len(images), "format": fmt, "render_size": colorize.DEFAULT_RENDER_SIZE,
            "gray_psnr_db": scorer.gray_psnr_db, "truth_colourfulness": scorer.truth_colourfulness,
            "dial": rows, "plain_output": _row(scorer, scorer.score(chroma_gain=1.0), chroma_gain=1.0),
            "gain_sweep": sweep_rows, "calibrated": calibration.calibrated, "calibration": calibration.to_dict()}


def frontier(checkpoint=None, data: Optional[str] = None, limit: Optional[int] = 1000, out=None,
             device: str = "cpu", log=print) -> dict:
    """`measure_frontier` on every (10000 / limit)-th test image; written to out/metrics.json,
    frontier.png and table.md when `out` is given (refused before any work where they exist)."""
    from .tutorial import shown
    names = ("metrics.json", "frontier.png", "table.md")
    if out is not None and any((Path(out) / name).exists() for name in names):
        raise rundir.RunDirError(f"{out} holds an earlier frontier ({', '.join(names)}); choose another --out "
                                 f"(nothing was scored)")
    model, cfg = colorize.load_model(checkpoint, device)
    test = load_split(data, "test")
    step = max(1, len(test) // limit) if limit else 1
    images = test.images[::step][:limit]
    report = {"format": FRONTIER_FORMAT, "generator": str(shown(Path(checkpoint or colorize.DEFAULT_CHECKPOINT))),
              "generator_config": {"preset": cfg.preset, "epochs": cfg.epochs, "output": cfg.output},
              "data": {"source": Path(resolve_source(data)).name, "split": "test", "every": step,
                       "images": len(images)},
              "device": _cpu_model(), "threads": torch.get_num_threads(), "torch": str(torch.__version__),
              **measure_frontier(model, images, output_format_for(data), log)}
    if out is not None:
        out = Path(out)
        figure = io.BytesIO()
        frontier_figure(report).savefig(figure, format="png", dpi=120)
        rundir.write_json(out / "metrics.json", report)
        rundir.atomic_write_bytes(out / "frontier.png", figure.getvalue())
        rundir.atomic_write_text(out / "table.md", markdown_table(report) + "\n")
        report["written"] = [str(out / name) for name in names]
    return report


def _cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (else what platform knows)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def markdown_table(report: dict) -> str:
    """The dial's rows and the plain output, next to the chroma gain alone at the same colourfulness."""
    lines = [f"| setting | chroma gain{' (temperature)' if report['dial'][0]['temperature'] else ''} | "
             f"PSNR (dB) | vs gray (dB) | colourfulness (% of truth) | gain alone at that colourfulness: gain, PSNR |",
             "|---|---|---|---|---|---|"]
    for row in report["dial"]:
        alone, t = row["gain_alone"], row.get("temperature")
        same = f"{alone['chroma_gain']:.3f}, {alone['psnr_db']:.2f}" if alone else "out of its range"
        name = f"V = {row['vividness']:g}" + (" (default)" if row["default"] else "")
        lines.append(f"| {name} | {row['chroma_gain']:.3f}{f' ({t:.2f})' if t else ''} | {row['psnr_db']:.2f} | "
                     f"{row['psnr_vs_gray_db']:+.2f} | {row['colourfulness']:.1f} ({row['colourfulness_pct']:.0f}%) | "
                     f"{same} |")
    plain = report["plain_output"]
    return "\n".join(lines + [
        f"| the plain output (gain 1) | 1.000 | {plain['psnr_db']:.2f} | {plain['psnr_vs_gray_db']:+.2f} | "
        f"{plain['colourfulness']:.1f} ({plain['colourfulness_pct']:.0f}%) | |",
        f"| gray copy | 0 | {report['gray_psnr_db']:.2f} | 0 | 0 (0%) | |",
        f"| truth | | | | {report['truth_colourfulness']:.1f} (100%) | |"])


def frontier_figure(report: dict):
    """PSNR above the gray copy against colourfulness (% of the truth's): the gain alone and the dial
    on the test images, and the dial's knots on the validation split it was calibrated on."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    gains, dial_rows = report["gain_sweep"], report["dial"]
    ax.plot([r["colourfulness_pct"] for r in gains], [r["psnr_vs_gray_db"] for r in gains], "-", color="0.6",
            label="chroma gain alone (test)")
    ax.plot([r["colourfulness_pct"] for r in dial_rows], [r["psnr_vs_gray_db"] for r in dial_rows], "o-", color="C0",
            label="the dial V (test)")
    for r in dial_rows:
        ax.annotate(f"V={r['vividness']:g}" + ("*" if r["default"] else ""), (r["colourfulness_pct"],
                    r["psnr_vs_gray_db"]), fontsize=8, textcoords="offset points", xytext=(4, 4), color="C0")
    val = report.get("calibration", {}).get("validation")
    knots = [k for k in report.get("calibration", {}).get("knots", []) if k.get("psnr_db") is not None]
    if val and knots:
        ax.plot([100 * k["colourfulness"] / val["truth_colourfulness"] for k in knots],
                [k["psnr_db"] - val["gray_psnr_db"] for k in knots], "s--", ms=3, color="C1",
                label=f"the dial's knots, validation ({val['images']:,} images"
                      f"{'' if val['held_out'] else ', trained on'})")
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(100, color="k", lw=0.6, ls=":")
    ax.set_xlabel("colourfulness, % of the truth's")
    ax.set_ylabel("PSNR minus the gray copy's (dB)")
    ax.set_title(f"{report.get('generator', 'generator')}: {report['images']:,} test images, * the default", fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig
