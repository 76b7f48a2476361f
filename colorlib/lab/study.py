"""The whole comparison in one command: every method x seeds, packed, scored, aggregated.

    python -m colorlib study --preset paper --seeds 3 --out runs/study --figures figures/paper/baselines \
        --time-budget 420

1. Throughput: one run alone vs the whole pack, in images per second (study_bench.json).
2. Training: every method of the baselines table x every seed, packed on one device
   (packing.py). With --time-budget the epochs of all runs are fitted to the budget after the
   first epoch, the same for every run, and each run's config.json says what it got.
3. Scoring: each run's `best.pt` (the epoch with the lowest validation feature distance, see
   validation.py; generator.pt where a run kept none) on the validation split and on the test
   split, both as the network outputs it (raw) and as `colorize` delivers it (the input's
   exact luma with the network's chroma).
4. Aggregation: per method, the mean and the spread (sample standard deviation) over seeds of
   every score (metrics.json, with each seed's scores under "seeds"; metrics.md), the
   PSNR-vs-colourfulness frontier (frontier.png) and the collapse statistic per epoch
   (collapse.png).
5. The choice, made on the validation split only, by a rule fixed before any run: the method
   with the lowest mean validation feature distance among those whose mean validation PSNR
   (through colorize) beats the gray copy's. Test numbers are reported, never used to choose.
"""
from __future__ import annotations

import math
import platform
import statistics
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..runs import rundir
from ..runs.config import ConfigError, make_config

SCORES = ("psnr_dataset_db", "psnr_colour_mean_db", "psnr_mean_db", "ssim", "colourfulness",
          "colourfulness_gap_pct", "pixel_accuracy", "semantic_accuracy", "feature_fd")


STUDY_FORMAT = "colorlib-study-v1"  # metrics.json of a study; read by notebooks 07 and 08

def measure_sequential(preset: str, method: dict, common: dict, data_cache: dict, epochs: int = 3) -> dict:
    """One run alone, timed like the pack (packing.train_packed): the epochs after the first,
    validation and sample writing included, in a scratch folder."""
    import tempfile

    from .packing import train_packed
    from ..engine.trainer import Trainer
    from .validation import validator_for
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(preset, **{**common, **method, "epochs": epochs})
        t = Trainer(cfg, Path(tmp) / "run", progress=False, data_cache=data_cache, validator=validator_for)
        result = train_packed([t], progress=False)
    return result


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def score_run(run_dir: Path, splits: dict, classifier, device) -> dict:
    """Scores of a run's selected generator on each split, raw and through colorize."""
    from .metrics import colorize_method, evaluate_methods, generator_method
    from ..inference.checkpoints import generator_from_checkpoint
    path = run_dir / "checkpoints" / "best.pt"
    if not path.exists():
        path = run_dir / "checkpoints" / "generator.pt"
    ckpt = rundir.load_checkpoint(path)  # read once: the generator and the epoch it was selected at
    G, _ = generator_from_checkpoint(ckpt, path, device)
    out = {"checkpoint": path.name, "epoch": int(ckpt.get("epoch", -1))}
    for split, data in splits.items():
        result = evaluate_methods({"raw": generator_method(G), "colorize": colorize_method(G)},
                                  data.images, data.labels, classifier, device=device)
        out[split] = result["methods"]
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
    shares = []
    for d in run_dirs:
        e = rundir.read_epochs(d)
        if "d_wins_share" in e:
            shares.append(e["d_wins_share"].tolist())
    if not shares:
        return {}
    n = min(len(s) for s in shares)
    per_epoch = [statistics.fmean(s[i] for s in shares) for i in range(n)]
    return {"per_epoch": per_epoch, "mean": statistics.fmean(per_epoch) if per_epoch else 0.0,
            "epochs_over_half": sum(v > 0.5 for v in per_epoch)}


def choose(methods: dict, gray: dict) -> Optional[str]:
    """The selection rule (module docstring), on validation scores only."""
    gray_psnr = gray["val"]["psnr_dataset_db"]["mean"]
    eligible = {m: r for m, r in methods.items()
                if r["val"]["colorize"].get("psnr_dataset_db", {}).get("mean", -math.inf) > gray_psnr
                and "feature_fd" in r["val"]["colorize"]}
    if not eligible:
        return None
    return min(eligible, key=lambda m: eligible[m]["val"]["colorize"]["feature_fd"]["mean"])


