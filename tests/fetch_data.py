"""The CIFAR-10 image folder that `make test` runs on, printed on stdout: `python tests/fetch_data.py [FOLDER]`.

FOLDER (or $COLORLIB_DATA) given: that folder, checked. Otherwise CIFAR-10 is downloaded once by torchvision
into data/ and written out as data/cifar10-jpeg/ (train/<class>/NNNNN.jpg, test/<class>/NNNNN.jpg). Where
that fails it prints nothing on stdout and one line on stderr (the tests then run on tests/data/cifar-mini
and those that need all of CIFAR-10 skip); the exit status is 0 either way.
"""
from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parent.parent / "data" / "cifar10-jpeg"


def fetch() -> None:
    import torchvision

    partial = FOLDER.with_name(FOLDER.name + ".partial")
    socket.setdefaulttimeout(60)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # no progress bars
        for split in ("train", "test"):
            dataset = torchvision.datasets.CIFAR10(str(FOLDER.parent), train=split == "train", download=True)
            for index, (image, label) in enumerate(dataset):  # quality 95: near-lossless
                (partial / split / dataset.classes[label]).mkdir(parents=True, exist_ok=True)
                image.save(partial / split / dataset.classes[label] / f"{index:05d}.jpg", quality=95)
    partial.rename(FOLDER)


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv and argv[0] else os.environ.get("COLORLIB_DATA") or FOLDER)
    if folder != FOLDER and not ((folder / "train").is_dir() and (folder / "test").is_dir()):
        print(f"{folder} has no train/ and test/ folders: point DATA (or COLORLIB_DATA) at a CIFAR-10 copy laid out "
              f"as train/<class>/*.jpg and test/<class>/*.jpg, or leave it unset to download CIFAR-10", file=sys.stderr)
        return 1
    if not FOLDER.is_dir() and folder == FOLDER:
        print("fetching CIFAR-10 (170 MB) into data/ once ...", file=sys.stderr, flush=True)
        try:
            fetch()
        except Exception as exc:  # no internet, a proxy, a full disk: the tests run on the subset in tests/data
            print(f"failed ({type(exc).__name__}: {str(exc)[:160]}): the tests that need all of CIFAR-10 and "
                  f"nbval are skipped. Set COLORLIB_DATA to a local copy to run them.", file=sys.stderr)
            return 0
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
