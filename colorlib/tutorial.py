"""What the tutorial notebooks share: where the repository is, paths as a reader should see them,
which run a results notebook shows, compact images for photo grids, and how the ablations differ
from the paper's recipe.

    from colorlib.tutorial import REPO, shown

Every notebook imports these instead of defining them in its first cell, so a notebook copied
elsewhere (or run from the repository root instead of `notebooks/`) still finds the repository.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Optional, Sequence

SHIPPED_RUN = "figures/paper/run"  # the full 100-epoch paper run that ships with the repository
SHIPPED_BASELINES = "figures/quick/baselines"  # metrics.md of `make baselines PRESET=quick`

# Config fields that change how fast or where a run goes, or what it records, never its maths:
# left out when a run's settings are compared with the paper's recipe
RUN_MECHANICS = frozenset({"data", "data_root", "n_samples", "seed", "device", "threads", "checkpoint_every",
                           "log_every", "channels_last", "amp", "compile", "cuda_graphs", "preset"})


def find_repo(start: Optional[Path] = None) -> Path:
    """The repository root: the nearest folder at or above `start` (default: the working directory)
    that holds pyproject.toml and colorlib/; else the source checkout colorlib was imported from;
    else `start` itself (its parent when it is a notebooks/ folder)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "colorlib").is_dir():
            return folder
    source = Path(__file__).resolve().parent.parent
    if (source / "pyproject.toml").is_file():
        return source
    return here.parent if here.name == "notebooks" else here


REPO = find_repo()


def shown(path, repo: Optional[Path] = None) -> Path:
    """A path as the reader should see it: relative to the repository when it is inside."""
    repo = repo or REPO
    path = Path(path).resolve() if Path(path).is_absolute() else (repo / path).resolve()
    return path.relative_to(repo) if path.is_relative_to(repo) else path


def results_run(run_dir=None, preset: str = "quick", repo: Optional[Path] = None) -> tuple[Path, Optional[str]]:
    """The run a results notebook shows, and a note for the reader when it is not their own.

    `run_dir` given: that run (relative paths start at the repository root). Not given: the
    preset's own run, runs/<preset>, when it holds one; else the run that ships with the repository
    (figures/paper/run), with a note saying so. Where there is none, the RunDirError says what to do.
    """
    from .rundir import RunDirError, is_run_dir, read_run_info

    repo = repo or REPO
    train_hint = (f"train one with 04_training.ipynb (preset {preset!r}) or `make train PRESET={preset}`, "
                  f"then run this notebook again")
    if run_dir:
        path = Path(run_dir) if Path(run_dir).is_absolute() else repo / run_dir
        if not is_run_dir(path):
            raise RunDirError(f"{shown(path, repo)} holds no run (no config.json): {train_hint}, "
                              f"or set run_dir to a run directory (None shows your own run, else the shipped one).")
        return path, None
    own = repo / "runs" / preset
    if is_run_dir(own):
        return own, None
    shipped = repo / SHIPPED_RUN
    if is_run_dir(shipped):
        info = read_run_info(shipped)
        device = info.get("device_name") or info.get("device", "?")
        return shipped, (f"{shown(own, repo)} holds no run of your own yet, so this shows the run that ships "
                         f"with the repository, {SHIPPED_RUN} (preset {info.get('preset', 'paper')}, "
                         f"{info.get('epochs_done', '?')} epochs on {device}). To see yours: {train_hint}.")
    raise RunDirError(f"{shown(own, repo)} holds no run and no shipped run was found at {SHIPPED_RUN}: {train_hint}, "
                      f"or set run_dir to a run directory.")


def jpeg(fig, quality: int = 80, dpi="figure"):
    """A matplotlib figure as an inline JPEG: photo grids at a fraction of their PNG size.

    Chroma is kept at full resolution (4:4:4), so colours stay as sharp as the gray levels,
    which matters in a notebook about colours. Line plots are better left as PNG.
    """
    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=dpi, bbox_inches="tight", facecolor="white",
                pil_kwargs={"quality": quality, "subsampling": 0, "optimize": True})
    return Image(data=buf.getvalue(), format="jpeg")


# ---------------------------------------------------------------- ablations: what each run changes
def recipe_changes(config: dict, preset: Optional[str] = None) -> dict:
    """The settings of a run (its config.json as a dict) that differ from the paper's recipe at
    the same budget, i.e. from `make_config(preset)`; run mechanics (device, seed, logging...) are
    left out, and so are fields this version of colorlib does not know."""
    from .config import FIELD_NAMES, PRESETS, make_config

    preset = preset or config.get("preset")
    recipe = make_config(preset if preset in PRESETS else "paper").to_dict()
    return {k: v for k, v in config.items()
            if k in FIELD_NAMES and k not in RUN_MECHANICS and v != recipe[k]}


