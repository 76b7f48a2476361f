"""colorlib.lab.tutorial: what the notebooks share (the repository, the run they show, how a run
differs from the paper's recipe, compact figures)."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from PIL import Image

from colorlib.lab.baselines import METHODS
from colorlib.lab.tutorial import (REPO, SHIPPED_RUN, describe_changes, find_repo, palette_png, recipe_changes,
                                   results_run, shown)
from colorlib.runs import rundir
from colorlib.runs.config import make_config


def test_the_repository_and_its_paths_are_found_from_anywhere(repo_root, tmp_path):
    assert REPO == repo_root == find_repo(repo_root / "notebooks")
    assert find_repo(tmp_path) == repo_root  # a copied notebook: the checkout colorlib comes from
    assert shown(repo_root / "runs" / "quick") == shown("runs/quick") == Path("runs/quick")
    assert shown(tmp_path) == tmp_path


@pytest.mark.parametrize("asked", [None, "runs/elsewhere"])
def test_results_show_your_run_else_the_shipped_one_and_say_so(repo_root, tmp_path, asked):
    fake = tmp_path / "repo"
    (fake / "runs").mkdir(parents=True)
    with pytest.raises(rundir.RunDirError, match="04_training.ipynb .* `make train PRESET=quick`"):
        results_run(asked, "quick", repo=fake)  # no run at all: what to do
    shutil.copytree(repo_root / SHIPPED_RUN, fake / SHIPPED_RUN, ignore=shutil.ignore_patterns("history.csv"))
    if asked:
        return
    run, note = results_run(None, "quick", repo=fake)
    assert run == fake / SHIPPED_RUN and "runs/quick holds no run of your own yet" in note
    own = fake / "runs" / "quick"
    own.mkdir()
    rundir.write_json(own / "config.json", make_config("quick").to_dict())
    assert results_run(None, "quick", repo=fake) == (own, None)


def test_recipe_changes_name_what_each_method_changes():
    config = make_config("quick", lr=2e-4, beta1=0.5, device="cpu", seed=7).to_dict()
    assert recipe_changes({**config, "retired_field": 1}) == {"lr": 2e-4, "beta1": 0.5}  # no run mechanics
    changes = {name: recipe_changes(make_config("quick", **o).to_dict(), "quick") for name, o in METHODS.items()}
    assert changes["paper"] == {} and changes["paper-adam-2e-4"] == {"lr": 2e-4, "beta1": 0.5}
    assert all(c for name, c in changes.items() if name != "paper")
    assert describe_changes({}) == "none: the paper's recipe" and "unknown" in describe_changes(None)


def test_figures_are_shown_as_palette_pngs_a_fraction_of_the_size():
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for k in range(8):
        ax.plot(range(200), [((i * (k + 3)) % 37) / 37 + k for i in range(200)], label=f"line {k}")
    ax.legend()
    full = io.BytesIO()
    fig.savefig(full, format="png", bbox_inches="tight", facecolor="white")
    small = palette_png(fig)
    image = Image.open(io.BytesIO(small))
    assert image.mode == "P" and image.size == Image.open(full).size and len(small) < 0.6 * len(full.getvalue())
