"""What notebook 08 (stable colours) draws and tabulates, from the studies and the run that ship:
the collapse statistic and what each fix measured (mean ± spread over seeds). The figures are drawn
to be read at 100% zoom: 100 dpi, text of 9 pt or more, every label horizontal."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from matplotlib.figure import Figure

from ..engine.trainer import D_WINS_LOSS
from ..runs.config import ConfigError, make_config
from ..runs.rundir import read_json
from .baselines import METHODS
from .tutorial import REPO, shown

STUDY_FORMAT = "colorlib-study-v1"  # metrics.json of a study (study.py writes it; notebook 08 reads it)
DPI = 100
TEXT = 10  # pt: titles, axis labels, annotations
SMALL = 9  # pt: tick labels and legends, the smallest text of a figure
BASE = "ours-ycbcr"  # the chroma-only GAN with a spectral-norm D: the fixes are measured on top of it


def collapse_per_epoch(history: dict) -> torch.Tensor:
    """Share of each epoch's iterations in which D wins outright, L_D = L_real + L_fake < D_WINS_LOSS,
    from a run's loss history (`rundir.read_history`); one value per epoch, in order."""
    wins = ((history["d_real"] + history["d_fake"]) < D_WINS_LOSS).double()
    _, epoch = torch.unique(history["epoch"], return_inverse=True)  # 0, 1, ... in epoch order
    return torch.bincount(epoch, weights=wins) / torch.bincount(epoch)


def _axes_style(ax, title: str, xlabel: str, ylabel: str) -> None:
    """Title, axis labels and ticks at readable sizes; the y label horizontal, above the axis."""
    ax.set_title(title, fontsize=TEXT + 1, loc="left", pad=22)
    ax.set_xlabel(xlabel, fontsize=TEXT)
    ax.set_ylabel(ylabel, fontsize=TEXT, rotation=0, ha="left", va="bottom")
    ax.yaxis.set_label_coords(0, 1.01)
    ax.tick_params(labelsize=SMALL)


def collapse_figure(report: dict, run_share: Optional[torch.Tensor] = None, run_label: str = "",
                    leave_out: Sequence[str] = ()) -> Figure:
    """A study's collapse statistic per epoch, mean over seeds: its paper recipe and the maximum of its
    methods with a spectral-norm D; with `run_share` (one long run's), that run's on the left."""
    fig = Figure(figsize=(11 if run_share is not None else 6.5, 3.6), dpi=DPI, layout="constrained")
    if run_share is not None:
        left, right = fig.subplots(1, 2, width_ratios=(1.6, 1))
        left.bar(range(1, len(run_share) + 1), run_share.numpy(), width=1.0, color="tab:red")
        left.set_ylim(0, 1.02)
        _axes_style(left, run_label, "epoch", "share of iterations in which D wins outright")
    else:
        right = fig.subplots()
    per_epoch = {n: r["collapse"]["per_epoch"] for n, r in report["methods"].items()
                 if r.get("collapse") and n not in leave_out}
    spectral = [n for n in per_epoch if report["methods"][n]["overrides"].get("d_norm") == "spectral"]
    if "paper" in per_epoch:
        right.plot(range(1, len(per_epoch["paper"]) + 1), per_epoch["paper"], "o-", color="tab:red",
                   label="paper's recipe")
    if spectral:
        worst = [max(shares) for shares in zip(*(per_epoch[n] for n in spectral))]
        right.plot(range(1, len(worst) + 1), worst, "s-", color="tab:blue",
                   label=f"{len(spectral)} methods with a spectral-norm D (max)")
    if right.lines:
        right.legend(fontsize=SMALL, loc="upper left")
    right.set_ylim(-0.02, 1.02)
    _axes_style(right, f"The study: mean over {report['seeds']} seeds", "epoch", "share of iterations")
    return fig


def read_study(folder, name: str = "study_dir") -> dict:
    """A study's figures folder's metrics.json; a ConfigError naming the parameter `name` if it holds none."""
    path = REPO / folder / "metrics.json"
    report = read_json(path) if path.is_file() else {}
    if report.get("format") != STUDY_FORMAT:
        found = f"format {report.get('format')!r}" if path.is_file() else "no such file"
        raise ConfigError(f"{name}={str(folder)!r} holds no study ({shown(path)}: {found}): pass the --figures folder "
                          f"of a `make gpu-study` or `make baselines`, or keep the default {name}")
    return report