def run_study(preset: str, out, figures, seeds: int = 3, methods: Optional[Sequence[str]] = None,
              data: Optional[str] = None, device: str = "auto", time_budget: Optional[float] = None,
              overrides: Optional[dict] = None, progress: bool = True,
              test_limit: Optional[int] = None, log=None, accept_changes=()) -> dict:
    """The whole study of the module docstring: throughput, packed training, scoring, aggregation,
    the choice; writes metrics.json, study_bench.json, metrics.md and the figures, returns the report.
    accept_changes: what runs already in `out` may find changed when they continue (Trainer's)."""
    log = log or (lambda msg: print(msg, flush=True))
    from .baselines import METHODS
    from ..variants.cifar_classifier import SHIPPED_CLASSIFIER, load_classifier
    from ..runs.device import device_name, pick_device

    names = _study_methods(methods)
    started = time.perf_counter()
    dev = pick_device(device)
    common = _study_settings(data, dev, overrides)
    out, figures = Path(out), Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    data_cache: dict = {}

    log(f"== study: {len(names)} methods x {seeds} seeds, preset {preset}, on {device_name(dev)}")
    sequential = None  # on a CPU the pack takes its runs in turn on the same cores: no gain to time
    if dev.type == "cuda":
        sequential = measure_sequential(preset, METHODS["paper"], common, data_cache)
        log(f"   one run alone: {sequential['steady_images_per_s']:.0f} images/s")
    packed = _train_study_runs(preset, names, seeds, out, common, data_cache, started, time_budget, progress, log,
                               accept_changes)
    speedup = _log_speedup(packed, sequential, log)
    # the trainers are gone with _train_study_runs; their data and device memory go before scoring
    data_cache.clear()
    if dev.type == "cuda":
        torch.cuda.empty_cache()

    log("== scoring")
    splits = _scoring_splits(preset, common, data, test_limit)
    classifier = load_classifier(SHIPPED_CLASSIFIER, dev).eval()
    gray_scores, truth = _score_gray(splits, classifier, dev)
    results: dict = {}
    for name in names:
        per_seed, dirs = _score_seeds(name, seeds, out, splits, classifier, dev, packed["failed"], log)
        if per_seed:
            results[name] = _summarise_method(name, per_seed, dirs, log)
    chosen = choose(results, gray_scores)
    report = _study_report(preset, seeds, results, gray_scores, truth, chosen, dev, splits, started)
    bench = _study_bench(preset, names, seeds, sequential, packed, speedup, dev)
    _write_study(figures, report, bench)
    log(f"== chosen on validation: {chosen}; wrote {figures}")
    return report


def _study_methods(methods: Optional[Sequence[str]]) -> list[str]:
    """The methods to compare (default: the whole baselines table); an unknown name is a ConfigError."""
    from .baselines import METHODS
    names = list(methods or METHODS)
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    return names


def _study_settings(data: Optional[str], dev, overrides: Optional[dict]) -> dict:
    """The config overrides every run of the study shares (data, device, the user's, the pack's)."""
    common = {"data": data, "device": str(dev), **(overrides or {})}
    # checkpoints only at the end: a pack of dozens of runs would otherwise write gigabytes
    common.setdefault("checkpoint_every", 10_000)
    common.setdefault("log_every", 100)  # a diverging run is caught within 100 iterations
    return common


def _train_study_runs(preset: str, names: Sequence[str], seeds: int, out: Path, common: dict, data_cache: dict,
                     started: float, time_budget: Optional[float], progress: bool, log,
                     accept_changes=()) -> dict:
    """Every method x seed trained packed, within what is left of the time budget; train_packed's figures."""
    from .baselines import METHODS
    from .packing import expand, make_trainers, train_packed
    specs = expand({m: METHODS[m] for m in names}, range(seeds))
    trainers, _ = make_trainers(specs, preset, out, common, data_cache=data_cache, log=log,
                                accept_changes=accept_changes)
    left = None if time_budget is None else time_budget - (time.perf_counter() - started)
    log(f"== training {len(trainers)} runs packed" + (f", {left:.0f} s budget" if left else ""))
    return train_packed(trainers, progress=progress, time_budget=left, fit_epochs=left is not None, log=log)


def _log_speedup(packed: dict, sequential: Optional[dict], log) -> float:
    """Logs the pack's throughput and returns its speed-up over one run alone (NaN: not timed)."""
    steady = packed["steady_images_per_s"]
    if sequential is None:
        log(f"   packed: {packed['images_per_s']:.0f} images/s over all {packed['seconds']:.0f} s")
        return math.nan
    if math.isnan(steady):  # one epoch: no rate after the first, compare the whole run's
        speedup = packed["images_per_s"] / sequential["steady_images_per_s"]
        log(f"   packed: {packed['images_per_s']:.0f} images/s over all {packed['seconds']:.0f} s, "
            f"one epoch ({speedup:.1f}x one run)")
    else:
        speedup = steady / sequential["steady_images_per_s"]
        log(f"   packed: {steady:.0f} images/s after the first epoch, "
            f"{packed['images_per_s']:.0f} over all {packed['seconds']:.0f} s ({speedup:.1f}x one run)")
    return speedup


