"""Shipping a generator as `colorize`'s default: only when it beats the one that ships now.

    python -m colorlib ship runs/study-paper/unet-l1/seed0 --data PATH --dry-run   # compare, decide
    python -m colorlib ship runs/study-paper/unet-l1/seed0 --data PATH             # ... and ship if it wins

The candidate (a run directory's best.pt, else its generator.pt or last.pt; or a checkpoint file)
and the current default (colorlib/weights/generator.pt) are scored the same way, on what the
choice may look at and never on the test split:

- the candidate's validation split (the training images its run held out, `data.VAL_SEED`: 5,000
  for the paper preset, 2,000 for quick; never trained on), through
  `colorize` (the network's chroma on the input's luma): dataset PSNR, colourfulness against the
  truth's, semantic accuracy and classifier-feature FD (metrics.py);
- the sample photos (photos.py) at colorize's default render size: the share of photos on which
  the colorization beats the gray copy's PSNR, and the share of their colourfulness kept.

A measure decides only where neither generator trained on its images. The photos always qualify.
The validation split qualifies when the default's run held it out too (its config's `val_size` at
least the candidate's: the splits are nested, drawn with one seed); the generator that ships today
was trained on all 50,000 training images, so against it the four validation measures are shown
but do not decide (through colorize, on those images it scores 26.6 dB, on the test split 22.7).
Whatever decides, the candidate must beat the gray copy's dataset PSNR on its validation split:
colour that makes photos look livelier but CIFAR-10 worse than doing nothing is not a win. The
candidate "beats" the default when it passes that, and is at least as good on every deciding
measure and better on one (no trade of one target against another). Only a winner is written:
float16 weights (float32 where float16 would overflow), its config, where and how it was trained,
this comparison, and its test-split scores (for the record and the README; the decision never
reads them). The generator it replaces is kept beside it as `generator.previous.pt`.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from ..runs import rundir
from ..inference.checkpoints import generator_from_checkpoint, run_checkpoint
from ..inference.colorize import DEFAULT_CHECKPOINT, DEFAULT_RENDER_SIZE
from ..runs.config import make_config
from ..runs.rundir import RunDirError

# (key, label, how it is compared): "higher" is better, "lower" is better, or "closer" to the target
MEASURES = (
    ("val_psnr_dataset_db", "validation PSNR, dataset (dB)", "higher"),
    ("val_colourfulness_gap", "validation colourfulness, distance to the truth's", "lower"),
    ("val_semantic_accuracy", "validation semantic accuracy", "higher"),
    ("val_feature_fd", "validation classifier-feature FD", "lower"),
    ("photos_beat_gray", "photos beating the gray copy (share)", "higher"),
    ("photos_colour_missing", "photos: colourfulness missing or added (|1 - kept|)", "lower"),
)
PHOTO_MEASURES = ("photos_beat_gray", "photos_colour_missing")


def candidate_file(path) -> Path:
    """The checkpoint a candidate names: a file as it is; a run directory's best.pt (its epoch with
    the lowest validation FD), else its generator.pt, else its last.pt."""
    path = Path(path)
    if path.is_dir():
        return run_checkpoint(path, ("best.pt", "generator.pt", "last.pt"))
    if not path.is_file():
        raise RunDirError(f"{path} does not exist: name a run directory or a checkpoint file (generator.pt, best.pt)")
    return path


def score(G: torch.nn.Module, val, classifier, device, photos=None, fmt: str = "JPEG") -> dict:
    """The six measures of MEASURES for generator G (and the scores they come from); the validation
    images scored as the colorize command writes them (`metrics.colorize_method`, in `fmt`)."""
    from .metrics import colorize_method, evaluate_methods, judge_labels
    from .photos import evaluate_photos

    labels, _ = judge_labels(val.labels, val.classes, classifier)
    val_scores = evaluate_methods({"G": colorize_method(G, DEFAULT_RENDER_SIZE, fmt)}, val.images, labels,
                                  classifier, device=device)
    m, truth = val_scores["methods"]["G"], val_scores["ground_truth"]
    photo = evaluate_photos(G.cpu(), render_sizes=(DEFAULT_RENDER_SIZE,), photos=photos)
    G.to(device)
    agg = photo["results"][DEFAULT_RENDER_SIZE]["aggregate"]
    return {
        "val_psnr_dataset_db": m["psnr_dataset_db"],
        "val_colourfulness_gap": abs(m["colourfulness"] - truth["colourfulness"]),
        "val_semantic_accuracy": m["semantic_accuracy"],
        "val_feature_fd": m["feature_fd"],
        "photos_beat_gray": agg["beats_gray_share"],
        "photos_colour_missing": abs(1 - agg["colourfulness_kept_mean"]),
        "validation": {"images": len(val), "truth_colourfulness": truth["colourfulness"], **m},
        "photos": {"render_size": DEFAULT_RENDER_SIZE, **agg},
    }


def verdict(candidate: dict, default: dict, deciding=None) -> tuple[bool, list[dict]]:
    """(candidate beats default, one row per measure saying which is better and whether it decides).
    `deciding`: the measures that decide (default: all of MEASURES)."""
    deciding = set(deciding or (key for key, _, _ in MEASURES))
    rows = []
    for key, label, better in MEASURES:
        c, d = candidate[key], default[key]
        gain = (c - d) if better == "higher" else (d - c)
        rows.append({"measure": key, "label": label, "candidate": c, "default": d, "decides": key in deciding,
                     "verdict": "better" if gain > 0 else "worse" if gain < 0 else "same"})
    deciders = [r for r in rows if r["decides"]]
    beats = all(r["verdict"] != "worse" for r in deciders) and any(r["verdict"] == "better" for r in deciders)
    return beats, rows


def decide(candidate: dict, default: dict, gray_val_psnr: float, validation_decides: bool):
    """(beats, rows, candidate beats gray): the photo measures always decide, the validation ones
    only when `validation_decides`; and the candidate must beat the gray copy's validation PSNR."""
    deciding = [key for key, _, _ in MEASURES] if validation_decides else list(PHOTO_MEASURES)
    better, rows = verdict(candidate, default, deciding)
    above_gray = candidate["val_psnr_dataset_db"] > gray_val_psnr
    return better and above_gray, rows, above_gray


