"""The `evaluate` command: a run's scores (metrics.py) in its metrics.json, and the table of them. An
evaluation of another scope (--limit, other --data) goes beside it (metrics-limit5.json): nothing is replaced.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from ..inference.checkpoints import load_generator
from ..runs import rundir
from ..runs.data import resolve_source
from ..runs.device import pick_device
from ..variants.cifar_classifier import SHIPPED_CLASSIFIER, load_classifier
from .metrics import GRAY_METHOD, NAZERI_THRESHOLD, PSNR_CAP_DB, evaluate_generator

METRICS_FORMAT = "colorlib-metrics-v1"
FD_LABEL = "classifier-feature FD (not comparable with Inception FID)"
FULL_SCOPE = "full"
# key, header, format, the ground truth's cell (None: its own value): fidelity over the whole set first
TABLE_COLUMNS = (("psnr_dataset_db", "PSNR dataset (dB)", "{:.2f}", "-"),
                 ("psnr_colour_mean_db", "PSNR per image* (dB)", "{:.2f}", "-"),
                 ("ssim", "SSIM", "{:.4f}", "1"),
                 ("colourfulness", "Colourfulness", "{:.1f}", None),
                 ("colourfulness_gap_pct", "Colourfulness gap (%)", "{:+.1f}", "0"),
                 ("pixel_accuracy", "Pixel acc. (Nazeri 2%)", "{:.2%}", "100%"),
                 ("semantic_accuracy", "Semantic acc.", "{:.2%}", None),
                 ("feature_fd", "Classifier-feature FD", "{:.2f}", "0"))


def evaluation_scope(limit: Optional[int], data: Optional[str], run_data: Optional[str]) -> str:
    """"full" (all the test images of the run's own data), else e.g. "limit5" or "data-catdog-limit5"."""
    parts, name = [], Path(resolve_source(data)).name
    if data is not None and name != Path(resolve_source(run_data)).name:
        parts.append("data-" + "".join(c if c.isalnum() or c in "._" else "_" for c in name))
    if limit is not None:
        parts.append(f"limit{limit}")
    return "-".join(parts) or FULL_SCOPE


def scoped_name(scope: Optional[str]) -> str:
    return "metrics.json" if scope == FULL_SCOPE else f"metrics-{scope or 'unknown'}.json"


def _metrics_or_none(path: Path) -> Optional[dict]:
    try:
        report = rundir.read_json(path)  # a JSON object, else RunDirError
    except (rundir.RunDirError, OSError):
        return None
    return report if report.get("format") == METRICS_FORMAT else None


def metrics_target(folder: Path, scope: str) -> tuple[Path, Optional[Path], Optional[str]]:
    """(where an evaluation of `scope` goes, where metrics.json's file moves first or None, a note or None):
    metrics.json keeps its evaluation unless the new one is the full one or a rerun. Nothing is lost."""
    main = folder / "metrics.json"
    if not main.exists():
        return main, None, None
    held = (_metrics_or_none(main) or {}).get("scope")
    if held == scope:
        return main, None, None
    if scope == FULL_SCOPE:
        aside = folder / scoped_name(held)
        return main, aside, f"note: metrics.json held an evaluation of scope {held}; it is kept as {aside.name}, " \
                            f"and metrics.json now holds the full one"
    beside = folder / scoped_name(scope)
    return beside, None, f"note: metrics.json holds the evaluation of scope {held}, which is kept; this one is " \
                         f"written beside it, to {beside.name}"


def evaluate_run(run_dir, classifier_path=None, data: Optional[str] = None, limit: Optional[int] = None,
                 device: str = "auto", batch_size: int = 500, inception_weights: Optional[str] = None,
                 progress: bool = True, log=print, generator=None, name: Optional[str] = None, out=None) -> dict:
    """A run's generator (or the `generator` file) scored on the test split, raw and through `colorize`,
    next to the gray copy; written to RUN/metrics.json (or OUT/, or beside it), the report's "written" file."""
    run_dir, dev = Path(run_dir), pick_device(device)
    G, cfg = load_generator(generator or run_dir, dev)
    folder = Path(out) if out is not None else run_dir
    try:  # a file can be written there: tested before hours of work, not after them
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise rundir.RunDirError(f"cannot write the scores to {folder} ({exc.strerror or exc}); pass --out DIR "
                                 f"to write them elsewhere (nothing was scored)") from None
    classifier_path = Path(classifier_path or SHIPPED_CLASSIFIER)  # the judge: the named one, else the shipped
    clf = load_classifier(classifier_path, dev)
    started, name = time.time(), name or run_dir.name
    result = evaluate_generator(G, data or cfg.data, clf, limit, batch_size, dev, name, inception_weights, progress)
    if result["data"].get("classes_note"):
        log(result["data"]["classes_note"])
    info = rundir.read_run_info(run_dir) if (run_dir / "run.json").exists() else {}
    config = cfg.to_dict()
    config["data"] = config["data"] and Path(config["data"]).name  # the data's name, not a local path
    report = {"format": METRICS_FORMAT, "method": name, "generator": Path(generator).name if generator else None,
              "run": {"name": run_dir.name, "preset": cfg.preset, "epochs_done": info.get("epochs_done"),
                      "config": config},
              "classifier": {"file": classifier_path.name, "test_accuracy_at_training": clf.test_accuracy},
              "feature_fd_label": FD_LABEL, "psnr_cap_db": PSNR_CAP_DB,
              "pixel_accuracy_threshold": NAZERI_THRESHOLD, "device": str(dev),
              "seconds": round(time.time() - started, 1), "scope": evaluation_scope(limit, data, cfg.data), **result}
    target, aside, note = metrics_target(folder, report["scope"])
    if aside is not None:
        rundir.atomic_write_bytes(aside, (folder / "metrics.json").read_bytes())
    rundir.write_json(target, report)
    if note:
        log(note)
    return {**report, "written": str(target)}


def shown_evaluation(run_dir, data: Optional[str] = None, limit: Optional[int] = None, device: str = "auto",
                     log=print) -> tuple[dict, str]:
    """The evaluation a notebook shows, and a line saying where it comes from: the run's own file of
    this scope when it scored the run as it is now (the same epochs done); for a run shipped with its
    scores but no checkpoint, those; else a fresh `evaluate_run` with a progress bar."""
    run_dir = Path(run_dir)
    scope = evaluation_scope(limit, data, rundir.read_config(run_dir).data)
    done = rundir.read_run_info(run_dir).get("epochs_done") if (run_dir / "run.json").exists() else None
    for path in dict.fromkeys((run_dir / "metrics.json", run_dir / scoped_name(scope))):
        held = _metrics_or_none(path)
        if held and held.get("scope") == scope and held.get("run", {}).get("epochs_done") == done:
            return held, (f"scored before, on {_images(held)}, on this run as it is now: {path.name} (delete it "
                          f"to score again)")
    shipped = _metrics_or_none(run_dir / "metrics.json")
    if shipped and not any((run_dir / "checkpoints" / f).exists() for f in ("generator.pt", "last.pt")):
        return shipped, (f"scores shipped in the run's metrics.json, on {_images(shipped)}: shown as they are (the "
                         f"run's folder holds no checkpoint to score it again)")
    report = evaluate_run(run_dir, data=data, limit=limit, device=device, batch_size=100, log=log)
    return report, f"scored now, on {_images(report)}: written to {Path(report['written']).name}"


def _images(report: dict) -> str:
    data = report.get("data", {})
    subset = f" (a seeded random subset, limit={data['limit']})" if data.get("limit") is not None else ""
    return f"{data.get('images', 0):,} test images{subset}"


def versus_gray(report: dict, paper_epochs: int = 100) -> str:
    """How a run's evaluation compares with the gray copy (dataset PSNR, through `colorize`), and why."""
    name, methods, run = report["method"], report["methods"], report["run"]
    gray, ours = methods.get(GRAY_METHOD), methods.get(f"{name} through colorize") or methods.get(name)
    if gray is None or ours is None:
        return f"The report of `{name}` has no gray copy to compare with."
    delta = ours["psnr_dataset_db"] - gray["psnr_dataset_db"]
    side = "level with" if abs(delta) < 0.005 else f"{abs(delta):.2f} dB {'above' if delta > 0 else 'below'}"
    how = "through `colorize`" if f"{name} through colorize" in methods else "(the network's raw output)"
    head = (f"**`{name}`** (preset `{run['preset']}`, {run.get('epochs_done')} epochs) scores "
            f"{ours['psnr_dataset_db']:.2f} dB {how} on these {report['data']['images']:,} test "
            f"images: {side} the gray copy's {gray['psnr_dataset_db']:.2f} dB.")
    raw = methods.get(name)
    raw_text = (f" The network's raw output scores {raw['psnr_dataset_db']:.2f} dB: it must also reproduce the "
                f"luminance, which `colorize` takes from the input." if raw is not None and raw is not ours else "")
    return " ".join((head, _why_versus_gray(delta, ours, report, paper_epochs))) + raw_text


def _why_versus_gray(delta: float, ours: dict, report: dict, paper_epochs: int) -> str:
    epochs, truth = report["run"].get("epochs_done"), report["ground_truth"]["colourfulness"]
    colour = f"colourfulness {ours['colourfulness']:.1f} against the truth's {truth:.1f}"
    short = epochs is not None and epochs < paper_epochs
    if ours["colourfulness"] < 0.2 * truth:
        young = "; a run this short has not learned colour yet" if short else ""
        return (f"Its colours are nearly gray ({colour}): with the input's exact luma and almost no chroma it "
                f"scores about what the gray copy does{young}.")
    if delta > 0:
        return (f"Its colours are still muted ({colour}). A cautious colour is rarely far from the truth, so it "
                f"already beats no colour on PSNR; a bold colour that is wrong would cost more than it gains.")
    if short:
        return (f"A run of {epochs} epochs has not learned which colour goes where yet ({colour}): a wrong "
                f"colour costs more PSNR than no colour at all (a hue on the wrong side of gray doubles the error), "
                f"so leaving the colour out is hard to beat early on.")
    return (f"After this many epochs its colours are wrong more often than right ({colour}): see 05_results for "
            f"the epochs in which D won outright, where colours collapse.")


def _fmt(value, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def markdown_table(reports: Sequence[dict]) -> str:
    """The reports' scores as a Markdown table: the gray copy once, then each run's rows."""
    rows = [(GRAY_METHOD, reports[0]["methods"][GRAY_METHOD])] if GRAY_METHOD in reports[0]["methods"] else []
    rows += [row for rep in reports for row in rep["methods"].items() if row[0] != GRAY_METHOD]
    data, truth = reports[0]["data"], reports[0]["ground_truth"]
    counts = {m.get("gray_truths_left_out") for _, m in rows} - {None}
    count = f"{counts.pop()} " if len(counts) == 1 else ""
    lines = [f"Test split of `{data['source']}`, {data['images']} images. "
             f"Ground truth: colourfulness {_fmt(truth['colourfulness'], '{:.1f}')}, classifier "
             f"accuracy {_fmt(truth['semantic_accuracy'], '{:.2%}')}. FD is a {FD_LABEL}. "
             f"*Per-image PSNR leaves out the {count}test images whose truth is exactly gray: a copy of the gray input "
             f"matches them exactly, and the capped PSNR would reward that. \"through colorize\": the "
             f"files the `colorize` command writes for these images (the network's chroma on the input's "
             f"exact luma, at its default render size), scored.", "",
             "| Method | " + " | ".join(c[1] for c in TABLE_COLUMNS) + " |", "|---|" + "---:|" * len(TABLE_COLUMNS),
             "| ground truth | " + " | ".join(_fmt(truth[k], f) if own is None else own
                                            for k, _, f, own in TABLE_COLUMNS) + " |"]
    lines += [f"| {name} | " + " | ".join(_fmt(m.get(k), f) for k, _, f, _ in TABLE_COLUMNS) + " |"
              for name, m in rows]
    runs = [f"- {rep['method']}: preset {rep['run']['preset']}, {rep['run']['epochs_done']} epochs, "
            f"content loss {rep['run']['config']['content_loss']}, lambda {rep['run']['config']['lam']}, "
            f"adversarial weight {rep['run']['config']['adv_weight']}, norm {rep['run']['config']['norm']}"
            for rep in reports]
    return "\n".join(lines + ["", "Runs:"] + runs) + "\n"
