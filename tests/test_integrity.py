"""Results are never silently replaced, and damage is never loaded in silence:

- a full evaluation after a limited one moves the limited one beside it (the other way: test_metrics.py);
- a data folder with only some of CIFAR-10's classes is scored against the classifier's classes by name;
- a generator with an infinite weight, or whose file's bytes changed (zip CRC), is refused at load, naming the
  file (NaN weights and other damage: test_checkpoints.py).
"""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from conftest import one_line, run_cli

from colorlib.inference.colorize import DEFAULT_CHECKPOINT, load_model
from colorlib.lab.metrics import GRAY_METHOD, judge_labels
from colorlib.lab.ship import _float16
from colorlib.runs import rundir
from colorlib.runs.rundir import RunDirError


def gray_photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.linear_gradient("L").resize((40, 30)).save(path)
    return path


def evaluate(capsys, run: Path, *extra) -> tuple[str, dict]:
    """`evaluate` on `run`: (its stdout, the report in the file it says it wrote)."""
    code, out, err = run_cli(capsys, "evaluate", "--run-dir", run, "--device", "cpu", "--no-progress", *extra)
    assert code == 0, err
    wrote = [line for line in out.splitlines() if line.startswith("wrote ")]
    assert len(wrote) == 1, out
    return out, json.loads(Path(wrote[0][len("wrote "):]).read_text())


@pytest.fixture
def small_run(smoke_run_copy, small_folder) -> Path:
    """The smoke run, its generator's data pointed at the 20-test-image folder: a full evaluation takes seconds."""
    path = smoke_run_copy / "checkpoints" / "generator.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["data"] = str(small_folder)
    torch.save(ckpt, path)
    return smoke_run_copy


# ---------------------------------------------------------------- (a) scope
def test_a_full_evaluation_after_a_limited_one_keeps_the_limited_one(small_run, tiny_classifier, capsys):
    clf = ("--classifier", tiny_classifier[0])
    evaluate(capsys, small_run, *clf, "--limit", "5")  # the first evaluation: metrics.json
    limited = (small_run / "metrics.json").read_bytes()
    out, full = evaluate(capsys, small_run, *clf)
    assert (small_run / "metrics-limit5.json").read_bytes() == limited  # before: replaced, no copy
    assert full["data"]["images"] == 20 and json.loads((small_run / "metrics.json").read_text())["scope"] == "full"
    assert "it is kept as metrics-limit5.json" in out


# ---------------------------------------------------------------- (b) classes by name
def test_a_folder_of_some_classes_is_scored_by_the_classifiers_class_names(smoke_run_copy, data_dir, tmp_path,
                                                                           capsys):
    folder = tmp_path / "catdog"
    for name, source in (("cat", "cat"), ("dog", "dog"), ("zebra", "horse")):  # zebra: not a CIFAR-10 class
        (folder / "test" / name).mkdir(parents=True)
        for jpg in sorted((data_dir / "test" / source).glob("*.jpg"))[:10]:
            shutil.copyfile(jpg, folder / "test" / name / jpg.name)
    out, report = evaluate(capsys, smoke_run_copy, "--data", folder)  # the shipped classifier
    note = [line for line in out.splitlines() if line.startswith("note:")]
    assert note == ["note: the data's 3 classes are matched by name to the classifier's 10: semantic accuracy is "
                    "scored on the 20 of 30 images of cat, dog; not among its classes, so left out of it: "
                    "zebra"], out
    # before: the folder's labels 0 and 1 read as airplane and automobile, 0% for every method, no word
    assert report["ground_truth"]["semantic_accuracy"] >= 0.7
    assert report["methods"][GRAY_METHOD]["semantic_accuracy"] >= 0.5
    assert report["data"]["images"] == 30 and report["scope"] == "data-catdog"


def test_judge_labels_leaves_the_classifiers_own_classes_alone_and_scores_none_of_others():
    judge = SimpleNamespace(classes=["airplane", "automobile", "bird", "cat", "deer", "dog"])
    labels = torch.tensor([0, 1, 2, -1])
    assert judge_labels(labels, judge.classes, judge) == (labels, None)  # the same classes: nothing to do
    assert judge_labels(labels, [], judge) == (labels, None)  # a folder without classes
    mapped, note = judge_labels(labels, ["x", "y", "z"], judge)
    assert mapped.tolist() == [-1] * 4 and "semantic accuracy is not scored" in note


# ---------------------------------------------------------------- (c) non-finite weights
def test_one_infinite_weight_is_refused_but_a_float16_overflowed_variance_is_not(smoke_run, tmp_path):
    ckpt = torch.load(smoke_run.run_dir / "checkpoints" / "generator.pt", weights_only=True)
    weights = ckpt["generator"]
    name = next(k for k, v in weights.items() if k.endswith("weight") and v.dim() == 4)
    weights[name].view(-1)[0] = float("inf")
    torch.save(ckpt, tmp_path / "inf.pt")
    with pytest.raises(RunDirError, match=f"first '{name}'"):
        load_model(tmp_path / "inf.pt")
    # the shipped generator has three batch norm variances float16 could not hold (+inf): it loads
    shipped = torch.load(DEFAULT_CHECKPOINT, weights_only=True)["generator"]
    assert any(k.endswith("running_var") and torch.isinf(v).any() for k, v in shipped.items())
    G, _ = load_model()
    assert torch.isfinite(G(torch.zeros(1, 1, 32, 32))).all()
    # and ship no longer writes such a variance as float16
    assert _float16(torch.tensor([7e4])).dtype == torch.float32 and _float16(torch.tensor([1.5])).dtype == torch.float16


# ---------------------------------------------------------------- (d) flipped bytes
def test_flipped_bytes_in_a_generator_are_named_not_loaded(tmp_path, capsys):
    damaged = tmp_path / "generator.pt"
    shutil.copyfile(DEFAULT_CHECKPOINT, damaged)
    with zipfile.ZipFile(damaged) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)  # a weight tensor's bytes
    data = bytearray(damaged.read_bytes())
    start = record.header_offset + 200 + record.file_size // 2  # inside the record's data, past its header
    data[start:start + 400] = bytes(b ^ 0xFF for b in data[start:start + 400])
    damaged.write_bytes(bytes(data))
    # (torch.load reads this file without a word: it does not check the records' CRC-32)
    with pytest.raises(RunDirError, match=f"its record '{record.filename}' fails its CRC-32 check"):
        load_model(damaged)
    code, _, err = run_cli(capsys, "colorize", gray_photo(tmp_path / "a.png"), "-o", tmp_path / "out",
                           "--checkpoint", damaged, "--no-progress")
    line = one_line(err)
    assert code == 2 and str(damaged) in line and "CRC-32" in line, line
    rundir.check_zip(DEFAULT_CHECKPOINT, "checkpoint", "", RunDirError)  # the shipped file itself is whole
