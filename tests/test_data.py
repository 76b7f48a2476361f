"""Data: the [-1, 1] scaling and BT.601 gray input, splits and subsets, folder sources, errors."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from colorlib.paper.data import epoch_order, to_model_range, to_uint8
from colorlib.runs.config import DATA_ENV
from colorlib.runs.data import DataError, load_split

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_model_range_and_bt601_luma_by_hand():
    pixels = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0), (255, 255, 255), (10, 200, 90)]
    images = torch.tensor(pixels, dtype=torch.uint8).T.reshape(1, 3, 1, len(pixels))
    gray, rgb = to_model_range(images)
    for i, (r, g, b) in enumerate(pixels):
        scaled = [v / 127.5 - 1 for v in (r, g, b)]
        assert rgb[0, :, 0, i].tolist() == pytest.approx(scaled, abs=1e-6)
        assert gray[0, 0, 0, i].item() == pytest.approx(0.299 * scaled[0] + 0.587 * scaled[1] + 0.114 * scaled[2],
                                                        abs=1e-6)
    assert gray[0, 0, 0, 3].item() == -1.0 and (images == torch.tensor(pixels).T.reshape(images.shape)).all()
    assert torch.equal(to_uint8(rgb), images)  # the exact inverse, clamped outside [-1, 1]
    assert torch.equal(to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8))


def test_gray_input_matches_pillow_luma_on_a_real_image(data_dir):
    pil = Image.open(sorted((data_dir / "test" / "cat").glob("*.jpg"))[0]).convert("RGB")
    gray, _ = to_model_range(torch.from_numpy(np.array(pil)).permute(2, 0, 1)[None])
    pil_luma = torch.from_numpy(np.array(pil.convert("L"))).float()  # BT.601, rounded to integers
    assert ((gray[0, 0] + 1) * 127.5 - pil_luma).abs().max() <= 0.5 + 1e-4


def test_epoch_order_is_a_seeded_permutation():
    a = epoch_order(100, epoch=3, seed=0)
    assert sorted(a.tolist()) == list(range(100)) and torch.equal(a, epoch_order(100, epoch=3, seed=0))
    assert not torch.equal(a, epoch_order(100, epoch=4, seed=0)) and not torch.equal(a, epoch_order(100, 3, seed=1))


def test_folder_images_are_the_files_pixels_with_their_classes(small_folder, monkeypatch):
    loaded = load_split(str(small_folder), "test")
    files = sorted((small_folder / "test").glob("*/*.jpg"))
    assert len(loaded) == len(files) == 20 and loaded.classes == CIFAR10_CLASSES
    for i, path in enumerate(files):
        pixels = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(loaded.images[i], pixels)
        assert loaded.classes[loaded.labels[i]] == path.parent.name
    monkeypatch.setenv(DATA_ENV, str(small_folder))  # no --data: the environment variable names the data
    assert torch.equal(load_split(None, "test").images, loaded.images)


def test_subsets_are_seeded_and_the_validation_split_a_fixed_hold_out(small_folder):
    a, b, c = (load_split(str(small_folder), "train", size=30, seed=s) for s in (1, 1, 2))
    assert len(a) == 30 and torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    val_a, val_b = (load_split(str(small_folder), "val", seed=s, val_size=30) for s in (0, 7))
    train = load_split(str(small_folder), "train", seed=0, val_size=30)
    assert torch.equal(val_a.images, val_b.images) and len(train) == 70  # the same hold-out for every seed
    assert torch.unique(torch.cat([val_a.images, train.images]).flatten(1), dim=0).shape[0] == 100  # disjoint
    with pytest.raises(DataError, match="val_size"):
        load_split(str(small_folder), "val", val_size=100)
    with pytest.raises(ValueError, match="'train', 'test' or 'val'"):
        load_split(str(small_folder), "validation")


def test_a_folder_of_photos_without_classes_is_resized_for_both_splits(tmp_path):
    rng = np.random.default_rng(0)
    for i, size in enumerate([(64, 48), (32, 32), (40, 90)]):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    loaded = load_split(str(tmp_path), "test")
    assert loaded.images.shape == (3, 3, 32, 32) and loaded.labels.tolist() == [-1] * 3 and loaded.classes == []
    original = torch.from_numpy(np.array(Image.open(tmp_path / "1.png"))).permute(2, 0, 1)
    assert torch.equal(load_split(str(tmp_path), "train").images[1], original)  # 32x32 passes unchanged


@pytest.mark.parametrize("content", [b"", b"\xff\xd8 this is not a jpeg"])
def test_an_undecodable_image_is_named(small_folder, tmp_path, content):
    folder = tmp_path / "data"
    shutil.copytree(small_folder, folder)
    (folder / "train" / "cat" / "bad.jpg").write_bytes(content)
    with pytest.raises(DataError, match="bad.jpg"):
        load_split(str(folder), "train")


def test_missing_data_names_the_remedies(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        load_split(str(tmp_path / "no-such-folder"), "train")
    assert all(s in str(err.value) for s in ("no-such-folder", "--data", DATA_ENV, "train/<class>", "CIFAR-10"))
    (tmp_path / "cifar10.pt").write_bytes(b"not a folder")
    with pytest.raises(DataError, match=r"cifar10.pt' is not a folder \(.pt data packs are no longer read.*\)\. "
                                        r"Point --data .* at a folder laid out as"):
        load_split(str(tmp_path / "cifar10.pt"), "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_split(str(tmp_path), "train")
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", lambda self: open(tmp_path / "offline/x"))
    with pytest.raises(DataError, match="could not be downloaded.*offline.*internet"):
        load_split(None, "train", data_root=str(tmp_path))
