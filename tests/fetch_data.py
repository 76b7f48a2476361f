"""The CIFAR-10 image folder that `make test` runs on, printed on stdout.

    python tests/fetch_data.py [FOLDER]

FOLDER (or $COLORLIB_DATA) given: that folder, checked. Otherwise CIFAR-10 is fetched once by
torchvision into data/ (as colorlib itself does) and written out as data/cifar10-jpeg/
(train/<class>/NNNNN.jpg, test/<class>/NNNNN.jpg, the layout the tests expect); later runs find it
there. Where there is no data and no download, it prints nothing on stdout and one line on
stderr saying what is skipped and how to get the data; the exit status is 0 either way.
"""
from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO / "data"  # where colorlib's torchvision download goes by default
FOLDER = DATA_ROOT / "cifar10-jpeg"
SKIPPED = "the tests that need CIFAR-10 and the notebook run (nbval) are skipped"


def is_image_folder(path: Path) -> bool:
    return (path / "train").is_dir() and (path / "test").is_dir()


def export(dataset, target: Path) -> None:
    """torchvision's CIFAR10 as JPEG files, one folder per class (quality 95: near-lossless)."""
    for index, (image, label) in enumerate(dataset):
        folder = target / dataset.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{index:05d}.jpg", quality=95)


def fetch() -> Path:
    import torchvision

    partial = FOLDER.with_name(FOLDER.name + ".partial")
    socket.setdefaulttimeout(60)
    quiet = io.StringIO()  # torchvision prints download progress; one line is all a test run needs
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        for split in ("train", "test"):
            dataset = torchvision.datasets.CIFAR10(str(DATA_ROOT), train=split == "train", download=True)
            export(dataset, partial / split)
    partial.rename(FOLDER)
    return FOLDER


def main(argv: list[str]) -> int:
    given = argv[0] if argv and argv[0] else os.environ.get("COLORLIB_DATA")
    if given:
        if not is_image_folder(Path(given)):
            print(f"{given} has no train/ and test/ folders: point DATA (or COLORLIB_DATA) at a CIFAR-10 copy laid "
                  f"out as train/<class>/*.jpg and test/<class>/*.jpg, or leave it unset to download CIFAR-10",
                  file=sys.stderr)
            return 1
        print(given)
        return 0
    if is_image_folder(FOLDER):
        print(FOLDER)
        return 0
    print("COLORLIB_DATA is unset: fetching CIFAR-10 (170 MB) into data/ once ...", end=" ", file=sys.stderr,
          flush=True)
    try:
        folder = fetch()
    except Exception as exc:  # no internet, a proxy, a full disk: the tests that need no data still run
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"failed ({type(exc).__name__}: {reason[:160]}): {SKIPPED}. Set COLORLIB_DATA to a local copy "
              f"to run them.", file=sys.stderr)
        return 0
    print(f"done: {folder.relative_to(REPO)}", file=sys.stderr)
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
