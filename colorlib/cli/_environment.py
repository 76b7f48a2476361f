"""The machine refusing an operation (a full or read-only disk, a path too long, a permission, a
closed output pipe) as one line naming the path and what to do; no PyTorch here."""
from __future__ import annotations

import contextlib
import errno
import os
import sys
import warnings

ADVICE = {errno.ENOSPC: "the disk is full: free some space, or write to another disk, and run the command again",
          errno.EDQUOT: "the disk quota is used up: free some space, or write elsewhere, and run the command again",
          errno.EROFS: "the file system is read-only: choose a location you can write to",
          errno.EACCES: "permission denied: choose a location you may use, or change its permissions",
          errno.EPERM: "the operation is not permitted there: choose another location, or change its permissions",
          errno.ENAMETOOLONG: "the path is longer than the file system allows: choose a shorter name or folder",
          errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
          errno.EISDIR: "it is a folder where a file is needed: give a file name",
          errno.EFBIG: "the file is larger than this file system allows: write it to another file system",
          errno.ENOENT: "it does not exist (moved or deleted while the command ran?): check the path and try again"}


class PartialFailure(Exception):
    """A command stopped by an error after some of its work was kept; the message says what (exit 1)."""


def os_error_line(exc: OSError) -> str:
    """'PATH: what the system said (ERRNO); what to do', for any OSError."""
    if isinstance(exc, BrokenPipeError):
        return "the output pipe was closed before the command finished writing to it; its files are kept"
    where = " -> ".join(os.fsdecode(p) for p in (exc.filename, exc.filename2) if p is not None)
    code = errno.errorcode.get(exc.errno or -1)
    line = (f"{where}: " if where else "") + (exc.strerror or str(exc) or type(exc).__name__)
    line += f" ({code})" if code else ""
    return line + (f"; {ADVICE[exc.errno]}" if exc.errno in ADVICE else "")


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning for colorlib's own warnings: "warning: ..." where something is left out (a
    damaged file), "note: ..." where nothing is lost (a repaired one); each message once per command."""
    if not category.__module__.startswith("colorlib"):
        return SHOWWARNING(message, category, filename, lineno, file, line)
    text = f"{'warning' if category.__name__ == 'RunDirWarning' else 'note'}: {message}"
    if text not in SHOWN:
        SHOWN.add(text)
        say(text)


SHOWWARNING, SHOWN = warnings.showwarning, set()


def silence_stdout() -> None:
    """After a broken pipe, standard output goes to /dev/null so the interpreter's last flush cannot fail again."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def say(line: str) -> None:
    """One line on standard error; nothing where standard error itself is gone."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)