def comparison_table(report: dict) -> str:
    lines = ["| measure | candidate | default | candidate is | decides |", "|---|---:|---:|---|---|"]
    for r in report["rows"]:
        fmt = "{:.3f}" if "share" in r["label"] or "accuracy" in r["label"] or "|1 -" in r["label"] else "{:.2f}"
        lines.append(f"| {r['label']} | {fmt.format(r['candidate'])} | {fmt.format(r['default'])} | {r['verdict']} "
                     f"| {'yes' if r['decides'] else 'no'} |")
    gray = report["gray_val_psnr_dataset_db"]
    lines += ["", f"validation PSNR of the gray copy: {gray:.2f} dB; the candidate's "
                  f"{report['scores']['candidate']['val_psnr_dataset_db']:.2f} dB "
                  f"({'beats it' if report['candidate_beats_gray'] else 'does not beat it'})"]
    return "\n".join(lines) + "\n"


def ship(candidate, data: Optional[str] = None, out=DEFAULT_CHECKPOINT, against=DEFAULT_CHECKPOINT,
         dry_run: bool = False, device: str = "auto", val_limit: Optional[int] = None,
         test_limit: Optional[int] = None, log: Callable[[str], None] = print) -> dict:
    """Score `candidate` against the generator in `against` (see the module docstring); when it
    beats it and not dry_run, write it to `out` (the replaced file kept as *.previous.pt). Returns
    the report: both scores, the rows, the decision, and the file written (or None)."""
    from ..variants.cifar_classifier import SHIPPED_CLASSIFIER, load_classifier
    from ..runs.data import load_split
    from ..runs.device import pick_device
    from .metrics import GRAY_METHOD, evaluate_methods, gray_baseline, output_format_for
    from .photos import sample_photos

    dev = pick_device(device)
    path = candidate_file(candidate)
    against, out = _checked_default_and_out(against, out)
    ckpt = rundir.load_checkpoint(path)
    G, cfg = generator_from_checkpoint(ckpt, path, dev)
    default_ckpt = rundir.load_checkpoint(against)
    D, _ = generator_from_checkpoint(default_ckpt, against, dev)
    # how many training images each run held out, as its own config says: a config written before
    # validation splits existed has no val_size, and that run trained on every training image
    held_out = ckpt["config"].get("val_size", 0)
    default_held_out = default_ckpt["config"].get("val_size", 0)
    # the candidate's own validation split, which it never trained on (a run without one: the paper's)
    val_size = held_out or make_config("paper").val_size
    val = load_split(data or cfg.data, "val", val_limit, val_size=val_size)
    classifier = load_classifier(SHIPPED_CLASSIFIER, dev).eval()
    photos = sample_photos()
    started = time.time()
    log(f"scoring {path} and {against} on {len(val):,} validation images and {len(photos)} photos ...")
    fmt = output_format_for(data or cfg.data)
    scores = {"candidate": score(G, val, classifier, dev, photos, fmt),
              "default": score(D, val, classifier, dev, photos, fmt)}
    gray = evaluate_methods({GRAY_METHOD: gray_baseline}, val.images, device=dev)["methods"][GRAY_METHOD]
    # the validation measures decide only if neither generator trained on those images
    fair = held_out > 0 and default_held_out >= val_size
    beats, rows, above_gray = decide(scores["candidate"], scores["default"], gray["psnr_dataset_db"], fair)
    why_not_validation = None if fair else _why_validation_does_not_decide(held_out, default_held_out, val_size)
    report = {"candidate": str(path), "default": str(against), "beats_default": beats, "rows": rows,
              "validation_decides": fair, "why_validation_does_not_decide": why_not_validation,
              "gray_val_psnr_dataset_db": gray["psnr_dataset_db"], "candidate_beats_gray": above_gray,
              "scores": scores, "seconds": round(time.time() - started, 1), "written": None}
    log(comparison_table(report))
    if why_not_validation:
        log(f"note: {why_not_validation}")
    if not beats:
        log(f"the candidate does not beat the default ({_why_it_loses(above_gray)}): {against} stays the default")
        return report
    if dry_run:
        log("the candidate beats the default (dry run: nothing written)")
        return report
    report["written"] = str(out)
    write_generator(G, cfg, ckpt, path, out, report, data, test_limit, classifier, dev, log)
    return report


