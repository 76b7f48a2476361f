"""The dial against a study's methods (lab/dial_study.py): each seed calibrated on its own
validation split, scored through the command's path, compared with every method's chroma gain at
the dial's own colourfulness."""
from __future__ import annotations

import pytest

from conftest import one_line, run_cli

from colorlib.engine.trainer import Trainer
from colorlib.lab import dial_study, vividness as lab
from colorlib.lab.baselines import METHODS


def sweep(slope: float, offset: float, gray: float = 20.0) -> list[dict]:
    """A gain curve whose PSNR above gray is offset - slope * (colourfulness / 10 - 1)^2 (a peak at 10)."""
    rows = []
    for gain in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0):
        c = 10.0 * gain
        rows.append({"chroma_gain": gain, "colourfulness": c, "colourfulness_pct": c * 5,
                     "psnr_db": gray + offset - slope * (c / 10 - 1) ** 2})
    rows[0]["psnr_db"] = gray  # gain 0: the gray copy
    return rows


def report(sweep_rows, dial_rows=(), gray: float = 20.0) -> dict:
    plain = next(r for r in sweep_rows if r["chroma_gain"] == 1.0)
    return {"images": 10, "every": 1000, "gray_psnr_db": gray, "truth_colourfulness": 20.0,
            "gain_sweep": sweep_rows, "dial": list(dial_rows),
            "plain_output": {**plain, "psnr_vs_gray_db": plain["psnr_db"] - gray}}


def dial_row(v: float, colour: float, psnr_vs_gray: float, default: bool = False) -> dict:
    return {"vividness": v, "colourfulness": colour, "colourfulness_pct": colour * 5,
            "psnr_vs_gray_db": psnr_vs_gray, "psnr_db": 20.0 + psnr_vs_gray, "default": default}


def dial_report(shift: float) -> dict:
    rows = [dial_row(v, 10 + 10 * v, 1.0 - 0.5 * v + shift, default=v == 0.5) for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return report(sweep(1.0, 0.8), rows)


def test_the_margins_are_the_dials_psnr_over_each_rivals_gain_at_the_same_colourfulness():
    reports = {"classes-dial": [dial_report(0.0), dial_report(0.2)],
               "unet-l1": [report(sweep(1.0, 0.6)), report(sweep(1.0, 0.4))],
               dial_study.SHIPPED: [report(sweep(2.0, 0.5))]}
    result = dial_study.compare(reports, "classes-dial")
    v1 = next(p for p in result["points"] if p["vividness"] == 1.0)
    # at colourfulness 20 unet-l1's mean curve is 0.5 - 1 = -0.5 dB, the shipped one's 0.5 - 2 = -1.5 dB
    assert v1["margin_over_gain_db"]["unet-l1"]["per_seed"] == pytest.approx([0.5 + 0.5, 0.7 + 0.5])
    assert v1["margin_over_gain_db"][dial_study.SHIPPED]["mean"] == pytest.approx(0.6 + 1.5)
    assert v1["psnr_vs_gray_db"]["mean"] == pytest.approx(0.6) and v1["psnr_vs_gray_db"]["n"] == 2
    default = next(p for p in result["points"] if p["vividness"] == "default")
    assert default["settings"] == [0.5, 0.5]
    # unet-l1's own output: colourfulness 10 (50%) at +0.5 dB; the dial's V = 0 is as colourful at +1.1
    assert result["dominated"]["unet-l1"] == 0.0
    assert result["targets"]["V=0 PSNR at least unet-l1's"] is True
    assert result["targets"]["V=1 colourfulness within 10% of the truth's"] is True  # 20 of 20
    table = dial_study.markdown(result)
    assert "vs unet-l1's gain (dB)" in table and "| unet-l1 | 2 |" in table


def test_a_dial_that_loses_to_a_rival_is_said_to():
    reports = {"classes-dial": [dial_report(-1.0)], "unet-l1": [report(sweep(0.2, 1.0))],
               dial_study.SHIPPED: [report(sweep(0.2, 1.0))]}
    result = dial_study.compare(reports, "classes-dial")
    assert result["dominated"]["unet-l1"] is None
    key = next(k for k in result["targets"] if k.startswith("beats unet-l1"))
    assert result["targets"][key] is False
    assert "no setting" in dial_study.markdown(result)


def test_a_frontier_out_of_a_rivals_range_is_not_a_margin():
    rival = report(sweep(1.0, 0.5)[:3])  # its gain reaches colourfulness 10 only
    assert dial_study.gain_frontier([rival], 15.0) is None
    assert dial_study.gain_frontier([rival], 10.0) == pytest.approx(0.5)


@pytest.mark.slow
def test_a_small_study_is_scored_compared_written_and_reused(smoke_config, data_dir, tmp_path, capsys, monkeypatch):
    study = tmp_path / "study"
    for name in ("classes-dial", "unet-l1"):
        Trainer(smoke_config(epochs=1, **METHODS[name]), study / name / "seed0", progress=False).fit()
    monkeypatch.setattr(lab, "TEMPERATURES", (1.0, 0.5))
    monkeypatch.setattr(lab, "GAIN_MAX", 1.5)
    out = tmp_path / "out"
    argv = ["vividness-study", study, "--methods", "unet-l1", "--out", out, "--data", data_dir,
            "--limit", 20, "--val-limit", 20]
    code, printed, _ = run_cli(capsys, *argv)
    assert code == 0, printed
    for name in ("metrics.json", "table.md", "frontier.png", "classes-dial/seed0.json", "unet-l1/seed0.json",
                 "shipped.json"):
        assert (out / name).exists(), name
    result = dial_study.rundir.read_json(out / "metrics.json")
    assert set(result["plain_outputs"]) == {"classes-dial", "unet-l1", dial_study.SHIPPED}
    assert result["images"] == 20 and result["seeds"]["classes-dial"] == 1
    cached = (out / "unet-l1" / "seed0.json").stat().st_mtime_ns
    assert run_cli(capsys, *argv)[0] == 0
    assert (out / "unet-l1" / "seed0.json").stat().st_mtime_ns == cached  # scores are reused, not redone
    code, _, err = run_cli(capsys, "vividness-study", study, "--methods", "paper", "--out", out,
                           "--data", data_dir)
    assert code == 2 and "holds no finished seed" in one_line(err)