def _scoring_splits(preset: str, common: dict, data: Optional[str], test_limit: Optional[int]) -> dict:
    """The validation split the runs held out (the choice) and the test split (the record)."""
    from ..runs.data import load_split
    cfg0 = make_config(preset, **{k: v for k, v in common.items() if k in ("data", "val_size")})
    return {"val": load_split(data, "val", None, 0, cfg0.data_root, val_size=cfg0.val_size),
            "test": load_split(data, "test", test_limit, 0, cfg0.data_root)}


def _score_gray(splits: dict, classifier, device) -> tuple[dict, dict]:
    """(the gray copy's scores, the ground truth's) per split; the gray copy's shaped like a method's aggregate."""
    from .metrics import evaluate_methods, gray_baseline
    gray_scores, truth = {}, {}
    for split, images in splits.items():
        r = evaluate_methods({"gray": gray_baseline}, images.images, images.labels, classifier, device=device)
        gray_scores[split] = {k: {"mean": v, "std": 0.0, "n": 1} for k, v in r["methods"]["gray"].items()
                              if isinstance(v, (int, float)) and v is not None}
        truth[split] = r["ground_truth"]
    return gray_scores, truth


def _score_seeds(name: str, seeds: int, out: Path, splits: dict, classifier, device, failed: dict,
                log) -> tuple[list, list]:
    """(scores, run directory) of each of a method's seeds that has something to score; each seed's
    scores are also written to its scores.json."""
    per_seed, dirs = [], []
    for seed in range(seeds):
        run_dir = out / name / f"seed{seed}"
        if not rundir.is_run_dir(run_dir):
            continue
        if not (run_dir / "checkpoints").exists():
            continue  # a run that failed before its first epoch ended has nothing to score
        try:
            s = score_run(run_dir, splits, classifier, device)
        except Exception as exc:  # one unreadable run must not lose the others' scores
            log(f"   {run_dir}: not scored ({type(exc).__name__}: {exc})")
            continue
        info = rundir.read_run_info(run_dir)
        # a run that diverged is scored by its best epoch before that, and says so
        s.update(seed=seed, epochs_done=info.get("epochs_done"), status=info.get("status"),
                 failure=failed.get(str(run_dir)))
        rundir.write_json(run_dir / "scores.json", s)  # kept even if the study stops later
        per_seed.append(s)
        dirs.append(run_dir)
    return per_seed, dirs


def _summarise_method(name: str, per_seed: list, dirs: list, log) -> dict:
    """A method's entry in the report: its overrides, scores aggregated over seeds, collapse, each seed's."""
    from .baselines import METHODS
    summary = {
        "overrides": METHODS[name],
        "val": {v: aggregate([s["val"][v] for s in per_seed]) for v in ("raw", "colorize")},
        "test": {v: aggregate([s["test"][v] for s in per_seed]) for v in ("raw", "colorize")},
        "collapse": collapse_summary(dirs),
        "seeds": per_seed,
    }
    log(f"   {name}: val FD {summary['val']['colorize'].get('feature_fd', {}).get('mean', math.nan):.2f}, "
        f"test PSNR {summary['test']['colorize'].get('psnr_dataset_db', {}).get('mean', math.nan):.2f} dB")
    return summary


