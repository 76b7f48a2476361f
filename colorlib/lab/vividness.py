"""Calibrating the vividness dial (inference/vividness.py) on a validation split, and measuring it.

    python -m colorlib vividness-calibrate colorlib/weights/generator.pt        # in place, weights untouched
    python -m colorlib vividness-frontier --limit 1000 --out figures/paper/vividness

`calibrate` walks the generator's knobs on validation images carved from the training split (the
run's own hold-out, `Config.val_size`; never the test split): the chroma gain in steps of
GAIN_STEP from 0 (the gray copy) until the output is more colourful than the validation truth and
its PSNR falls, at every temperature of TEMPERATURES for the chroma-classes head (the generator's
own added). Of those settings, V = 0 is the one with the best PSNR, V = 1 the one whose
colourfulness equals the truth's with the best PSNR there, and KNOTS knots in between are linear
in colourfulness, each the best-PSNR setting at its colourfulness (interpolated along each
temperature's gain curve, then measured). Every score is the colorize command's own output
(`colorize.colorized_files`, the file it writes for a JPEG input, decoded).

`frontier` scores the dial on the test split through the same path, next to the chroma gain
alone at matching colourfulness, and writes metrics.json, frontier.png and table.md.
"""
from __future__ import annotations

import io
import json
import math
import platform
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..inference import colorize, vividness as dial
from ..inference.checkpoints import generator_from_checkpoint, run_checkpoint
from ..paper.data import to_model_range, to_uint8
from ..runs import rundir
from ..runs.config import make_config
from ..runs.data import load_split, resolve_source
from .metrics import colourfulness, decode_outputs, gray_baseline, mse_per_image, output_format_for, psnr_from_mse

GAIN_STEP = 0.1  # the chroma gains tried: 0, 0.1, 0.2, ... (and GAIN_STEP / 2 either side of the best)
GAIN_MAX = 3.0
TEMPERATURES = (1.0, 0.7, 0.5, 0.38, 0.25, 0.15)  # the chroma-classes head's, tried with every gain
KNOTS = 11  # V = 0, 0.1, ..., 1
MARGIN_DB = 0.6  # the default V's rule: at least this much above the gray copy's validation PSNR
FRONTIER_VIVIDNESS = (0.0, 0.25, 0.5, 0.75, 1.0)
FRONTIER_FORMAT = "colorlib-vividness-frontier-v1"


# ---------------------------------------------------------------- scoring through the command's path
class Scorer:
    """The colorize command's outputs for a set of colour images (uint8 [N, 3, H, W]), scored
    against them: dataset PSNR (of the mean squared error) and mean colourfulness."""

    def __init__(self, model, images: torch.Tensor, fmt: str = "JPEG",
                 render_size: int = colorize.DEFAULT_RENDER_SIZE, batch: int = 500):
        self.model, self.images, self.fmt, self.render_size, self.batch = model, images, fmt, render_size, batch
        # read as the command reads a photo: Pillow's 8-bit BT.601 luma (lab.metrics.command_outputs)
        self.photos = [colorize.gray_from_pil(colorize.to_pil(image)) for image in images]
        self.truth_colourfulness = colourfulness(images).mean().item()
        self.gray_psnr_db = self._psnr(to_uint8(gray_baseline(to_model_range(images)[0])))

    def files(self, **how) -> list[bytes]:
        """The files the command writes (`colorize.colorized_files`), with `how`: vividness= or the knobs."""
        out = []
        for start in range(0, len(self.photos), self.batch):
            chunk = self.photos[start:start + self.batch]
            out += colorize.colorized_files(chunk, self.model, self.render_size, [self.fmt] * len(chunk), **how)
        return out

    def score(self, **how) -> dict:
        pred = decode_outputs(self.files(**how))
        return {"psnr_db": self._psnr(pred), "colourfulness": colourfulness(pred).mean().item()}

    def _psnr(self, pred: torch.Tensor) -> float:
        return psnr_from_mse(mse_per_image(pred, self.images).mean()).item()


