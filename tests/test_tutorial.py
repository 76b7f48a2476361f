"""colorlib.lab.tutorial: what the notebooks share (the repository, the run they show, the ablation table)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from colorlib.runs.config import make_config
from colorlib.runs import rundir
from colorlib.lab.metrics import comparison_chart, distinct_colours
from colorlib.lab.tutorial import (REPO, SHIPPED_BASELINES, SHIPPED_RUN, baselines_report, describe_changes,
                                   find_repo, method_changes, recipe_changes, results_run, shown, study_rows,
                                   study_title)


def test_the_repository_is_found_from_its_notebooks_and_from_outside(repo_root, tmp_path):
    assert REPO == repo_root
    assert find_repo(repo_root / "notebooks") == repo_root
    assert find_repo(tmp_path) == repo_root  # a copied notebook: the checkout colorlib comes from


def test_paths_are_shown_relative_to_the_repository(repo_root, tmp_path):
    assert shown(repo_root / "runs" / "quick") == Path("runs/quick")
    assert shown("figures/paper/run") == Path("figures/paper/run")
    assert shown(tmp_path) == tmp_path


def _fake_repo(tmp_path: Path, repo_root: Path, shipped: bool) -> Path:
    fake = tmp_path / "repo"
    (fake / "runs").mkdir(parents=True)
    if shipped:
        shutil.copytree(repo_root / SHIPPED_RUN, fake / SHIPPED_RUN, ignore=shutil.ignore_patterns("history.csv"))
    return fake


def test_results_show_your_run_else_the_shipped_one_and_say_so(repo_root, tmp_path):
    fake = _fake_repo(tmp_path, repo_root, shipped=True)
    run, note = results_run(None, "quick", repo=fake)
    assert run == fake / SHIPPED_RUN
    assert "runs/quick holds no run of your own yet" in note and "04_training" in note
    own = fake / "runs" / "quick"
    own.mkdir()
    rundir.write_json(own / "config.json", make_config("quick").to_dict())
    assert results_run(None, "quick", repo=fake) == (own, None)


@pytest.mark.parametrize("asked", [None, "runs/elsewhere"])
def test_no_run_at_all_is_an_error_that_says_what_to_do(repo_root, tmp_path, asked):
    fake = _fake_repo(tmp_path, repo_root, shipped=asked is not None)
    with pytest.raises(rundir.RunDirError, match="04_training.ipynb .* `make train PRESET=quick`"):
        results_run(asked, "quick", repo=fake)


def test_recipe_changes_leave_out_run_mechanics_and_unknown_fields():
    config = make_config("quick", lr=2e-4, beta1=0.5, device="cpu", seed=7).to_dict()
    config["retired_field"] = 1
    assert recipe_changes(config) == {"lr": 2e-4, "beta1": 0.5}
    assert describe_changes({}) == "none: the paper's recipe"
    assert "unknown" in describe_changes(None)


def test_every_baseline_says_what_it_changes():
    changes = method_changes("quick")
    assert changes["paper"] == {}
    assert changes["paper-adam-2e-4"] == {"lr": 2e-4, "beta1": 0.5}
    assert changes["paper-patchgan"]["d_arch"] == "patch"
    assert all(c for name, c in changes.items() if name != "paper")  # every other method differs somewhere


def test_the_shipped_study_is_shown_until_the_reader_has_one(repo_root, tmp_path):
    report, folder, note = baselines_report(None, "quick", repo=repo_root)
    assert folder == repo_root / SHIPPED_BASELINES and SHIPPED_BASELINES in note and "make baselines" in note
    # the paper's ablations and the baselines (08_stable_colours shows the stabilisers' study)
    assert set(report["methods"]) <= set(method_changes("quick")) and len(report["methods"]) >= 10
    rows, truth, spreads = study_rows(report)
    names = [name for name, _ in rows]
    assert names[0] == "gray (copied to RGB)" and len(rows) == len(report["methods"]) + 1
    assert 0 < truth["semantic_accuracy"] < 1 and truth["colourfulness"] > 20
    paper = dict(rows)["paper"]
    assert 15 < paper["psnr_dataset_db"] < 30 and 0 < paper["pixel_accuracy"] < 1
    assert spreads["paper"]["psnr_dataset_db"] > 0  # three seeds: a spread, not a single number
    assert "3 seeds" in study_title(report)
    # a reader's own study (figures/<preset>/baselines/metrics.json) wins; anything else is not taken for one
    shipped = tmp_path / SHIPPED_BASELINES
    shipped.mkdir(parents=True)
    shutil.copy(repo_root / SHIPPED_BASELINES / "metrics.json", shipped / "metrics.json")
    own = tmp_path / "figures" / "quick" / "baselines"
    own.mkdir(parents=True)
    rundir.write_json(own / "metrics.json", {"format": "something else"})  # e.g. an old single-run table
    assert baselines_report(None, "quick", repo=tmp_path)[1] == shipped
    shutil.copy(repo_root / SHIPPED_BASELINES / "metrics.json", own / "metrics.json")
    again, folder, note = baselines_report(None, "quick", repo=tmp_path)
    assert folder == own and note == "the study in figures/quick/baselines" and again == report


def test_the_study_chart_draws_every_method_with_its_spread(repo_root):
    report, _, _ = baselines_report(None, "quick", repo=repo_root)
    rows, truth, spreads = study_rows(report)
    fig = comparison_chart(rows, truth, study_title(report), spreads)
    bars = [patch for patch in fig.axes[0].patches]
    assert len(bars) == len(rows)
    assert len(fig.axes[0].lines) >= 1  # the ground-truth line where the truth has a value (or error bars)


def test_bar_colours_never_repeat():
    styles = distinct_colours(45)
    assert len(set(styles)) == 45
    assert len({colour for colour, _ in styles[:20]}) == 20


def test_figures_are_shown_as_palette_pngs_a_fraction_of_the_size():
    import io

    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from PIL import Image

    from colorlib.lab.tutorial import palette_png

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for k in range(8):
        ax.plot(range(200), [((i * (k + 3)) % 37) / 37 + k for i in range(200)], label=f"line {k}")
    ax.legend()
    full = io.BytesIO()
    fig.savefig(full, format="png", bbox_inches="tight", facecolor="white")
    small = palette_png(fig)
    image = Image.open(io.BytesIO(small))
    assert image.mode == "P" and image.size == Image.open(full).size
    assert len(small) < 0.6 * len(full.getvalue())
