"""Many runs: `sweep` trains methods x seeds, one after another into OUT/<method>/seed<k>; `study` also
scores each run's best.pt (else generator.pt), aggregates over seeds and chooses on the validation split
only, by a rule fixed before any run (SELECTION_RULE). The same command continues a stopped sweep or study.
"""
from __future__ import annotations

import json
import math
import platform
import statistics
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..engine.resume import run_config
from ..engine.trainer import Trainer, TrainingDiverged
from ..inference.checkpoints import generator_from_checkpoint, run_checkpoint
from ..runs import rundir
from ..runs.config import ConfigError, make_config
from ..runs.data import load_split
from ..runs.device import device_name, pick_device
from ..variants.cifar_classifier import SHIPPED_CLASSIFIER, load_classifier
from .baselines import METHODS
from .metrics import colorize_method, evaluate_methods, gray_baseline, judge_labels
from .plots import frontier_figure, save_png
from .stable_colours import STUDY_FORMAT, collapse_figure, mean_std
from .validation import validator_for

SCORES = ("psnr_dataset_db", "psnr_colour_mean_db", "psnr_mean_db", "ssim", "colourfulness",
          "colourfulness_gap_pct", "pixel_accuracy", "semantic_accuracy", "feature_fd")
SELECTION_RULE = ("lowest mean validation feature FD (through colorize) among methods whose mean validation "
                  "dataset PSNR beats the gray copy's")
PLAN_KEYS = {"seeds": lambda v: isinstance(v, list) and all(type(s) is int for s in v),
             "preset": lambda v: isinstance(v, str), "set": lambda v: isinstance(v, dict),
             "out": lambda v: isinstance(v, str) and v != ""}


def baselines_methods(names: Optional[Sequence[str]] = None) -> dict[str, dict]:
    """{name: overrides} of the baselines table (or the named subset); an unknown name is a ConfigError."""
    unknown = [m for m in names or () if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    return {m: METHODS[m] for m in names or METHODS}


def load_plan(path) -> dict:
    """A sweep plan, JSON:

        {"preset": "paper", "seeds": [0, 1, 2], "out": "runs/sweep",
         "set": {"epochs": 20},                                   # for every run (optional)
         "methods": {"paper": {}, "stable": {"lr": 1e-4}}}        # name -> config overrides

    A method given as a string (or a list of names) names a method of the baselines table. Its
    name is the folder its runs go in (OUT/<method>/seed<k>). Anything malformed is a ConfigError."""
    where = f"plan file {str(path)!r}"
    try:
        plan = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where} cannot be read as JSON ({type(exc).__name__}: {rundir.first_line(exc)})") from None
    methods = plan.get("methods") if isinstance(plan, dict) else None
    if isinstance(methods, list) and all(isinstance(m, str) for m in methods):
        methods = dict(zip(methods, methods))
    if not isinstance(methods, dict):
        raise ConfigError(f"{where} needs a \"methods\" object (name -> config overrides) or a list of baselines names")
    plan = {"seeds": [0], "preset": "quick", "set": {}, **plan, "methods": {}}
    for name, value in methods.items():
        if name in ("", ".", "..") or any(c in name for c in "/\\\0"):  # the folder OUT/<method>: inside OUT
            raise ConfigError(f"{where}: method {name!r} must be a plain folder name (its runs go in OUT/<method>)")
        plan["methods"][name] = baselines_methods([value])[value] if isinstance(value, str) else value
        if not isinstance(plan["methods"][name], dict):
            raise ConfigError(f"{where}: method {name!r} must be an object of config overrides or a baselines name")
    for key, ok in PLAN_KEYS.items():
        if key in plan and not ok(plan[key]):
            raise ConfigError(f"{where}: \"{key}\" has the wrong kind of value: {json.dumps(plan[key])}")
    return plan


def train_runs(methods: dict[str, dict], seeds: Sequence[int], preset: str, out, common: dict,
               progress: bool = True, log=print, accept_changes=()) -> dict[str, str]:
    """Every method x seed into OUT/<method>/seed<k>, every run already there checked first, so a refusal
    costs no training; a run that diverges is reported and the others go on. Returns {run dir: why}."""
    runs = []
    for name, overrides in methods.items():
        for seed in seeds:
            run_dir = Path(out) / name / f"seed{seed}"
            cfg = make_config(preset, **{**common, **overrides, "seed": seed})
            if rundir.is_run_dir(run_dir):
                run_config(run_dir, cfg, resume=True)  # a ConfigError where the maths differ
                if rundir.read_run_info(run_dir).get("status") == "finished":
                    continue
            runs.append((run_dir, cfg))
    failed, data_cache = {}, {}
    for k, (run_dir, cfg) in enumerate(runs):
        log(f"== {run_dir} ({k + 1} of {len(runs)} to train)")
        try:
            with Trainer(cfg, run_dir, resume="auto", progress=progress, validator=validator_for,
                         accept_changes=accept_changes, data_cache=data_cache) as trainer:
                trainer.fit()
        except TrainingDiverged as exc:
            failed[str(run_dir)] = f"{type(exc).__name__}: {rundir.first_line(exc)}"
            log(f"   {run_dir}: failed ({failed[str(run_dir)]}); the others go on")
    return failed