def _gains(start: float = 0.0):
    k = 0
    while start + k * GAIN_STEP <= GAIN_MAX + 1e-9:
        yield round(start + k * GAIN_STEP, 4)
        k += 1


def sweep(scorer: Scorer, temperatures: Sequence[Optional[float]], log=lambda *_: None) -> list[dict]:
    """Every (temperature, gain) tried, scored: per temperature the gains from 0 up, until the
    output is more colourful than the truth and its PSNR falls; then the best one's neighbours."""
    points, gray = [], None
    for temperature in temperatures:
        previous = None
        for gain in _gains():
            if gain == 0 and gray is not None:  # no chroma: the same gray output at every temperature
                s = gray
            else:
                s = scorer.score(chroma_gain=gain, temperature=temperature)
            gray = gray if gray is not None else s
            points.append({"temperature": temperature, "chroma_gain": gain, **s})
            past = s["colourfulness"] > scorer.truth_colourfulness
            if past and previous is not None and s["psnr_db"] < previous:
                break
            previous = s["psnr_db"]
        log(f"  temperature {temperature or 'own'}: gains 0-{points[-1]['chroma_gain']:g}")
    best = max(points, key=lambda p: p["psnr_db"])
    for gain in (best["chroma_gain"] - GAIN_STEP / 2, best["chroma_gain"] + GAIN_STEP / 2):
        if gain >= 0:
            s = scorer.score(chroma_gain=round(gain, 4), temperature=best["temperature"])
            points.append({"temperature": best["temperature"], "chroma_gain": round(gain, 4), **s})
    return points


def _crossing(curve: list[dict], target: float) -> Optional[dict]:
    """Along one temperature's points (by gain), the first gain whose colourfulness is `target`,
    with the PSNR interpolated there; None where the curve does not reach it."""
    for a, b in zip(curve, curve[1:]):
        if a["colourfulness"] <= target <= b["colourfulness"] and b["colourfulness"] > a["colourfulness"]:
            t = (target - a["colourfulness"]) / (b["colourfulness"] - a["colourfulness"])
            return {"temperature": a["temperature"], "colourfulness": target,
                    "chroma_gain": a["chroma_gain"] + t * (b["chroma_gain"] - a["chroma_gain"]),
                    "psnr_db": a["psnr_db"] + t * (b["psnr_db"] - a["psnr_db"])}
    return None


def frontier_settings(points: list[dict], truth_colourfulness: float, knots: int = KNOTS) -> list[dict]:
    """The dial's knots from the swept points: V = 0 the best PSNR, V = 1 the truth's colourfulness
    (or V = 0's own, if that is more colourful), linear in colourfulness between, each the setting of
    best (interpolated) PSNR at its colourfulness."""
    best = max(points, key=lambda p: p["psnr_db"])
    low, high = best["colourfulness"], max(truth_colourfulness, best["colourfulness"])
    temperatures = list(dict.fromkeys(p["temperature"] for p in points))
    curves = [sorted((p for p in points if p["temperature"] == t), key=lambda p: p["chroma_gain"])
              for t in temperatures]
    settings = [{**best, "vividness": 0.0}]
    for i in range(1, knots):
        v = i / (knots - 1)
        found = [c for c in (_crossing(curve, low + v * (high - low)) for curve in curves) if c]
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


# ---------------------------------------------------------------- calibrating a generator
def validation_split(config: dict, data: Optional[str], limit: Optional[int]):
    """(validation images, held_out): the run's own hold-out of the training split when it had one
    (its config's val_size), else the paper preset's; held_out says whether the generator never saw them."""
    held_out = int(config.get("val_size", 0) or 0)  # a run from before validation splits: none, trained on all
    val_size = held_out or make_config("paper").val_size
    val = load_split(data or config.get("data"), "val", limit, seed=0, data_root=config.get("data_root", "data"),
                     val_size=val_size)
    return val, held_out > 0, val_size