def describe_changes(changes: Optional[dict]) -> str:
    """`{"lr": 0.0002, "beta1": 0.5}` -> "lr=0.0002, beta1=0.5"; {}: the paper's recipe; None: unknown."""
    if changes is None:
        return "unknown: no method of that name in this version's colorlib/baselines.py"
    return ", ".join(f"{k}={v}" for k, v in changes.items()) or "none: the paper's recipe"


def method_changes(preset: str = "quick") -> dict[str, dict]:
    """Every method of `make baselines`, with the settings that differ from the paper's recipe."""
    from .baselines import METHODS
    from .config import make_config

    return {name: recipe_changes(make_config(preset, **overrides).to_dict(), preset)
            for name, overrides in METHODS.items()}


# methods of figures/quick/baselines that colorlib.baselines has since renamed: the shipped
# "paper-feature-aware-norm" was trained when norm="fan" meant the SPADE reading, today's norm="spade"
RENAMED_METHODS = {"paper-feature-aware-norm": "paper-spade"}


def shipped_changes(names: Sequence[str], preset: str = "quick") -> dict[str, Optional[dict]]:
    """What each method of a shipped table changes, looked up in colorlib.baselines (under today's
    name where it was renamed: the row is then labelled with both names); None where it is unknown."""
    known = method_changes(preset)
    out: dict[str, Optional[dict]] = {}
    for name in names:
        today = RENAMED_METHODS.get(name, name)
        out[name if today == name else f"{name} (today {today})"] = known.get(today)
    return out


def changes_table(changes: dict[str, Optional[dict]]) -> str:
    """A Markdown table: one row per run, the settings in which it differs from the paper's recipe."""
    lines = ["| run | settings that differ from the paper's recipe |", "|---|---|"]
    lines += [f"| {name} | {describe_changes(c).replace('|', '/')} |" for name, c in changes.items()]
    return "\n".join(lines) + "\n"


def read_metrics_table(path) -> tuple[list[tuple[str, dict]], dict, str]:
    """The rows of a metrics.md written by `colorlib compare` (or `make baselines`): a list of
    (method, {metric key: value}), the ground truth's values, and the line that says on what
    data they were measured. Percentages become fractions; "-" and "n/a" become None."""
    from .metrics import TABLE_COLUMNS

    key_of = {header: key for key, header, _ in TABLE_COLUMNS}
    lines = Path(path).read_text().splitlines()
    caption = lines[0] if lines else ""
    table = [line for line in lines if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    rows, truth = [], {}
    for line in table[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        values = {key_of[h]: _number(cell) for h, cell in zip(header[1:], cells[1:]) if h in key_of}
        if cells[0] == "ground truth":
            truth = values
        else:
            rows.append((cells[0], values))
    return rows, truth, caption


def _number(cell: str) -> Optional[float]:
    cell = cell.strip()
    if cell in ("-", "n/a", ""):
        return None
    if cell.endswith("%"):
        return float(cell[:-1]) / 100
    return float(cell)


def distinct_colours(n: int) -> list[tuple[tuple, Optional[str]]]:
    """n (colour, hatch) pairs, all different: the 20 colours of tab20 (its ten dark shades first,
    then the ten light ones, so neighbours differ in hue), then again with hatches."""
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors[0::2] + colormaps["tab20"].colors[1::2]
    hatches = (None, "//", "..", "xx", "\\\\", "oo")
    return [(palette[i % 20], hatches[(i // 20) % len(hatches)]) for i in range(n)]


METRIC_PANELS = (("psnr_mean_db", "PSNR mean (dB)"), ("ssim", "SSIM"), ("colourfulness", "Colourfulness"),
                 ("pixel_accuracy", "Pixel accuracy"), ("semantic_accuracy", "Semantic accuracy"),
                 ("feature_fd", "Classifier-feature FD"))


def comparison_chart(rows: Sequence[tuple[str, dict]], truth: dict, title: str = ""):
    """Bar charts of the metrics, one bar per method, each method in its own colour in every panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 7.5), layout="constrained")
    names = [name for name, _ in rows]
    styles = distinct_colours(len(rows))
    for ax, (key, label) in zip(fig.subplots(2, 3).ravel(), METRIC_PANELS):
        values = [m.get(key) if m.get(key) is not None else float("nan") for _, m in rows]
        for i, (value, (colour, hatch)) in enumerate(zip(values, styles)):
            ax.bar(i, value, color=colour, hatch=hatch, edgecolor="black" if hatch else colour, linewidth=0.5)
        if truth.get(key) is not None:  # where the ground truth has a value, it is the target
            ax.axhline(truth[key], color="black", ls="--", lw=1, label="ground truth")
            ax.legend(fontsize=8)
        ax.set_xticks(range(len(rows)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(label)
    if title:
        fig.suptitle(title)
    return fig


def caption_title(caption: str) -> str:
    """'Test split of `x`, 5000 images. ...' -> 'Colorization metrics on 5000 test images of x'."""
    match = re.match(r"Test split of `([^`]*)`, (\d+) images", caption)
    return f"Colorization metrics on {match[2]} test images of {match[1]}" if match else ""
