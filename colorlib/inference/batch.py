"""`python -m colorlib colorize`: files and folders of photos, each colorized and written atomically.
Nothing of the user's is overwritten: an output that would replace an input, or the output of another
input, is refused; an existing one is skipped (unless overwrite). A photo that cannot be colorized is
named on stderr and the batch goes on; Ctrl-C leaves only whole files, and a rerun skips those done."""
from __future__ import annotations

import os
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from . import colorize as cz, vividness as dial
from ..runs import rundir
from ..runs.config import ConfigError
from ..runs.data import IMAGE_EXTENSIONS

PHOTO_EXTENSIONS = IMAGE_EXTENSIONS + (".tif", ".tiff")  # what a folder is searched for


class ColorizeInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP: `signum`) stopped the batch; the message says how far it got."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


@dataclass
class Job:
    source: Path
    relative: Path  # where under the output folder its result goes (without the extension)

    def target(self, out_dir: Path, has_alpha: bool = False) -> tuple[Path, str]:
        """(output path, Pillow format): JPEG in, JPEG out; everything else, and transparency, PNG."""
        if self.source.suffix.lower() in (".jpg", ".jpeg") and not has_alpha:
            return out_dir / self.relative.with_suffix(self.source.suffix), "JPEG"
        return out_dir / self.relative.with_suffix(".png"), "PNG"


@dataclass
class ColorizeSummary:
    """What `colorize_files` did: `failed` holds (input, problem) for every input not colorized."""
    out_dir: Path
    photos: int
    done: int = 0
    skipped: int = 0  # their output existed already
    colour_inputs: int = 0  # converted to gray first
    failed: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"colorized {self.done} of {self.photos} photo(s) into {self.out_dir}"
                + (f", {self.skipped} skipped (output exists)" if self.skipped else "")
                + (f", {self.colour_inputs} already in colour (converted to gray first)" if self.colour_inputs else "")
                + (f"; {len(self.failed)} failed" if self.failed else "; none failed"))


def collect_jobs(inputs: list[str], out_dir: Path) -> tuple[list[Job], list[tuple[str, str]]]:
    """The photos named by `inputs` (files, or folders searched recursively), each once, and (input, problem)
    for what names none; an output folder inside an input folder is left out (a rerun would colorize it)."""
    jobs, problems = {}, []  # jobs by resolved source: a photo named twice is done once
    out_resolved = out_dir.resolve()
    for name in inputs:
        path, before, pairs = Path(name), len(problems), []
        if os.path.isdir(path):  # False, as isfile, where permission is denied on the way
            found = []
            for root, _, files in os.walk(path, onerror=lambda exc: problems.append(
                    (exc.filename, "permission denied: this folder cannot be read; check its permissions (ls -ld)"))):
                if out_resolved == path.resolve() or not Path(root).resolve().is_relative_to(out_resolved):
                    found += [Path(root) / f for f in files
                              if not f.startswith(".") and Path(f).suffix.lower() in PHOTO_EXTENSIONS]
            if not found and len(problems) == before:
                problems.append((name, f"no photos ({', '.join(PHOTO_EXTENSIONS)}) in this folder"))
            pairs = [(p, p.relative_to(path).with_suffix("")) for p in sorted(found) if p.is_file()]
        elif os.path.isfile(path):
            pairs = [(path, Path(path.stem))]
        else:
            problems.append((name, "no such file or folder, or permission denied on the way to it (ls -ld)"))
        for source, relative in pairs:
            jobs.setdefault(source.resolve(), Job(source, relative))
    return list(jobs.values()), problems


def _check_batch(jobs: list[Job], out_dir: Path, checkpoint, render_size: int, device: str):
    """The generator, once everything that would spoil the whole batch is checked."""
    from ..runs.device import pick_device
    inputs = {j.source.resolve() for j in jobs}
    for job in jobs:
        for has_alpha in (False, True):
            target = job.target(out_dir, has_alpha)[0]
            if target.resolve() in inputs:
                raise ConfigError(f"refusing to write into {out_dir}: the output {target} would overwrite an "
                                  f"input photo; choose an output folder that holds none of the inputs")
    model, _ = cz.load_model(checkpoint, pick_device(device))
    cz.render_shape(32, 32, render_size, cz.size_multiple(model))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as exc:
        raise ConfigError(f"cannot write to the output folder {out_dir} ({exc.strerror or exc}); choose "
                          f"a folder you can write to with -o") from None
    return model


