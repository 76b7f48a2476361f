"""What the tutorial notebooks share: where the repository is, paths as a reader should see them,
which run a results notebook shows, compact images for photo grids, and how the ablations differ
from the paper's recipe.

    from colorlib.lab.tutorial import REPO, shown

Every notebook imports these instead of defining them in its first cell, so a notebook copied
elsewhere (or run from the repository root instead of `notebooks/`) still finds the repository.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

SHIPPED_RUN = "figures/paper/run"  # the full 100-epoch paper run that ships with the repository
# every method of colorlib/baselines.py x 3 seeds at the paper's networks and data, 3 epochs each:
# the study (`make gpu-study`) that ships; its metrics.json is what 07_evaluation shows
SHIPPED_BASELINES = "figures/paper/baselines-all-methods-3-epochs"


def find_repo(start: Optional[Path] = None) -> Path:
    """The repository root: the nearest folder at or above `start` (default: the working directory)
    that holds pyproject.toml and colorlib/; else the source checkout colorlib was imported from;
    else `start` itself (its parent when it is a notebooks/ folder)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "colorlib").is_dir():
            return folder
    source = Path(__file__).resolve().parents[2]
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
    from ..runs.rundir import RunDirError, is_run_dir, read_run_info

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


def palette_png(fig, colours: int = 256) -> bytes:
    """A matplotlib figure as a PNG of at most `colours` colours. Plots hold a few flat colours and
    their antialiased edges, so it looks the same at 100% zoom at about a quarter of the size."""
    from PIL import Image as PILImage

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
    image = PILImage.open(buf).convert("RGB").quantize(colours, method=PILImage.Quantize.FASTOCTREE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def compact_figures(colours: int = 256) -> None:
    """Show this notebook's matplotlib figures as `palette_png`s, so the committed notebooks stay
    small. Call it after `%matplotlib inline`; outside IPython it does nothing."""
    import functools

    from IPython import get_ipython
    from matplotlib.figure import Figure

    shell = get_ipython()
    png = shell.display_formatter.formatters["image/png"] if shell is not None else None
    if png is not None and Figure in png.type_printers:  # a notebook that shows figures as JPEG keeps that
        png.for_type(Figure, functools.partial(palette_png, colours=colours))


def jpeg(fig, quality: int = 70, dpi="figure"):
    """A matplotlib figure as an inline JPEG: photo grids at a fraction of their PNG size.

    Chroma is kept at full resolution (4:4:4), so colours stay as sharp as the gray levels,
    which matters in a notebook about colours. Quality 70: a fifth smaller than 80 on the photo
    grids, with no visible difference at 100% zoom. Line plots are better left as PNG.
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
    # fields that never change the maths are left out of a comparison with the paper's recipe
    from ..runs.config import FIELD_NAMES, RUN_MECHANICS, make_config
    from ..paper.config import PRESETS

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
    from ..runs.config import make_config

    return {name: recipe_changes(make_config(preset, **overrides).to_dict(), preset)
            for name, overrides in METHODS.items()}


def changes_table(changes: dict[str, Optional[dict]]) -> str:
    """A Markdown table: one row per run, the settings in which it differs from the paper's recipe."""
    lines = ["| run | settings that differ from the paper's recipe |", "|---|---|"]
    lines += [f"| {name} | {describe_changes(c).replace('|', '/')} |" for name, c in changes.items()]
    return "\n".join(lines) + "\n"


def baselines_report(figures_dir=None, preset: str = "quick",
                     repo: Optional[Path] = None) -> tuple[dict, Path, str]:
    """The study a notebook shows: the metrics.json that `make baselines` (`python -m colorlib
    study`) wrote into `figures_dir` (default figures/<preset>/baselines) when there is one; else
    the study that ships with the repository. Returns (report, its folder, a line for the reader
    saying which study it is and, for the shipped one, how to make their own)."""
    from ..runs.rundir import read_json
    from .study import STUDY_FORMAT

    repo = repo or REPO
    own = repo / (figures_dir or f"figures/{preset}/baselines")
    report = read_json(own / "metrics.json") if (own / "metrics.json").is_file() else {}
    if report.get("format") == STUDY_FORMAT:
        return report, own, f"the study in {shown(own, repo)}"
    shipped = repo / SHIPPED_BASELINES
    note = (f"{shown(own, repo)} holds no study of your own yet, so this shows the one that ships in "
            f"{SHIPPED_BASELINES}. For yours: `make baselines PRESET={preset}` (every method x 3 seeds), "
            f"then run this again.")
    return read_json(shipped / "metrics.json"), shipped, note


def study_rows(report: dict, split: str = "test", scored: str = "colorize"):
    """A study's (method, {metric: mean over seeds}) rows, the gray copy first; the ground truth's
    values; and {method: {metric: sample std over seeds}} for error bars. `scored`: "colorize"
    (what users get) or "raw" (the network's own output)."""
    def means(entry: dict) -> dict:
        return {k: v["mean"] for k, v in entry.items() if isinstance(v, dict) and "mean" in v}

    gray = report["gray"][split]
    rows = [("gray (copied to RGB)", means(gray))]
    spreads = {}
    for name, r in report["methods"].items():
        rows.append((name, means(r[split][scored])))
        spreads[name] = {k: v["std"] for k, v in r[split][scored].items() if isinstance(v, dict) and v.get("n", 1) > 1}
    return rows, report["ground_truth"][split], spreads


def study_title(report: dict, split: str = "test") -> str:
    epochs = sorted(set(report["epochs"].values()))
    return (f"{report[split + '_images']:,} {split} images of {report['data']}: preset {report['preset']}, "
            f"{'/'.join(map(str, epochs))} epochs, mean ± std over {report['seeds']} seeds")


def source(obj):
    """The library's own source of `obj` (a function, class or method), for a notebook to show:
    syntax-highlighted in Jupyter, plain text elsewhere. The notebooks show the code that runs,
    never a copy of it."""
    import inspect

    from IPython.display import Code
    path = Path(inspect.getsourcefile(obj)).resolve()
    here = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    text = inspect.getsource(obj)
    return Code(f"# {here}, line {inspect.getsourcelines(obj)[1]}\n{text}", language="python")
