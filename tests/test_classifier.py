"""The fixed CIFAR-10 classifier behind semantic accuracy and the feature distance: augmentation,
inputs, its save/load contract and its command."""
from __future__ import annotations

import torch

from colorlib.lab.classifier import random_crop_flip
from colorlib.variants.cifar_classifier import CLASSIFIER_FORMAT, CifarClassifier, load_classifier
from conftest import one_line, random_images, run_cli


def test_random_crop_flip_keeps_shape_and_content():
    flat = torch.full((6, 3, 32, 32), 51, dtype=torch.uint8)
    out = random_crop_flip(flat, generator=torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 32, 32) and torch.allclose(out, torch.full_like(out, 51 / 255))
    # every output row is a (possibly mirrored) window of the reflect-padded input row
    ramp = torch.arange(32, dtype=torch.uint8).view(1, 1, 1, 32).expand(4, 3, 32, 32).contiguous()
    steps = (random_crop_flip(ramp, generator=torch.Generator().manual_seed(1)) * 255).round().diff(dim=-1)
    assert ((steps.abs() == 1) | (steps == 0)).all()


def test_the_classifier_takes_uint8_and_unit_floats_alike():
    model = CifarClassifier(widths=(8, 16, 16)).eval()
    x = random_images(n=3, size=32)
    with torch.no_grad():
        assert torch.allclose(model(x), model(x.float() / 255), atol=1e-6) and model.features(x).shape == (3, 16)


def test_a_trained_classifier_is_saved_as_float16_and_loads_with_weights_only(tiny_classifier):
    path, info = tiny_classifier
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["format"] == CLASSIFIER_FORMAT and ckpt["test_accuracy"] == info["test_accuracy"]
    assert all(v.dtype != torch.float32 for v in ckpt["state_dict"].values())
    model = load_classifier(path)
    assert not model.training and model.classes == ckpt["classes"]


def test_train_classifier_never_replaces_a_checkpoint(small_folder, tmp_path, capsys):
    out = tmp_path / "c.pt"
    argv = ["train-classifier", "--data", small_folder, "--out", out, "--epochs", "1", "--train-size", "50",
            "--widths", "8,8,8", "--device", "cpu"]
    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 0 and "test top-1" in stdout
    before = out.read_bytes()
    code, _, stderr = run_cli(capsys, *argv)
    assert code == 2 and "choose another --out" in one_line(stderr) and out.read_bytes() == before
