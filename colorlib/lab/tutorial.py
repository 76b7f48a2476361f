"""What the tutorial notebooks share: where the repository is (a notebook copied elsewhere still finds
it), which run a results notebook shows, compact figures and the library's own source to show.
"""
from __future__ import annotations

import inspect
import io
from pathlib import Path
from typing import Optional

from PIL import Image

from ..paper.config import PRESETS
from ..runs.config import FIELD_NAMES, RUN_MECHANICS, make_config
from ..runs.rundir import RunDirError, is_run_dir, read_run_info

SHIPPED_RUN = "figures/paper/run"  # the full 100-epoch paper run that ships with the repository


def find_repo(start: Optional[Path] = None) -> Path:
    """The repository: the nearest folder at or above `start` (default: the cwd) with pyproject.toml and colorlib/."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents, Path(__file__).resolve().parents[2]):
        if (folder / "pyproject.toml").is_file() and (folder / "colorlib").is_dir():
            return folder
    return here.parent if here.name == "notebooks" else here


REPO = find_repo()


def shown(path, repo: Optional[Path] = None) -> Path:
    """A path as the reader should see it: relative to the repository when it is inside."""
    repo = repo or REPO
    path = (repo / path).resolve()  # an absolute `path` stays itself
    return path.relative_to(repo) if path.is_relative_to(repo) else path


def results_run(run_dir=None, preset: str = "quick", repo: Optional[Path] = None) -> tuple[Path, Optional[str]]:
    """The run a results notebook shows, and a note for the reader when it is not their own: `run_dir`
    (relative to the repository); else runs/<preset> where it holds a run; else the shipped run."""
    repo = repo or REPO
    hint = f"train one with 04_training.ipynb (preset {preset!r}) or `make train PRESET={preset}`, then run this again"
    own, shipped = repo / "runs" / preset, repo / SHIPPED_RUN
    if run_dir and not is_run_dir(repo / run_dir):
        raise RunDirError(f"{shown(repo / run_dir, repo)} holds no run (no config.json): {hint}, or set run_dir to a "
                          f"run directory (None shows your own run, else the shipped one).")
    if run_dir or is_run_dir(own):
        return (repo / run_dir if run_dir else own), None
    if not is_run_dir(shipped):
        raise RunDirError(f"{shown(own, repo)} holds no run and no shipped run was found at {SHIPPED_RUN}: {hint}.")
    info = read_run_info(shipped)
    return shipped, (f"{shown(own, repo)} holds no run of your own yet, so this shows the run that ships with the "
                     f"repository, {SHIPPED_RUN} (preset {info.get('preset', 'paper')}, {info.get('epochs_done', '?')} "
                     f"epochs on {info.get('device_name') or info.get('device', '?')}). To see yours: {hint}.")


def palette_png(fig) -> bytes:
    """A figure as a PNG of at most 256 colours: plots look the same at a quarter of the size."""
    buf, out = io.BytesIO(), io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
    Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(out, "PNG", optimize=True)
    return out.getvalue()


def compact_figures() -> None:
    """Show this notebook's matplotlib figures as `palette_png`s (call after `%matplotlib inline`)."""
    from IPython import get_ipython
    from matplotlib.figure import Figure

    shell = get_ipython()
    png = shell.display_formatter.formatters["image/png"] if shell is not None else None
    if png is not None and Figure in png.type_printers:
        png.for_type(Figure, palette_png)


def jpeg(fig):
    """A figure as an inline JPEG, for photo grids: chroma at full resolution (4:4:4), quality 70."""
    from IPython import display

    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi="figure", bbox_inches="tight", facecolor="white",
                pil_kwargs={"quality": 70, "subsampling": 0, "optimize": True})
    return display.Image(data=buf.getvalue(), format="jpeg")


def recipe_changes(config: dict, preset: Optional[str] = None) -> dict:
    """The fields of a run's config.json that differ from the paper's recipe at its preset, mechanics left out."""
    preset = preset or config.get("preset")
    recipe = make_config(preset if preset in PRESETS else "paper").to_dict()
    return {k: v for k, v in config.items() if k in FIELD_NAMES and k not in RUN_MECHANICS and v != recipe[k]}


def describe_changes(changes: Optional[dict]) -> str:
    """`{"lr": 0.0002}` -> "lr=0.0002"; {}: the paper's recipe; None: unknown."""
    if changes is None:
        return "unknown: no method of that name in this version's colorlib/lab/baselines.py"
    return ", ".join(f"{k}={v}" for k, v in changes.items()) or "none: the paper's recipe"


def source(obj):
    """The library's own source of `obj`, syntax-highlighted: the notebooks show the code that runs."""
    from IPython.display import Code

    path = Path(inspect.getsourcefile(obj)).resolve()
    lines, first = inspect.getsourcelines(obj)
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name  # never a local path
    return Code(f"# {where}, line {first}\n{''.join(lines)}", language="python")