def _study_report(preset: str, seeds: int, results: dict, gray_scores: dict, truth: dict, chosen: Optional[str],
                 dev, splits: dict, started: float) -> dict:
    """The study's metrics.json (STUDY_FORMAT): every method's scores, the baselines, the choice, the setting."""
    from ..runs.device import device_name
    cfg_epochs = {name: r["seeds"][0]["epochs_done"] for name, r in results.items()}
    return {
        "format": STUDY_FORMAT, "preset": preset, "seeds": seeds, "methods": results,
        "gray": gray_scores, "ground_truth": truth, "chosen": chosen,
        "selection_rule": "lowest mean validation feature FD (through colorize) among methods whose mean "
                          "validation dataset PSNR beats the gray copy's",
        "epochs": cfg_epochs, "device": str(dev), "device_name": device_name(dev), "torch": torch.__version__,
        "python": platform.python_version(), "data": Path(splits["test"].source).name,
        "val_images": len(splits["val"]), "test_images": len(splits["test"]),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _study_bench(preset: str, names: Sequence[str], seeds: int, sequential: Optional[dict], packed: dict,
                 speedup: float, dev) -> dict:
    """The study's study_bench.json: one run alone vs the pack, and what the pack trained."""
    from .baselines import METHODS
    from ..runs.device import device_name
    return {"device_name": device_name(dev), "preset": preset, "runs_packed": packed["runs"],
            "sequential_images_per_s": None if sequential is None else sequential["steady_images_per_s"],
            "packed_images_per_s": packed["steady_images_per_s"],
            "packed_images_per_s_whole_run": packed["images_per_s"],
            "speedup": speedup, "epochs_planned": packed.get("planned_epochs"), "epochs_done": packed.get("epochs"),
            "packed_seconds": packed["seconds"], "cut_by_budget": packed.get("cut_by_budget"),
            "configs": {name: METHODS[name] for name in names}, "seeds": seeds, "failed": packed["failed"],
            "torch": torch.__version__}


def _write_study(figures: Path, report: dict, bench: dict) -> None:
    """metrics.json, study_bench.json, metrics.md, frontier.png and collapse.png into `figures`."""
    rundir.write_json(figures / "metrics.json", report)
    rundir.write_json(figures / "study_bench.json", bench)
    rundir.atomic_write_text(figures / "metrics.md", study_table(report))
    from .plots import collapse_figure, frontier_figure
    for fig, fname in ((frontier_figure(report), "frontier.png"), (collapse_figure(report), "collapse.png")):
        fig.savefig(figures / fname, dpi=110)


def _ms(entry: dict, key: str, fmt: str) -> str:
    v = entry.get(key)
    if not v:
        return "n/a"
    return (fmt.format(v["mean"]) + (" ± " + fmt.format(v["std"]) if v.get("n", 1) > 1 else ""))


def study_table(report: dict) -> str:
    cols = (("psnr_dataset_db", "PSNR dataset (dB)", "{:.2f}"),
            ("psnr_colour_mean_db", "PSNR per image* (dB)", "{:.2f}"),
            ("ssim", "SSIM", "{:.3f}"), ("colourfulness", "Colourf.", "{:.1f}"),
            ("semantic_accuracy", "Semantic acc.", "{:.2%}"), ("feature_fd", "Feature FD", "{:.2f}"))
    truth = report["ground_truth"]["test"]
    gray = report["gray"]["test"]
    some = next(iter(report["methods"].values()), None)
    left_out = some["seeds"][0]["test"]["colorize"].get("gray_truths_left_out") if some else None
    lines = [f"Preset `{report['preset']}`, epochs per run: {sorted(set(report['epochs'].values()))}, "
             f"{report['seeds']} seeds (mean ± sample std), on {report['device_name']}. Test split of "
             f"`{report['data']}` ({report['test_images']} images), scored through `colorize` (the input's luma, "
             f"the network's chroma). Ground truth: colourfulness {truth['colourfulness']:.1f}, semantic accuracy "
             f"{truth['semantic_accuracy']:.2%}. *Per-image PSNR leaves out the {left_out} test images whose "
             f"truth is exactly gray. Chosen on the validation split ({report['val_images']} training images held "
             f"out): **{report['chosen']}** ({report['selection_rule']}).", ""]
    lines.append("| Method | " + " | ".join(h for _, h, _ in cols) + " | D wins (share of iterations) |")
    lines.append("|---|" + "---:|" * (len(cols) + 1))
    lines.append("| gray (copied to RGB) | " + " | ".join(_ms(gray, k, f) for k, _, f in cols) + " | - |")
    for name, r in report["methods"].items():
        collapse = r.get("collapse", {})
        mark = " **(chosen)**" if name == report["chosen"] else ""
        lines.append(f"| {name}{mark} | " + " | ".join(_ms(r["test"]["colorize"], k, f) for k, _, f in cols)
                     + f" | {collapse.get('mean', 0):.2f} |")
    lines += ["", "Validation split (choice), through colorize:", "",
              "| Method | PSNR dataset (dB) | Colourf. | Feature FD |", "|---|---:|---:|---:|",
              "| gray (copied to RGB) | " + " | ".join(_ms(report["gray"]["val"], k, f) for k, f in
                                                   (("psnr_dataset_db", "{:.2f}"), ("colourfulness", "{:.1f}"),
                                                    ("feature_fd", "{:.2f}"))) + " |"]
    for name, r in report["methods"].items():
        v = r["val"]["colorize"]
        lines.append(f"| {name} | {_ms(v, 'psnr_dataset_db', '{:.2f}')} | {_ms(v, 'colourfulness', '{:.1f}')} | "
                     f"{_ms(v, 'feature_fd', '{:.2f}')} |")
    lines += ["", "Methods (config fields changed from the preset):", ""]
    for name, r in report["methods"].items():
        lines.append(f"- {name}: " + (", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "the paper's recipe"))
    return "\n".join(lines) + "\n"
