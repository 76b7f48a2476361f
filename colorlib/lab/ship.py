"""Shipping a generator as `colorize`'s default: only when it beats the one that ships now, both scored
on the validation split through `colorize` and on the sample photos, never on the test split.

A measure decides only where neither generator trained on its images (the shipped one trained on all
50,000, so against it only the photos decide); the candidate must also beat the gray copy's validation
PSNR. Only a winner is written, after everything else is computed, and the file it replaces is kept.
"""
from __future__ import annotations

import copy
import itertools
import json
import time
from pathlib import Path
from typing import Optional

import torch

from ..inference.checkpoints import DEFAULT_CHECKPOINT, generator_from_checkpoint, run_checkpoint
from ..inference.colorize import DEFAULT_RENDER_SIZE
from ..inference.vividness import CHECKPOINT_KEY
from ..runs import rundir
from ..runs.data import load_split
from ..runs.device import pick_device

from ..variants.cifar_classifier import SHIPPED_CLASSIFIER, load_classifier
from .metrics import (GRAY_METHOD, colorize_method, evaluate_generator, evaluate_methods, gray_baseline, judge_labels,
                      output_format_for)
from .photos import evaluate_photos, sample_photos
from .vividness import DEFAULT_VAL_SIZE, calibrate

# (key, label, "higher" or "lower" is better, format in the comparison table)
MEASURES = (("val_psnr_dataset_db", "validation PSNR, dataset (dB)", "higher", "{:.2f}"),
            ("val_colourfulness_gap", "validation colourfulness, distance to the truth's", "lower", "{:.2f}"),
            ("val_semantic_accuracy", "validation semantic accuracy", "higher", "{:.3f}"),
            ("val_feature_fd", "validation classifier-feature FD", "lower", "{:.2f}"),
            ("photos_beat_gray", "photos beating the gray copy (share)", "higher", "{:.3f}"),
            ("photos_colour_missing", "photos: colourfulness missing or added (|1 - kept|)", "lower", "{:.3f}"))
PHOTO_MEASURES = ("photos_beat_gray", "photos_colour_missing")


def candidate_file(path) -> Path:
    """A checkpoint file as it is; a run directory's best.pt, else generator.pt, else last.pt."""
    path = Path(path)
    return run_checkpoint(path, ("best.pt", "generator.pt", "last.pt")) if path.is_dir() else path


def score(G: torch.nn.Module, val, classifier, device, photos, fmt: str) -> dict:
    """MEASURES for generator G, and the scores they come from."""
    labels, _ = judge_labels(val.labels, val.classes, classifier)
    scores = evaluate_methods({"G": colorize_method(G, fmt=fmt)}, val.images, labels, classifier,
                              device=device)
    m, truth = scores["methods"]["G"], scores["ground_truth"]
    agg = evaluate_photos(G.cpu(), [DEFAULT_RENDER_SIZE], photos=photos)["results"][DEFAULT_RENDER_SIZE]["aggregate"]
    G.to(device)
    return {"val_psnr_dataset_db": m["psnr_dataset_db"],
            "val_colourfulness_gap": abs(m["colourfulness"] - truth["colourfulness"]),
            "val_semantic_accuracy": m["semantic_accuracy"], "val_feature_fd": m["feature_fd"],
            "photos_beat_gray": agg["beats_gray_share"],
            "photos_colour_missing": abs(1 - agg["colourfulness_kept_mean"]),
            "validation": {"images": len(val), "truth_colourfulness": truth["colourfulness"], **m},
            "photos": {"render_size": DEFAULT_RENDER_SIZE, **agg}}


def decide(candidate: dict, default: dict, gray_val_psnr: float, validation_decides: bool = True):
    """(beats, a row per measure: which is better and whether it decides, candidate beats gray); the
    validation measures decide only when `validation_decides`."""
    rows = []
    for key, label, better, _ in MEASURES:
        gain = (candidate[key] - default[key]) * (1 if better == "higher" else -1)
        rows.append({"measure": key, "label": label, "candidate": candidate[key], "default": default[key],
                     "decides": validation_decides or key in PHOTO_MEASURES,
                     "verdict": "better" if gain > 0 else "worse" if gain < 0 else "same"})
    deciders = [r["verdict"] for r in rows if r["decides"]]
    above_gray = candidate["val_psnr_dataset_db"] > gray_val_psnr
    return "worse" not in deciders and "better" in deciders and above_gray, rows, above_gray


def comparison_table(report: dict) -> str:
    lines = ["| measure | candidate | default | candidate is | decides |", "|---|---:|---:|---|---|"]
    for r, (_, _, _, fmt) in zip(report["rows"], MEASURES):
        lines.append(f"| {r['label']} | {fmt.format(r['candidate'])} | {fmt.format(r['default'])} | {r['verdict']} "
                     f"| {'yes' if r['decides'] else 'no'} |")
    beats = "beats it" if report["candidate_beats_gray"] else "does not beat it"
    return "\n".join(lines + ["", f"validation PSNR of the gray copy: {report['gray_val_psnr_dataset_db']:.2f} dB; "
                              f"the candidate's {report['scores']['candidate']['val_psnr_dataset_db']:.2f} dB "
                              f"({beats})"]) + "\n"