def study_source(report: dict) -> str:
    """Where a study's numbers come from, as its metrics.json records it."""
    seeds = sorted({s["seed"] for r in report["methods"].values() for s in r["seeds"]})
    epochs = "/".join(str(e) for e in sorted(set(report["epochs"].values())))
    data = "CIFAR-10" if report["data"] == "cifar10.pt" else report["data"]
    return (f"preset {report['preset']}, {data}: {report['test_images']:,} test images, {report['val_images']:,} "
            f"validation images held out of the training split; {len(seeds)} seeds per method "
            f"({', '.join(map(str, seeds))}), each run {epochs} epochs, on {report['device_name']}")


def base_of(name: str) -> Optional[str]:
    """The method a fix is measured against: ours-ycbcr for what adds to it, else the paper's recipe."""
    if name == "paper":
        return None
    adds_to_base = all(METHODS.get(name, {}).get(k) == v for k, v in METHODS[BASE].items() if k != "lr")
    return BASE if name != BASE and adds_to_base else "paper"


def what_it_changes(name: str, preset: str = "paper") -> str:
    """The config fields a method sets to other values than its base (`base_of`) has at `preset`."""
    base = base_of(name)
    if base is None:
        return "the paper's recipe"
    mine, under = (make_config(preset, **METHODS.get(n, {})).to_dict() for n in (name, base))
    return ", ".join(f"{k}={mine[k]}" for k in METHODS.get(name, {}) if under[k] != mine[k])


def fix_effect(report: dict, name: str, base: str, key: str) -> tuple[float, float]:
    """The measured effect of a fix on one test score: the difference of the seed means, and its
    standard error from the two sample standard deviations, sqrt(s_a^2 / n_a + s_b^2 / n_b)."""
    a, b = (report["methods"][n]["test"]["colorize"][key] for n in (name, base))
    return a["mean"] - b["mean"], math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])


def mean_std(entry: dict, fmt: str) -> str:
    """"mean ± std" of an aggregated score (the mean alone for one seed)."""
    return fmt.format(entry["mean"]) + (" ± " + fmt.format(entry["std"]) if entry.get("n", 1) > 1 else "")


def _effect(report: dict, name: str, key: str, fmt: str) -> str:
    base = base_of(name)
    if base not in report["methods"]:  # (None for the paper's recipe)
        return "-"
    delta, se = fix_effect(report, name, base, key)
    return f"{fmt.format(delta)} ± {fmt.format(se).lstrip('+')}"


def fixes_table(report: dict, leave_out: Sequence[str] = ()) -> str:
    """Markdown: each method's test scores through colorize (mean ± sample std) and each fix's effect."""
    gray, truth = report["gray"]["test"], report["ground_truth"]["test"]
    head = ("method", "what it changes (on top of)", "PSNR (dB)", "effect on PSNR (dB)",
            f"colourfulness (truth {truth['colourfulness']:.1f})", "effect on colourfulness", "feature FD",
            "D wins outright")
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2),
             f"| gray (copied to RGB) | - | {gray['psnr_dataset_db']['mean']:.2f} | - | 0.0 | - | "
             f"{gray['feature_fd']['mean']:.2f} | - |"]
    order = ["paper"] + list(METHODS)  # the paper's recipe first, then colorlib/lab/baselines.py's order
    shown_methods = [n for n in report["methods"] if n not in leave_out]
    for name in sorted(shown_methods, key=lambda n: order.index(n) if n in order else len(order)):
        r, base, m = report["methods"][name], base_of(name), report["methods"][name]["test"]["colorize"]
        cells = (what_it_changes(name, report["preset"]) + (f" (on {base})" if base else ""),
                 mean_std(m["psnr_dataset_db"], "{:.2f}"), _effect(report, name, "psnr_dataset_db", "{:+.2f}"),
                 mean_std(m["colourfulness"], "{:.1f}"), _effect(report, name, "colourfulness", "{:+.1f}"),
                 mean_std(m["feature_fd"], "{:.2f}"),
                 f"{r['collapse']['mean']:.0%}" if r["overrides"].get("adv_weight", 1) else "no D")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