def score_run(run_dir: Path, splits: dict, classifier, device) -> dict:
    """Scores of a run's selected generator on each split, raw and through colorize; reused from
    its scores.json where that scored the same checkpoint on the same images."""
    path = run_checkpoint(run_dir, ("best.pt", "generator.pt"))
    ckpt = rundir.load_checkpoint(path)
    scored_on = {"checkpoint": path.name, "epoch": int(ckpt.get("epoch", -1)),
                 "images": {split: [data.source, len(data)] for split, data in splits.items()}}
    kept = rundir.read_json(run_dir / "scores.json") if (run_dir / "scores.json").is_file() else {}
    if kept.get("scored_on") == scored_on:
        return kept
    G, _ = generator_from_checkpoint(ckpt, path, device)  # in eval mode: "raw" is its output as trained
    out = {"checkpoint": path.name, "epoch": scored_on["epoch"], "scored_on": scored_on}
    for split, data in splits.items():
        out[split] = evaluate_methods({"raw": G, "colorize": colorize_method(G)}, data.images, data.labels,
                                      classifier, device=device)["methods"]
    rundir.write_json(run_dir / "scores.json", out)  # kept even if the study stops later
    return out


def aggregate(per_seed: Sequence[dict]) -> dict:
    """{score: {"mean", "std", "n"}} over seeds (std: sample standard deviation, 0 for one seed)."""
    out = {}
    for key in SCORES:
        values = [s[key] for s in per_seed if s.get(key) is not None and math.isfinite(s[key])]
        if values:
            out[key] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                        "n": len(values)}
    return out


def collapse_summary(run_dirs: Sequence[Path]) -> dict:
    """Per-epoch share of iterations where D won outright, averaged over a method's seeds."""
    shares = [e["d_wins_share"].tolist() for e in map(rundir.read_epochs, run_dirs) if "d_wins_share" in e]
    if not shares:
        return {}
    per_epoch = [statistics.fmean(s) for s in zip(*shares)]
    return {"per_epoch": per_epoch, "mean": statistics.fmean(per_epoch) if per_epoch else 0.0,
            "epochs_over_half": sum(v > 0.5 for v in per_epoch)}


def choose(methods: dict, gray: dict) -> Optional[str]:
    """SELECTION_RULE, on validation scores only."""
    gray_psnr = gray["val"]["psnr_dataset_db"]["mean"]
    eligible = {m: r["val"]["colorize"] for m, r in methods.items()
                if r["val"]["colorize"].get("psnr_dataset_db", {}).get("mean", -math.inf) > gray_psnr
                and "feature_fd" in r["val"]["colorize"]}
    return min(eligible, key=lambda m: eligible[m]["feature_fd"]["mean"]) if eligible else None


def _score_method(name: str, overrides: dict, seeds: Sequence[int], out: Path, splits: dict, classifier, device,
                  failed: dict, log) -> Optional[dict]:
    """A method's entry in the report, from its seeds that have a generator."""
    per_seed, dirs = [], []
    for seed in seeds:
        run_dir = out / name / f"seed{seed}"
        if not any((run_dir / "checkpoints" / f).exists() for f in ("best.pt", "generator.pt")):
            continue  # a run that failed before its first epoch ended has nothing to score
        info = rundir.read_run_info(run_dir)
        per_seed.append({**score_run(run_dir, splits, classifier, device), "seed": seed, "status": info.get("status"),
                         "epochs_done": info.get("epochs_done"), "failure": failed.get(str(run_dir))})
        dirs.append(run_dir)
    if not per_seed:
        return None
    r = {"overrides": overrides, "collapse": collapse_summary(dirs), "seeds": per_seed,
         **{split: {v: aggregate([s[split][v] for s in per_seed]) for v in ("raw", "colorize")}
            for split in ("val", "test")}}
    log(f"   {name}: val FD {r['val']['colorize'].get('feature_fd', {}).get('mean', math.nan):.2f}, "
        f"test PSNR {r['test']['colorize'].get('psnr_dataset_db', {}).get('mean', math.nan):.2f} dB")
    return r