def calibrate(model, config: dict, data: Optional[str] = None, limit: Optional[int] = 1000,
              log=print) -> dial.Calibration:
    """The vividness calibration of a generator (its raw config dict says which images it held out)."""
    val, held_out, val_size = validation_split(config, data, limit)
    fmt = output_format_for(data or config.get("data"))
    scorer = Scorer(model, val.images, fmt)
    temperatures: list[Optional[float]] = [None]
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
    default, rule = default_vividness(knots, scorer.gray_psnr_db, held_out)
    record = {"default_rule": rule, "torch": str(torch.__version__),
              "validation": {"split": "val", "val_size": val_size, "images": len(val), "held_out": held_out,
                             "source": Path(resolve_source(data or config.get("data"))).name, "format": fmt,
                             "render_size": colorize.DEFAULT_RENDER_SIZE, "gray_psnr_db": scorer.gray_psnr_db,
                             "truth_colourfulness": scorer.truth_colourfulness},
              "sweep": [[p["temperature"], p["chroma_gain"], p["psnr_db"], p["colourfulness"]] for p in points]}
    return dial.Calibration(tuple(knots), default, True, record)


def calibrate_file(checkpoint, out=None, data: Optional[str] = None, limit: Optional[int] = 1000,
                   device: str = "cpu", log=print) -> Path:
    """Calibrate a generator.pt (or a run's) and store the calibration in it (out=None) or in a new
    file `out`: the file's every other part is kept as it is (weights bitwise), the new file is read
    back and checked before it replaces anything, and it is written atomically."""
    path = Path(checkpoint)
    path = run_checkpoint(path, ("generator.pt",)) if path.is_dir() else path
    target = Path(out) if out is not None else path
    if target.exists() and target.resolve() != path.resolve():
        raise rundir.RunDirError(f"{target} exists; choose another --out (nothing was written)")
    ckpt = rundir.load_checkpoint(path, (rundir.GENERATOR_FORMAT,))
    model, _ = generator_from_checkpoint(ckpt, path, device)
    calibration = calibrate(model, ckpt["config"], data, limit, log)
    new = {**ckpt, dial.CHECKPOINT_KEY: calibration.to_dict()}
    buf = io.BytesIO()
    torch.save(new, buf)
    _check_kept(ckpt, torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True), path)
    rundir.atomic_write_bytes(target, buf.getvalue())
    log(f"calibrated: {target} (default V = {calibration.default:g})")
    return target


def _check_kept(old: dict, new: dict, path) -> None:
    """RunDirError unless `new` holds everything of `old` unchanged (tensors bitwise) and a readable calibration."""
    changed = [k for k in old if k != dial.CHECKPOINT_KEY and not _same(old[k], new.get(k))]
    if changed:
        raise rundir.RunDirError(f"calibrating {path} would change its {changed}; nothing was written")
    dial.from_checkpoint(new, path)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


