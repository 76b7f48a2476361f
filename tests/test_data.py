"""Data: the [-1, 1] scaling and BT.601 gray input, subsets, folder and pack sources, and errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from colorlib.cli import main as cli_main
from colorlib.runs.config import DATA_ENV
from colorlib.runs.data import DataError, load_split, pack_folder
from colorlib.paper.data import epoch_order, to_model_range, to_uint8

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---------------------------------------------------------------- scaling and gray input
def test_model_range_and_bt601_luma_by_hand():
    pixels = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0), (255, 255, 255), (10, 200, 90)]
    images = torch.tensor(pixels, dtype=torch.uint8).T.reshape(1, 3, 1, len(pixels))
    gray, rgb = to_model_range(images)
    assert gray.shape == (1, 1, 1, len(pixels)) and rgb.shape == (1, 3, 1, len(pixels))
    for i, (r, g, b) in enumerate(pixels):
        scaled = [v / 127.5 - 1 for v in (r, g, b)]
        assert rgb[0, :, 0, i].tolist() == pytest.approx(scaled, abs=1e-6)
        luma = 0.299 * scaled[0] + 0.587 * scaled[1] + 0.114 * scaled[2]
        assert gray[0, 0, 0, i].item() == pytest.approx(luma, abs=1e-6)
    # the extremes land exactly on the ends of [-1, 1]
    assert gray[0, 0, 0, 3].item() == -1.0 and gray[0, 0, 0, 4].item() == pytest.approx(1.0, abs=1e-6)


def test_to_model_range_does_not_modify_its_input():
    images = torch.full((1, 3, 2, 2), 200, dtype=torch.uint8)
    to_model_range(images)
    assert (images == 200).all()


def test_to_uint8_inverts_the_scaling_exactly():
    images = torch.arange(256, dtype=torch.uint8).repeat(3, 1).reshape(1, 3, 16, 16)
    _, rgb = to_model_range(images)
    assert torch.equal(to_uint8(rgb), images)
    assert torch.equal(to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8))


def test_gray_input_matches_pillow_luma_on_a_real_image(data_dir):
    jpg = sorted((data_dir / "test" / "cat").glob("*.jpg"))[0]
    pil = Image.open(jpg).convert("RGB")
    images = torch.from_numpy(np.array(pil)).permute(2, 0, 1)[None]
    gray, rgb = to_model_range(images)
    assert rgb.min() >= -1 and rgb.max() <= 1 and gray.min() >= -1 and gray.max() <= 1
    pil_luma = torch.from_numpy(np.array(pil.convert("L"))).float()  # BT.601, rounded to integers
    ours = (gray[0, 0] + 1) * 127.5
    assert (ours - pil_luma).abs().max() <= 0.5 + 1e-4


def test_epoch_order_is_a_seeded_permutation():
    a = epoch_order(100, epoch=3, seed=0)
    assert sorted(a.tolist()) == list(range(100))
    assert torch.equal(a, epoch_order(100, epoch=3, seed=0))
    assert not torch.equal(a, epoch_order(100, epoch=4, seed=0))
    assert not torch.equal(a, epoch_order(100, epoch=3, seed=1))


# ---------------------------------------------------------------- real data, folder layout
def test_folder_layout_loads_cifar10(data_dir):
    test = load_split(str(data_dir), "test", size=40, seed=0)
    assert test.images.shape == (40, 3, 32, 32) and test.images.dtype == torch.uint8
    assert test.classes == CIFAR10_CLASSES
    assert test.labels.dtype == torch.int64 and 0 <= test.labels.min() and test.labels.max() <= 9
    assert test.source == str(data_dir)
    gray, rgb = to_model_range(test.images)
    assert rgb.min() >= -1 and rgb.max() <= 1 and gray.min() >= -1 and gray.max() <= 1
    assert rgb.std() > 0.1  # real photographs, not a blank tensor


def test_subset_size_and_seed_are_respected_and_deterministic(data_dir):
    a = load_split(str(data_dir), "test", size=60, seed=1)
    b = load_split(str(data_dir), "test", size=60, seed=1)
    c = load_split(str(data_dir), "test", size=60, seed=2)
    assert len(a) == 60
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert len(set(a.labels.tolist())) > 1  # a random subset, not the first class folder


def test_environment_variable_names_the_data(data_dir, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(data_dir))
    from_env = load_split(None, "test", size=5, seed=0)
    assert from_env.source == str(data_dir)
    assert torch.equal(from_env.images, load_split(str(data_dir), "test", size=5, seed=0).images)


def test_folder_images_are_the_files_pixels(small_folder):
    loaded = load_split(str(small_folder), "test")
    files = sorted((small_folder / "test").glob("*/*.jpg"))  # class folders in sorted order
    assert len(loaded) == len(files) == 20
    for i, path in enumerate(files):
        expected = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(loaded.images[i], expected), path
        assert loaded.classes[loaded.labels[i]] == path.parent.name


def test_pack_round_trip_gives_identical_pixels(small_folder, tmp_path):
    pack = tmp_path / "small.pt"
    counts = pack_folder(str(small_folder), str(pack))
    assert counts == {"train": 100, "test": 20}
    for split, size in (("train", None), ("test", None), ("train", 30)):
        from_folder = load_split(str(small_folder), split, size=size, seed=4)
        from_pack = load_split(str(pack), split, size=size, seed=4)
        assert torch.equal(from_pack.images, from_folder.images)
        assert torch.equal(from_pack.labels, from_folder.labels)
        assert from_pack.classes == from_folder.classes
    assert isinstance(torch.load(pack, weights_only=True), dict)  # no pickled code in a pack


def test_cli_pack_writes_a_loadable_pack(small_folder, tmp_path, capsys):
    pack = tmp_path / "cli.pt"
    assert cli_main(["pack", "--data", str(small_folder), "--out", str(pack)]) == 0
    assert "100" in capsys.readouterr().out
    assert len(load_split(str(pack), "train")) == 100


# ---------------------------------------------------------------- other sources
def test_flat_folder_of_photos_is_resized_and_used_for_both_splits(tmp_path):
    rng = np.random.default_rng(0)
    for i, size in enumerate([(64, 48), (32, 32), (40, 90)]):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    for split in ("train", "test"):
        images = load_split(str(tmp_path), split)
        assert images.images.shape == (3, 3, 32, 32)
        assert images.labels.tolist() == [-1, -1, -1] and images.classes == []
    # a 32x32 photo passes through unchanged
    original = torch.from_numpy(np.array(Image.open(tmp_path / "1.png"))).permute(2, 0, 1)
    assert torch.equal(load_split(str(tmp_path), "train").images[1], original)


# ---------------------------------------------------------------- errors
def test_missing_data_folder_names_both_remedies(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(DataError) as err:
        load_split(str(missing), "train")
    message = str(err.value)
    assert str(missing) in message
    assert "--data" in message and DATA_ENV in message and "train/<class>" in message  # use a local copy
    assert "unset" in message and "CIFAR-10" in message  # or let torchvision download it


def test_offline_torchvision_cifar10_gives_a_data_error(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)

    def no_network(self):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", no_network)
    with pytest.raises(DataError) as err:
        load_split(None, "train", data_root=str(tmp_path))
    message = str(err.value)
    assert "could not be downloaded" in message and "network is unreachable" in message
    assert "internet" in message and "--data" in message and DATA_ENV in message


def test_empty_folder_is_a_data_error(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_split(str(tmp_path), "train")


def test_undecodable_image_is_named(tmp_path):
    (tmp_path / "ok").mkdir()
    Image.new("RGB", (32, 32), "red").save(tmp_path / "ok" / "good.jpg")
    (tmp_path / "ok" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        load_split(str(tmp_path), "train")


def test_a_file_that_is_not_a_pack_is_a_data_error(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a pack")
    with pytest.raises(DataError, match="colorlib pack"):
        load_split(str(junk), "train")
    other = tmp_path / "other.pt"
    torch.save({"format": "something else"}, other)
    with pytest.raises(DataError, match="not a colorlib data pack"):
        load_split(str(other), "train")


def test_unknown_split_is_refused(data_dir):
    with pytest.raises(ValueError, match="'train', 'val' or 'test'"):
        load_split(str(data_dir), "validation")


def test_validation_split_is_a_fixed_hold_out_of_the_training_images(small_folder):
    # the same 30 images for every run seed, never among that run's training images
    val_a = load_split(str(small_folder), "val", seed=0, val_size=30)
    val_b = load_split(str(small_folder), "val", seed=7, val_size=30)
    train = load_split(str(small_folder), "train", seed=0, val_size=30)
    assert torch.equal(val_a.images, val_b.images)
    assert len(val_a) == 30 and len(train) == 70
    together = torch.cat([val_a.images, train.images]).flatten(1)
    assert torch.unique(together, dim=0).shape[0] == 100  # disjoint and together the whole split
    # a subset of the training part comes from the images left after the hold-out
    sub = load_split(str(small_folder), "train", size=20, seed=3, val_size=30)
    assert all((train.images.flatten(1) == img.flatten()).all(1).any() for img in sub.images)
    with pytest.raises(DataError, match="val_size"):
        load_split(str(small_folder), "val", val_size=100)


def test_pack_stores_the_shared_jpeg_header_once_and_decodes_identically(small_folder, tmp_path):
    pack = tmp_path / "small.pt"
    pack_folder(str(small_folder), str(pack))
    stored = torch.load(pack, weights_only=True)
    folder_bytes = sum(p.stat().st_size for p in (small_folder / "train").rglob("*.jpg"))
    assert len(stored["train"]["prefix"]) > 500  # CIFAR-10's JPEGs share a 623-byte header
    assert stored["train"]["bytes"].numel() < 0.5 * folder_bytes
    for split in ("train", "test"):
        assert torch.equal(load_split(str(pack), split).images, load_split(str(small_folder), split).images)