def colorize_files(inputs: list[str], out_dir, checkpoint=None, render_size: int = cz.DEFAULT_RENDER_SIZE,
                   device: str = "cpu", overwrite: bool = False, max_pixels: Optional[int] = None,
                   progress: bool = True, vividness: Optional[float] = None) -> ColorizeSummary:
    """Colorize the photos named by `inputs` into `out_dir` (see the module docstring). max_pixels:
    the decompression-bomb limit (None: Pillow's; 0: none). vividness: the dial (None: the default)."""
    if max_pixels is not None and max_pixels < 0:
        raise ConfigError(f"--max-pixels {max_pixels}: give a number of pixels, or 0 for no limit")
    vividness = None if vividness is None else dial.check_vividness(vividness)
    out_dir = Path(out_dir)
    jobs, failed = collect_jobs(inputs, out_dir)
    for name, problem in failed:
        print(f"FAILED {name}: {problem}", file=sys.stderr)
    model = _check_batch(jobs, out_dir, checkpoint, render_size, device)
    note = dial.uncalibrated_note(model) if vividness is not None else None
    if note:
        print(f"note: {note}", file=sys.stderr)
    result, claimed = ColorizeSummary(out_dir, len(jobs), failed=failed), {}
    try:
        for job in tqdm(jobs, unit="photo", desc="colorize", disable=not progress or None, file=sys.stderr):
            try:
                _colorize_job(job, model, render_size, overwrite, max_pixels, vividness, claimed, result)
            except Exception as exc:  # one bad photo must not stop the batch (Ctrl-C still does)
                problem = str(exc) if isinstance(exc, cz.ImageReadError) else (
                    f"could not write the output ({exc.strerror or exc}); nothing was written"
                    if isinstance(exc, OSError) else f"unexpected error ({type(exc).__name__}: {exc})")
                failed.append((str(job.source), problem))
                tqdm.write(f"FAILED {job.source}: {problem}", file=sys.stderr)
    except KeyboardInterrupt as exc:  # outputs are written atomically: those done are whole
        signum = getattr(exc, "signum", signal.SIGINT)
        said = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        raise ColorizeInterrupted(f"interrupted: colorized {result.done} of {len(jobs)} photo(s) into {out_dir} "
                                  f"before {said}; run the same command again to do the rest", signum) from None
    return result


def _colorize_job(job: Job, model, render_size: int, overwrite: bool, max_pixels, vividness, claimed: dict,
                  result: ColorizeSummary) -> None:
    """One photo colorized and written atomically, or skipped when its output exists and not overwrite."""
    target, _ = job.target(result.out_dir)
    if claimed.setdefault(target, job) is not job:
        raise cz.ImageReadError(f"its output {target} would be the output of {claimed[target].source} too; "
                                f"colorize photos of the same name into separate folders")
    if target.exists() and not overwrite:  # before decoding: reruns are cheap
        tqdm.write(f"skipped {job.source}: {target} exists (pass --overwrite to replace it)", file=sys.stderr)
        result.skipped += 1
        return
    photo = cz.read_photo(job.source, max_pixels)
    target, fmt = job.target(result.out_dir, photo.alpha is not None)  # transparency needs PNG
    notes = []
    if photo.was_color and result.colour_inputs == 0:
        notes.append("is already in colour: it gets new colours from its gray (said once; the summary counts them)")
    result.colour_inputs += int(photo.was_color)
    if photo.frames > 1:
        notes.append(f"has {photo.frames} frames (an animation or a multi-page file); only the first is colorized")
    multiple = cz.size_multiple(model)
    asked = cz.requested_shape(*photo.luma.shape, render_size, multiple)
    shape = cz.render_shape(*photo.luma.shape, render_size, multiple)
    if shape != asked:
        notes.append(f"({photo.size[0]}x{photo.size[1]}) is worked at {shape[1]}x{shape[0]} pixels instead of "
                     f"{asked[1]}x{asked[0]}, to bound memory (at most "
                     f"{cz.MAX_RENDER_PIXELS / 1e6:.1f} megapixels, sides up to {cz.MAX_RENDER_SIDE})")
    for note in notes:
        tqdm.write(f"note: {job.source} {note}", file=sys.stderr)
    data = cz.colorized_files([photo], model, render_size, [fmt], vividness=vividness)[0]  # the scorers' path too
    if target.exists() and not overwrite:  # (a PNG for a JPEG with transparency)
        raise cz.ImageReadError(f"its output {target} exists; pass --overwrite to replace it")
    rundir.atomic_write_bytes(target, data)
    result.done += 1
