"""colorlib.lab.stable_colours: notebook 08's statistic, tables and figures, on the studies that ship."""
from __future__ import annotations

import io
import math

import pytest
import torch
from matplotlib.text import Text

from colorlib.lab import stable_colours as sc
from colorlib.runs.config import ConfigError

STUDY = "figures/paper/baselines"


@pytest.fixture(scope="module")
def study():
    return sc.read_study(STUDY)


def assert_readable(fig) -> None:
    """100 dpi, every visible text 9 pt or more and horizontal."""
    fig.savefig(io.BytesIO(), format="png")  # tick labels exist only once the figure is drawn
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert fig.dpi >= 100 and texts
    assert not [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 9 or t.get_rotation() != 0]


def test_the_collapse_statistic_is_the_share_of_iterations_d_wins_per_epoch():
    history = {"epoch": torch.tensor([3, 3, 3, 3, 4, 4]),
               "d_real": torch.tensor([0.001, 0.5, 0.001, 0.2, 0.001, 0.004]),
               "d_fake": torch.tensor([0.002, 0.5, 0.009, 0.2, 0.001, 0.005])}
    # L_D = 0.003 (wins), 1.0, 0.010 (not below 0.01), 0.4 | 0.002, 0.009: both win
    assert sc.collapse_per_epoch(history).tolist() == [0.25, 1.0]


def test_each_fix_is_measured_against_what_it_adds_to_with_its_standard_error():
    assert sc.base_of("paper") is None and sc.base_of("ours-ycbcr") == "paper"
    assert sc.base_of("ycbcr-r1") == sc.base_of("ycbcr-ttur") == "ours-ycbcr"  # TTUR changes lr too
    assert sc.base_of("unet-l1") == sc.base_of("classes") == "paper"
    assert sc.what_it_changes("ycbcr-r1") == "r1_gamma=0.1"
    assert sc.what_it_changes("ycbcr-ttur") == "lr=0.0001, d_lr=0.0004"
    report = {"methods": {name: {"test": {"colorize": {"psnr_dataset_db": {"mean": mean, "std": std, "n": 3}}}}
                          for name, mean, std in (("fix", 23.0, 0.3), ("base", 22.0, 0.4))}}
    delta, se = sc.fix_effect(report, "fix", "base", "psnr_dataset_db")
    assert delta == pytest.approx(1.0) and se == pytest.approx(math.sqrt(0.09 / 3 + 0.16 / 3))


def test_the_table_reads_every_number_from_the_study(study):
    table = sc.fixes_table(study, leave_out=["stable"])
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    names = [row.split(" | ")[0].strip("| ") for row in rows]
    assert names[:2] == ["gray (copied to RGB)", "paper"]
    assert set(names[1:]) == set(study["methods"]) - {"stable"}
    r1 = next(row for row in rows if row.startswith("| ycbcr-r1 "))
    m = study["methods"]["ycbcr-r1"]["test"]["colorize"]["psnr_dataset_db"]
    delta, se = sc.fix_effect(study, "ycbcr-r1", "ours-ycbcr", "psnr_dataset_db")
    assert f"{m['mean']:.2f} ± {m['std']:.2f}" in r1 and f"{delta:+.2f} ± {se:.2f}" in r1


def test_a_study_is_read_with_its_source_and_a_folder_without_one_is_a_parameter_error(study, tmp_path):
    text = sc.study_source(study)
    assert study["device_name"] in text and f"preset {study['preset']}," in text
    assert "3 seeds per method (0, 1, 2), each run 6 epochs" in text
    with pytest.raises(ConfigError, match="study_dir=.* holds no study"):
        sc.read_study(tmp_path, "study_dir")


def test_the_collapse_figure_is_readable_at_full_size_with_and_without_a_run(study):
    spectral = sum(r["overrides"].get("d_norm") == "spectral" for r in study["methods"].values())
    for fig in (sc.collapse_figure(study, torch.tensor([0.0, 0.5, 1.0]), "a run"), sc.collapse_figure(study)):
        assert_readable(fig)
        labels = fig.axes[-1].get_legend_handles_labels()[1]
        assert labels == ["paper's recipe", f"{spectral} methods with a spectral-norm D (max)"] and spectral > 1


def test_the_figure_leaves_out_what_the_table_leaves_out(study):
    """Its legend counts the spectral-norm methods that are rows of the table beside it."""
    rows = [row.split(" | ")[0].strip("| ") for row in sc.fixes_table(study, leave_out=["stable"]).splitlines()[3:]]
    spectral = [name for name in rows if study["methods"][name]["overrides"].get("d_norm") == "spectral"]
    legend = sc.collapse_figure(study, leave_out=["stable"]).axes[-1].get_legend_handles_labels()[1]
    assert "stable" in study["methods"] and legend[-1] == f"{len(spectral)} methods with a spectral-norm D (max)"