def _checked_default_and_out(against, out) -> tuple[Path, Path]:
    """(against, out) as paths, refused before anything is scored: there must be a default to compare
    with, and `out` may only replace that default, never another file."""
    against = Path(against)
    if not against.is_file():
        raise RunDirError(f"{against} does not exist: there is no default to compare with; pass --against FILE")
    out = Path(out)
    if out.exists() and out.resolve() != against.resolve():
        raise RunDirError(f"{out} exists and is not the generator being replaced; choose another --out "
                          f"(nothing was written)")
    return against, out


def _why_validation_does_not_decide(held_out: int, default_held_out: int, val_size: int) -> str:
    """The note that says why the validation measures are shown but do not decide."""
    return (f"the default's run held out {default_held_out:,} training images, the candidate's "
            f"{held_out:,}, and its validation split has {val_size:,}: one of them trained on "
            f"those images, so the validation measures are shown but do not decide")


def _why_it_loses(above_gray: bool) -> str:
    """Why a candidate that does not beat the default loses: the gray copy, or the measures."""
    return ("it does not beat the gray copy on its validation split" if not above_gray else
            "it is worse on a deciding measure, or better on none")


def write_generator(G, cfg, ckpt: dict, path: Path, out: Path, report: dict, data, test_limit, classifier,
                    device, log) -> None:
    """The winner as colorize's default: float16 weights, config, provenance, the comparison and
    its test-split scores; the file it replaces kept as <out stem>.previous.pt."""
    from .metrics import evaluate_generator

    log("scoring the winner on the test split for the record ...")
    test = evaluate_generator(G, data or cfg.data, classifier, limit=test_limit, device=device, name="generator",
                              through_colorize=True)
    run = path.parent.parent  # RUN/checkpoints/<file>
    trained = rundir.read_run_info(run) if (run / "run.json").is_file() else {}
    weights = {k: _float16(v) for k, v in G.state_dict().items()}
    payload = rundir.to_cpu({
        "format": rundir.GENERATOR_FORMAT, "config": cfg.to_dict(), "epoch": ckpt.get("epoch"),
        "generator": weights,
        "metrics": test, "trained": trained, "ship": json.loads(json.dumps(report)),
        "note": f"{cfg.preset} preset, epoch {ckpt.get('epoch')} of {path}; weights stored as float16",
    })
    if out.exists():
        previous = out.with_name(out.stem + ".previous.pt")
        rundir.atomic_write_bytes(previous, out.read_bytes())
        log(f"the generator it replaces: {previous}")
    # its vividness dial, calibrated on validation images with the weights users get (float16)
    from ..inference.vividness import CHECKPOINT_KEY
    from .vividness import calibrate
    shipped = copy.deepcopy(G)
    shipped.load_state_dict(weights)
    payload[CHECKPOINT_KEY] = calibrate(shipped.eval(), cfg.to_dict(), data or cfg.data, log=log).to_dict()
    rundir.atomic_save(payload, out)
    log(f"shipped: {out}")


def _float16(value: torch.Tensor) -> torch.Tensor:
    """A floating-point tensor as float16, unless that overflows (a batch norm variance above 65,504
    would become +inf): then it stays float32. Other tensors as they are."""
    if not value.is_floating_point():
        return value
    half = value.half()
    return half if bool(half.isfinite().all()) or not bool(value.isfinite().all()) else value
