"""The vividness dial (inference/vividness.py, lab/vividness.py): one number from the safest colours
to as colourful as real photos, calibrated on a validation split and stored with the generator."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import one_line, run_cli

from colorlib.engine.trainer import Trainer
from colorlib.inference import colorize, vividness as dial
from colorlib.inference.checkpoints import load_generator
from colorlib.lab import vividness as lab
from colorlib.lab.metrics import colourfulness
from colorlib.runs import rundir
from colorlib.runs.config import ConfigError
from colorlib.runs.data import load_split

needs_shipped = pytest.mark.skipif(not colorize.DEFAULT_CHECKPOINT.exists(), reason="no generator ships here")


@pytest.fixture(scope="module")
def shipped():
    return colorize.load_model()[0]


@pytest.fixture(scope="module")
def classes_generator(smoke_config, tmp_path_factory) -> Path:
    """A generator with the chroma-classes head (a temperature knob): one smoke epoch on real images."""
    run_dir = tmp_path_factory.mktemp("classes") / "run"
    Trainer(smoke_config(output="classes", epochs=1), run_dir, progress=False).fit()
    return run_dir / "checkpoints" / "generator.pt"


@pytest.fixture(scope="module")
def calibrated(classes_generator, data_dir, tmp_path_factory):
    """The classes generator calibrated into a new file, on 40 of its 50 held-out validation images
    (two temperatures, gains up to 1.5: seconds)."""
    out = tmp_path_factory.mktemp("calibrated") / "generator.pt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lab, "TEMPERATURES", (1.0, 0.5))
        mp.setattr(lab, "GAIN_MAX", 1.5)
        lab.calibrate_file(classes_generator, out, data=str(data_dir), limit=40, log=lambda *_: None)
    return out


def cifar_folder(data_dir: Path, root: Path, per_class: int) -> Path:
    for class_dir in sorted(p for p in (data_dir / "test").iterdir() if p.is_dir()):
        (root / "test" / class_dir.name).mkdir(parents=True)
        for jpg in sorted(class_dir.glob("*.jpg"))[:per_class]:
            shutil.copyfile(jpg, root / "test" / class_dir.name / jpg.name)
    return root


# ---------------------------------------------------------------- the shipped generator's dial
@needs_shipped
def test_the_shipped_dial_orders_colourfulness_and_psnr_on_test_images(shipped, data_dir):
    images, _ = lab.every_nth_test_image(str(data_dir), 100)  # 100 real test images, never calibrated on
    scorer = lab.Scorer(shipped, images)
    low, high = scorer.score(vividness=0.0), scorer.score(vividness=1.0)
    assert high["colourfulness"] > 1.2 * low["colourfulness"]
    assert low["psnr_db"] > high["psnr_db"]
    assert 0.85 < high["colourfulness"] / scorer.truth_colourfulness < 1.15  # about as colourful as real photos


@needs_shipped
def test_the_shipped_calibration_is_monotone_and_keeps_the_plain_output_as_default(shipped):
    cal = dial.calibration_of(shipped)
    assert cal.calibrated and cal.record["validation"]["split"] == "val"
    assert not cal.record["validation"]["held_out"]  # it trained on all 50,000: the rule says so, V = 0
    v = [k.vividness for k in cal.knots]
    assert v[0] == 0.0 and v[-1] == 1.0 and v == sorted(v)
    for a, b in zip(cal.knots, cal.knots[1:]):
        assert b.chroma_gain > a.chroma_gain and b.colourfulness > a.colourfulness and b.psnr_db < a.psnr_db
    gains = [cal.settings(x / 100)[0] for x in range(101)]
    assert gains == sorted(gains)
    truth = cal.record["validation"]["truth_colourfulness"]
    assert cal.knots[-1].colourfulness == pytest.approx(truth, rel=0.02)
    assert max(cal.knots, key=lambda k: k.psnr_db).vividness == 0.0
    assert cal.default == 0.0 and dial.knobs(shipped) == (1.0, None)  # the generator's own output, as before


@needs_shipped
def test_the_calibrated_file_still_loads_on_the_older_paths():
    ckpt = rundir.load_checkpoint(colorize.DEFAULT_CHECKPOINT)
    assert ckpt["format"] == rundir.GENERATOR_FORMAT
    assert ckpt["vividness"]["format"] == dial.VIVIDNESS_FORMAT
    plain = torch.load(colorize.DEFAULT_CHECKPOINT, map_location="cpu", weights_only=True)
    assert {"format", "config", "generator"} <= set(plain)
    G, _ = load_generator(colorize.DEFAULT_CHECKPOINT)  # every loader attaches the file's calibration:
    assert dial.calibration_of(G).calibrated          # evaluation scores the command's default
    assert G(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)


# ---------------------------------------------------------------- the command line
@pytest.mark.parametrize("value", ["1.5", "abc", "-0.1", "nan"])
def test_a_vividness_outside_zero_to_one_is_one_line_and_exit_2(value, tmp_path, capsys):
    Image.new("L", (40, 30), 128).save(tmp_path / "a.png")
    code, _, stderr = run_cli(capsys, "colorize", tmp_path / "a.png", "-o", tmp_path / "out", "--no-progress",
                              f"--vividness={value}")
    assert code == 2
    line = one_line(stderr)
    assert "--vividness" in line and "from 0" in line and "to 1" in line
    assert not (tmp_path / "out").exists()


@needs_shipped
def test_the_batched_scorer_writes_the_commands_bytes_at_a_vividness(shipped, data_dir, tmp_path, capsys):
    root = cifar_folder(data_dir, tmp_path / "cifar", per_class=2)
    for out, extra in ((tmp_path / "v", ["--vividness", "0.75"]), (tmp_path / "default", [])):
        code, _, stderr = run_cli(capsys, "colorize", root / "test", "-o", out, "--no-progress", *extra)
        assert code == 0, stderr
    test = load_split(str(root), "test")  # 20 images in one batch, decoded as the evaluation decodes them
    files = sorted((root / "test").rglob("*.jpg"))
    written = [(tmp_path / "v" / f.relative_to(root / "test")).read_bytes() for f in files]
    assert lab.Scorer(shipped, test.images, "JPEG").files(vividness=0.75) == written
    default = [(tmp_path / "default" / f.relative_to(root / "test")).read_bytes() for f in files]
    assert written != default  # 0.75 is not the default
    gain, _ = dial.knobs(shipped, 0.75)
    assert colorize.colorized_files([colorize.read_photo(files[0])], shipped, formats=["JPEG"],
                                    chroma_gain=gain) == written[:1]  # the dial is its knobs


# ---------------------------------------------------------------- calibrating: stored, reloaded, weights kept
def test_calibrating_keeps_the_weights_and_everything_else(classes_generator, calibrated):
    before = torch.load(classes_generator, map_location="cpu", weights_only=True)
    after = torch.load(calibrated, map_location="cpu", weights_only=True)
    assert set(after) == set(before) | {"vividness"}
    assert before["generator"].keys() == after["generator"].keys()
    for name, value in before["generator"].items():
        assert value.dtype == after["generator"][name].dtype and torch.equal(value, after["generator"][name]), name
    assert all(lab._same(before[k], after[k]) for k in before)


def test_calibrating_in_place_keeps_the_weights(smoke_run, data_dir, tmp_path):
    path = tmp_path / "generator.pt"
    shutil.copyfile(smoke_run.run_dir / "checkpoints" / "generator.pt", path)
    before = torch.load(path, map_location="cpu", weights_only=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lab, "GAIN_MAX", 1.5)
        assert lab.calibrate_file(path, data=str(data_dir), limit=30, log=lambda *_: None) == path
    after = torch.load(path, map_location="cpu", weights_only=True)
    assert all(lab._same(before[k], after[k]) for k in before) and "vividness" in after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generator.pt"]  # no temporary file left
    with pytest.raises(rundir.RunDirError, match="exists"):
        lab.calibrate_file(path, smoke_run.run_dir / "checkpoints" / "generator.pt", data=str(data_dir))


def test_a_stored_calibration_reloads_to_the_same_outputs(classes_generator, calibrated):
    G, _ = colorize.load_model(calibrated)
    again, _ = colorize.load_model(calibrated)
    plain, _ = colorize.load_model(classes_generator)
    cal = dial.calibration_of(G)
    assert cal.calibrated and cal == dial.calibration_of(again)
    assert all(k.temperature is not None for k in cal.knots)  # the classes head: both knobs
    assert cal.record["validation"]["held_out"]  # the smoke run held its 50 validation images out
    v = [k.colourfulness for k in cal.knots]
    assert v[-1] >= v[0]
    torch.manual_seed(0)
    photos = [colorize.GrayPhoto(torch.rand(32, 32)) for _ in range(3)] + [colorize.GrayPhoto(torch.rand(40, 56))]
    for vividness in (0.0, 0.3, 1.0, None):
        ours = colorize.colorized_files(photos, G, formats=["PNG"] * 4, vividness=vividness)
        assert ours == colorize.colorized_files(photos, again, formats=["PNG"] * 4, vividness=vividness)
        gain, temperature = cal.settings(cal.default if vividness is None else vividness)
        assert ours == colorize.colorized_files(photos, plain, formats=["PNG"] * 4, chroma_gain=gain,
                                                temperature=temperature)


def test_the_temperature_is_a_knob_of_the_classes_head_only(classes_generator, smoke_run):
    G, cfg = colorize.load_model(classes_generator)
    luma = torch.rand(32, 32, generator=torch.Generator().manual_seed(1))
    sharp, mean = (colorize.colorize_luma(luma, G, temperature=t) for t in (0.1, 1.0))
    assert not torch.equal(sharp, mean)
    assert G.output.temperature == cfg.chroma_temperature  # put back after the call
    assert torch.equal(colorize.colorize_luma(luma, G), colorize.colorize_luma(luma, G, chroma_gain=1.0))
    rgb_head, _ = colorize.load_model(smoke_run.run_dir)
    with pytest.raises(ConfigError, match="chroma-classes head"):
        colorize.colorize_luma(luma, rgb_head, temperature=0.5)


# ---------------------------------------------------------------- without a calibration; wrong uses
def test_an_uncalibrated_generator_follows_the_default_mapping(smoke_run):
    G, _ = colorize.load_model(smoke_run.run_dir)
    assert not dial.calibration_of(G).calibrated
    assert [dial.knobs(G, v) for v in (0.0, 0.5, 1.0)] == [(0.75, None), (1.0, None), (1.25, None)]
    luma = torch.rand(24, 40, generator=torch.Generator().manual_seed(2))
    assert torch.equal(colorize.colorize_luma(luma, G), colorize.colorize_luma(luma, G, chroma_gain=1.0))
    with pytest.warns(UserWarning, match="no vividness calibration"):
        colorize.colorize(luma, G, vividness=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        colorize.colorize(luma, G, vividness=0.2)  # once per generator
        colorize.colorize(luma, G)  # and never for the default


def test_the_dial_and_its_knobs_are_not_given_together(smoke_run):
    G, _ = colorize.load_model(smoke_run.run_dir)
    luma = torch.rand(32, 32)
    with pytest.raises(ConfigError, match="not both"):
        colorize.colorize_luma(luma, G, chroma_gain=1.2, vividness=0.5)
    with pytest.raises(ConfigError, match="method='chroma' only"):
        colorize.colorize_luma(luma, G, method="naive", vividness=0.5)
    for bad in (1.5, -0.01, float("nan"), "abc", True):
        with pytest.raises(ConfigError, match="from 0"):
            colorize.colorize_luma(luma, G, vividness=bad)


def test_a_damaged_calibration_is_refused_with_what_to_do(smoke_run, tmp_path):
    ckpt = torch.load(smoke_run.run_dir / "checkpoints" / "generator.pt", map_location="cpu", weights_only=True)
    ckpt["vividness"] = {"format": dial.VIVIDNESS_FORMAT, "default": 0.0,
                         "knots": [{"vividness": 0.0, "chroma_gain": 1.0}, {"vividness": 0.5, "chroma_gain": -1.0}]}
    torch.save(ckpt, tmp_path / "damaged.pt")
    with pytest.raises(rundir.RunDirError, match="vividness-calibrate"):
        colorize.load_model(tmp_path / "damaged.pt")


@needs_shipped
def test_the_frontier_report_sets_the_dial_beside_the_gain_alone(shipped, data_dir, tmp_path):
    images, _ = lab.every_nth_test_image(str(data_dir), 30)
    report = lab.measure_frontier(shipped, images, log=lambda *_: None)
    assert [r["vividness"] for r in report["dial"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [r["default"] for r in report["dial"]] == [True, False, False, False, False]
    for row in report["dial"]:  # the shipped (RGB-head) dial is a chroma gain: the same point of the gain curve
        assert row["gain_alone"]["chroma_gain"] == pytest.approx(row["chroma_gain"], abs=0.01)
        assert row["gain_alone"]["psnr_db"] == pytest.approx(row["psnr_db"], abs=0.05)
    assert report["dial"][0]["psnr_db"] == report["plain_output"]["psnr_db"]  # the default: the plain output
    table = lab.markdown_table(report)
    assert "V = 0 (default)" in table and "gray copy" in table
    lab.frontier_figure(report).savefig(tmp_path / "f.png")
    assert colourfulness(images).mean().item() == pytest.approx(report["truth_colourfulness"])