def ship(candidate, data: Optional[str] = None, out=None, against=None, dry_run: bool = False, device: str = "auto",
         val_limit: Optional[int] = None, test_limit: Optional[int] = None, log=print) -> dict:
    """Score `candidate` (a checkpoint, or a run's best.pt, else generator.pt or last.pt) against `against`;
    when it wins and not dry_run, write it to `out` (both default to colorize's default)."""
    dev, path = pick_device(device), candidate_file(candidate)
    against, out = Path(against or DEFAULT_CHECKPOINT), Path(out or DEFAULT_CHECKPOINT)
    if not against.is_file():
        raise rundir.RunDirError(f"{against} does not exist: there is no default to compare with; pass --against FILE")
    if out.exists() and out.resolve() != against.resolve():
        raise rundir.RunDirError(f"{out} exists and is not the generator being replaced; choose another --out")
    ckpt, default_ckpt = rundir.load_checkpoint(path), rundir.load_checkpoint(against)
    G, cfg = generator_from_checkpoint(ckpt, path, dev)
    D, _ = generator_from_checkpoint(default_ckpt, against, dev)
    # the training images each run held out, as its config says (none: it trained on all of them)
    held_out, default_held_out = ckpt["config"].get("val_size", 0), default_ckpt["config"].get("val_size", 0)
    val_size = held_out or DEFAULT_VAL_SIZE  # the candidate's own hold-out (a run without one: the paper's)
    val = load_split(data or cfg.data, "val", val_limit, val_size=val_size)
    classifier, photos, started = load_classifier(SHIPPED_CLASSIFIER, dev), sample_photos(), time.time()
    log(f"scoring {path} and {against} on {len(val):,} validation images and {len(photos)} photos ...")
    fmt = output_format_for(data or cfg.data)
    scores = {name: score(net, val, classifier, dev, photos, fmt) for name, net in (("candidate", G), ("default", D))}
    gray_psnr = evaluate_methods({GRAY_METHOD: gray_baseline}, val.images)["methods"][GRAY_METHOD]["psnr_dataset_db"]
    fair = held_out > 0 and default_held_out >= val_size  # neither generator trained on those images
    beats, rows, above_gray = decide(scores["candidate"], scores["default"], gray_psnr, fair)
    why_not = None if fair else (f"the default's run held out {default_held_out:,} training images, the candidate's "
                                 f"{held_out:,}, and its validation split has {val_size:,}: one of them trained on "
                                 f"those images, so the validation measures are shown but do not decide")
    report = {"candidate": str(path), "default": str(against), "beats_default": beats, "rows": rows,
              "validation_decides": fair, "why_validation_does_not_decide": why_not,
              "gray_val_psnr_dataset_db": gray_psnr, "candidate_beats_gray": above_gray,
              "scores": scores, "seconds": round(time.time() - started, 1), "written": None}
    log(comparison_table(report) + (f"note: {why_not}" if why_not else ""))
    if not beats:
        why = "it is worse on a deciding measure, or better on none" if above_gray else \
            "it does not beat the gray copy on its validation split"
        log(f"the candidate does not beat the default ({why}): {against} stays the default")
    elif dry_run:
        log("the candidate beats the default (dry run: nothing written)")
    else:
        report["written"] = str(out)
        write_generator(G, cfg, ckpt, path, out, report, data, test_limit, classifier, dev, log)
    return report


def write_generator(G, cfg, ckpt: dict, path: Path, out: Path, report: dict, data, test_limit, classifier,
                    device, log) -> None:
    """The winner as colorize's default, computed in full before the first write; the file it replaces is kept."""
    log("scoring the winner on the test split for the record ...")
    test = evaluate_generator(G, data or cfg.data, classifier, limit=test_limit, device=device)
    run = path.parent.parent  # RUN/checkpoints/<file>
    weights = {k: _float16(v) for k, v in G.state_dict().items()}
    shipped = copy.deepcopy(G)
    shipped.load_state_dict(weights)  # its dial calibrated with the weights users get (float16)
    trained = rundir.read_run_info(run) if (run / "run.json").is_file() else {}
    payload = {"format": rundir.GENERATOR_FORMAT, "config": cfg.to_dict(), "epoch": ckpt.get("epoch"),
               "generator": weights, "metrics": test, "trained": trained, "ship": json.loads(json.dumps(report)),
               "note": f"{cfg.preset} preset, epoch {ckpt.get('epoch')} of {path}; weights stored as float16",
               CHECKPOINT_KEY: calibrate(shipped.eval(), cfg.to_dict(), data or cfg.data, log=log).to_dict()}
    if out.exists():
        names = (out.with_name(f"{out.stem}.previous{'' if k == 1 else f'-{k}'}.pt") for k in itertools.count(1))
        previous = next(name for name in names if not name.exists())
        rundir.atomic_write_bytes(previous, out.read_bytes())
        log(f"the generator it replaces: {previous}")
    rundir.atomic_save(payload, out)
    log(f"shipped: {out}")


def _float16(value: torch.Tensor) -> torch.Tensor:
    """A floating-point tensor as float16, unless that overflows (a batch norm variance above 65,504
    would become +inf): then float32. Other tensors as they are."""
    if not value.is_floating_point():
        return value
    half = value.half()
    return half if bool(half.isfinite().all()) or not bool(value.isfinite().all()) else value