# ---------------------------------------------------------------- the frontier on the test split
def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def every_nth_test_image(data: Optional[str], limit: Optional[int]) -> tuple[torch.Tensor, int]:
    """(every step-th test image, uint8 [N, 3, H, W]; step), N = limit (all: None)."""
    test = load_split(data, "test")
    step = max(1, len(test) // limit) if limit else 1
    return test.images[::step][:limit], step


def _row(scorer: Scorer, result: dict, **extra) -> dict:
    return {**extra, **result, "psnr_vs_gray_db": result["psnr_db"] - scorer.gray_psnr_db,
            "colourfulness_pct": 100.0 * result["colourfulness"] / scorer.truth_colourfulness}


def _gain_sweep(scorer: Scorer) -> list[dict]:
    """The chroma gain alone (the generator's own temperature), from 0 until past 120% of the truth's colourfulness."""
    rows = []
    for gain in _gains():
        rows.append(_row(scorer, scorer.score(chroma_gain=gain), chroma_gain=gain))
        if rows[-1]["colourfulness_pct"] > 120:
            break
    return rows


def _at_colourfulness(sweep_rows: list[dict], colour: float) -> Optional[dict]:
    """The gain sweep interpolated at colourfulness `colour`: {chroma_gain, psnr_db} (None: out of its range)."""
    for a, b in zip(sweep_rows, sweep_rows[1:]):
        if a["colourfulness"] <= colour <= b["colourfulness"] and b["colourfulness"] > a["colourfulness"]:
            t = (colour - a["colourfulness"]) / (b["colourfulness"] - a["colourfulness"])
            return {"chroma_gain": a["chroma_gain"] + t * (b["chroma_gain"] - a["chroma_gain"]),
                    "psnr_db": a["psnr_db"] + t * (b["psnr_db"] - a["psnr_db"])}
    return None


def measure_frontier(model, images: torch.Tensor, fmt: str = "JPEG", log=print) -> dict:
    """The dial at FRONTIER_VIVIDNESS and its default, the generator's plain output (gain 1) and the
    chroma gain alone, scored on `images` through the command's path."""
    scorer = Scorer(model, images, fmt)
    calibration = dial.calibration_of(model)
    log(f"scoring the dial on {len(images):,} images")
    rows = []
    for v in sorted(set(FRONTIER_VIVIDNESS) | {calibration.default}):
        gain, temperature = dial.knobs(model, v)
        rows.append(_row(scorer, scorer.score(vividness=v), vividness=v, chroma_gain=gain, temperature=temperature,
                         default=v == calibration.default))
    log("scoring the chroma gain alone")
    sweep_rows = _gain_sweep(scorer)
    for row in rows:
        row["gain_alone"] = _at_colourfulness(sweep_rows, row["colourfulness"])
    plain = _row(scorer, scorer.score(chroma_gain=1.0), chroma_gain=1.0)
    return {"images": len(images), "format": fmt, "render_size": colorize.DEFAULT_RENDER_SIZE,
            "gray_psnr_db": scorer.gray_psnr_db, "truth_colourfulness": scorer.truth_colourfulness,
            "dial": rows, "plain_output": plain, "gain_sweep": sweep_rows,
            "calibrated": calibration.calibrated, "calibration": calibration.to_dict()}


def frontier(checkpoint=None, data: Optional[str] = None, limit: Optional[int] = 1000, out=None,
             device: str = "cpu", log=print) -> dict:
    """`measure_frontier` on every (10000 / limit)-th test image, with where and how; written to
    out/metrics.json, out/frontier.png and out/table.md when `out` is given."""
    from .tutorial import shown
    model, cfg = colorize.load_model(checkpoint, device)
    images, step = every_nth_test_image(data, limit)
    report = measure_frontier(model, images, output_format_for(data), log)
    source = colorize.DEFAULT_CHECKPOINT if checkpoint is None else Path(checkpoint)
    report = {"format": FRONTIER_FORMAT, "generator": str(shown(source)),
              "generator_config": {"preset": cfg.preset, "epochs": cfg.epochs, "output": cfg.output},
              "data": {"source": Path(resolve_source(data)).name, "split": "test", "every": step,
                       "images": len(images)},
              "device": cpu_model(), "threads": torch.get_num_threads(), "torch": str(torch.__version__), **report}
    if out is not None:
        out = Path(out)
        rundir.write_json(out / "metrics.json", report)
        frontier_figure(report).savefig(out / "frontier.png", dpi=120)
        rundir.atomic_write_text(out / "table.md", markdown_table(report) + "\n")
        report["written"] = [str(out / name) for name in ("metrics.json", "frontier.png", "table.md")]
    return report


def markdown_table(report: dict) -> str:
    """The dial's rows and the plain output, next to the chroma gain alone at the same colourfulness."""
    lines = [f"| setting | chroma gain{' (temperature)' if report['dial'][0]['temperature'] else ''} | "
             f"PSNR (dB) | vs gray (dB) | colourfulness (% of truth) | gain alone at that colourfulness: gain, PSNR |",
             "|---|---|---|---|---|---|"]

    def knob(row) -> str:
        t = row.get("temperature")
        return f"{row['chroma_gain']:.3f}" + (f" ({t:.2f})" if t else "")

    for row in report["dial"]:
        alone = row["gain_alone"]
        same = f"{alone['chroma_gain']:.3f}, {alone['psnr_db']:.2f}" if alone else "out of its range"
        name = f"V = {row['vividness']:g}" + (" (default)" if row["default"] else "")
        lines.append(f"| {name} | {knob(row)} | {row['psnr_db']:.2f} | {row['psnr_vs_gray_db']:+.2f} | "
                     f"{row['colourfulness']:.1f} ({row['colourfulness_pct']:.0f}%) | {same} |")
    plain = report["plain_output"]
    lines.append(f"| the plain output (gain 1) | 1.000 | {plain['psnr_db']:.2f} | {plain['psnr_vs_gray_db']:+.2f} | "
                 f"{plain['colourfulness']:.1f} ({plain['colourfulness_pct']:.0f}%) | |")
    lines.append(f"| gray copy | 0 | {report['gray_psnr_db']:.2f} | 0 | 0 (0%) | |")
    lines.append(f"| truth | | | | {report['truth_colourfulness']:.1f} (100%) | |")
    return "\n".join(lines)


def frontier_figure(report: dict):
    """PSNR above the gray copy against colourfulness (% of the truth's): the chroma gain alone and
    the dial on the test images, and the dial's knots on the validation split it was calibrated on."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    sweep_rows = report["gain_sweep"]
    ax.plot([r["colourfulness_pct"] for r in sweep_rows], [r["psnr_vs_gray_db"] for r in sweep_rows], "-",
            color="0.6", label="chroma gain alone (test)")
    for r in sweep_rows:
        if abs(r["chroma_gain"] * 2 - round(r["chroma_gain"] * 2)) < 1e-9:  # label gains 0, 0.5, 1, ...
            ax.annotate(f"x{r['chroma_gain']:g}", (r["colourfulness_pct"], r["psnr_vs_gray_db"]), fontsize=7,
                        color="0.4", textcoords="offset points", xytext=(3, -9))
    dial_rows = report["dial"]
    ax.plot([r["colourfulness_pct"] for r in dial_rows], [r["psnr_vs_gray_db"] for r in dial_rows], "o-",
            color="C0", label="the dial V (test)")
    for r in dial_rows:
        ax.annotate(f"V={r['vividness']:g}" + ("*" if r["default"] else ""),
                    (r["colourfulness_pct"], r["psnr_vs_gray_db"]), fontsize=8, textcoords="offset points",
                    xytext=(4, 4), color="C0")
    _validation_knots(ax, report.get("calibration", {}))
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(100, color="k", lw=0.6, ls=":")
    ax.set_xlabel("colourfulness, % of the truth's")
    ax.set_ylabel("PSNR minus the gray copy's (dB)")
    split = report.get("data", {}).get("split", "")
    ax.set_title(f"{report.get('generator', 'generator')}: {report['images']:,} {split} images, * the default",
                 fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def _validation_knots(ax, calibration: dict) -> None:
    val = calibration.get("validation")
    knots = [k for k in calibration.get("knots", []) if k.get("psnr_db") is not None]
    if not val or not knots:
        return
    ax.plot([100 * k["colourfulness"] / val["truth_colourfulness"] for k in knots],
            [k["psnr_db"] - val["gray_psnr_db"] for k in knots], "s--", ms=3, color="C1",
            label=f"the dial's knots, validation ({val['images']:,} images"
                  f"{'' if val['held_out'] else ', trained on'})")


def read_frontier(path) -> dict:
    """A frontier's metrics.json (FRONTIER_FORMAT)."""
    report = json.loads(Path(path).read_text())
    if report.get("format") != FRONTIER_FORMAT:
        raise ValueError(f"{path} is not a vividness frontier (format {report.get('format')!r})")
    return report