def run_study(preset: str, out, figures, seeds: int | Sequence[int] = 3, methods: Sequence[str] | dict | None = None,
              data: Optional[str] = None, device: str = "auto", overrides: Optional[dict] = None,
              progress: bool = True, test_limit: Optional[int] = None, log=print, accept_changes=()) -> dict:
    """The study of the module docstring, into `figures`. methods: baselines names, or {name: overrides}."""
    chosen_methods = methods if isinstance(methods, dict) else baselines_methods(methods)
    seeds = range(seeds) if isinstance(seeds, int) else list(seeds)
    started, dev = time.perf_counter(), pick_device(device)
    common, out = {"data": data, "device": str(dev), **(overrides or {})}, Path(out)
    log(f"== study: {len(chosen_methods)} methods x {len(seeds)} seeds, preset {preset}, on {device_name(dev)}")
    failed = train_runs(chosen_methods, seeds, preset, out, common, progress, log, accept_changes)

    log("== scoring")
    cfg = make_config(preset, **common)
    classifier = load_classifier(SHIPPED_CLASSIFIER, dev).eval()
    splits = {"val": load_split(data, "val", None, 0, cfg.data_root, val_size=cfg.val_size),
              "test": load_split(data, "test", test_limit, 0, cfg.data_root)}
    for images in splits.values():  # the judge's class indices, matched by name (a folder's classes are its own)
        images.labels = judge_labels(images.labels, images.classes, classifier)[0]
    scored = {split: evaluate_methods({"gray": gray_baseline}, images.images, images.labels, classifier, device=dev)
              for split, images in splits.items()}
    gray = {split: aggregate([r["methods"]["gray"]]) for split, r in scored.items()}  # shaped like a method's
    results = {name: r for name in chosen_methods
               if (r := _score_method(name, chosen_methods[name], seeds, out, splits, classifier, dev, failed, log))}
    chosen = choose(results, gray)
    report = {"format": STUDY_FORMAT, "preset": preset, "seeds": len(seeds), "methods": results, "gray": gray,
              "ground_truth": {split: r["ground_truth"] for split, r in scored.items()},
              "chosen": chosen, "selection_rule": SELECTION_RULE,
              "epochs": {name: r["seeds"][0]["epochs_done"] for name, r in results.items()},
              "device": str(dev), "device_name": device_name(dev), "torch": torch.__version__,
              "python": platform.python_version(), "data": Path(splits["test"].source).name,
              "val_images": len(splits["val"]), "test_images": len(splits["test"]),
              "seconds": round(time.perf_counter() - started, 1)}
    figures = Path(figures)
    rundir.write_json(figures / "metrics.json", report)
    rundir.atomic_write_text(figures / "metrics.md", study_table(report))
    save_png(frontier_figure(report), figures / "frontier.png", dpi=110)
    save_png(collapse_figure(report), figures / "collapse.png", dpi=110)
    log(f"== chosen on validation: {chosen}; wrote {figures}")
    return report


def _cells(entry: dict, cols) -> list[str]:
    return [mean_std(entry[key], fmt) if entry.get(key) else "n/a" for key, _, fmt in cols]


def _row(*cells) -> str:
    return "| " + " | ".join(cells) + " |"


def study_table(report: dict) -> str:
    """metrics.md: the test split through colorize per method (mean ± std), then the validation split."""
    cols = (("psnr_dataset_db", "PSNR dataset (dB)", "{:.2f}"),
            ("psnr_colour_mean_db", "PSNR per image* (dB)", "{:.2f}"), ("ssim", "SSIM", "{:.3f}"),
            ("colourfulness", "Colourf.", "{:.1f}"),
            ("semantic_accuracy", "Semantic acc.", "{:.2%}"), ("feature_fd", "Feature FD", "{:.2f}"))
    val_cols = [c for c in cols if c[0] in ("psnr_dataset_db", "colourfulness", "feature_fd")]
    truth, gray, methods = report["ground_truth"]["test"], report["gray"], report["methods"]
    some = next(iter(methods.values()), None)
    left_out = some["seeds"][0]["test"]["colorize"].get("gray_truths_left_out") if some else None
    lines = [f"Preset `{report['preset']}`, epochs per run: {sorted(set(report['epochs'].values()))}, "
             f"{report['seeds']} seeds (mean ± sample std), on {report['device_name']}. Test split of "
             f"`{report['data']}` ({report['test_images']} images), scored through `colorize` (the input's luma, "
             f"the network's chroma). Ground truth: colourfulness {truth['colourfulness']:.1f}, semantic accuracy "
             f"{truth['semantic_accuracy']:.2%}. *Per-image PSNR leaves out the {left_out} test images whose "
             f"truth is exactly gray. Chosen on the validation split ({report['val_images']} training images held "
             f"out): **{report['chosen']}** ({report['selection_rule']}).", "",
             _row("Method", *(h for _, h, _ in cols), "D wins (share of iterations)"),
             "|---|" + "---:|" * (len(cols) + 1), _row("gray (copied to RGB)", *_cells(gray["test"], cols), "-")]
    lines += [_row(name + " **(chosen)**" * (name == report["chosen"]), *_cells(r["test"]["colorize"], cols),
                   f"{r.get('collapse', {}).get('mean', 0):.2f}") for name, r in methods.items()]
    lines += ["", "Validation split (choice), through colorize:", "",
              _row("Method", "PSNR dataset (dB)", "Colourf.", "Feature FD"), "|---|---:|---:|---:|"]
    val_rows = {"gray (copied to RGB)": gray["val"], **{n: r["val"]["colorize"] for n, r in methods.items()}}
    lines += [_row(name, *_cells(v, val_cols)) for name, v in val_rows.items()]
    lines += ["", "Methods (config fields changed from the preset):", ""]
    lines += [f"- {name}: " + (", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "the paper's recipe")
              for name, r in methods.items()]
    return "\n".join(lines) + "\n"
