"""colorlib.tutorial: what the notebooks share (the repository, the run they show, the ablation table)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from colorlib import make_config, rundir
from colorlib.tutorial import (REPO, SHIPPED_BASELINES, SHIPPED_RUN, changes_table, describe_changes,
                               distinct_colours, find_repo, method_changes, read_metrics_table, recipe_changes,
                               results_run, shipped_changes, shown)


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


def test_the_shipped_baselines_table_reads_back_with_every_method_described(repo_root):
    rows, truth, caption = read_metrics_table(repo_root / SHIPPED_BASELINES / "metrics.md")
    names = [name for name, _ in rows]
    assert names[0] == "gray (copied to RGB)" and "paper" in names and len(rows) >= 10
    assert truth["pixel_accuracy"] == 1.0 and truth["psnr_mean_db"] is None
    assert 0 < dict(rows)["paper"]["pixel_accuracy"] < 1  # percentages become fractions
    table = changes_table(shipped_changes(names[1:]))
    assert "unknown" not in table and "| paper | none: the paper's recipe |" in table


def test_bar_colours_never_repeat():
    styles = distinct_colours(45)
    assert len(set(styles)) == 45
    assert len({colour for colour, _ in styles[:20]}) == 20
