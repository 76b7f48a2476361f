"""What the command line says when the machine refuses an operation: a full or read-only disk, a
path too long or through a file, a permission, a file that vanished, a closed output pipe, a
terminal whose encoding cannot show a path. One line naming the path and what to do; no PyTorch here.
"""
from __future__ import annotations

import errno
import os
import sys

# errno name -> what to do about it (names missing on a platform are left out)
_ADVICE = {
    "ENOSPC": "the disk is full: free some space, or write to another disk, and run the command again",
    "EDQUOT": "the disk quota is used up: free some space, or write elsewhere, and run the command again",
    "EFBIG": "the file is larger than this file system allows: write it to another file system",
    "EROFS": "the file system is read-only: choose a location you can write to",
    "ENAMETOOLONG": "the path is longer than the file system allows: choose a shorter name or folder",
    "ENOTDIR": "a part of the path is a file, not a folder: choose another path",
    "EISDIR": "it is a folder where a file is needed: give a file name",
    "EACCES": "permission denied: choose a location you may use, or change its permissions",
    "EPERM": "the operation is not permitted there: choose another location, or change its permissions",
    "ENOENT": "it does not exist (was it moved or deleted while the command ran?): check the path and run "
              "the command again",
    "EIO": "the device reported an input/output error: check the disk, then run the command again",
    "EMFILE": "too many files are open: raise the limit (ulimit -n) and run the command again",
    "ENFILE": "the system has too many files open: close some programs and run the command again",
    "EEXIST": "something is already there: choose another path",
}
ADVICE = {getattr(errno, name): text for name, text in _ADVICE.items() if hasattr(errno, name)}


class PartialFailure(Exception):
    """A command stopped by an error after some of its work was done and kept; the message says
    what went wrong, what is kept and how to go on (exit status 1)."""


def os_error_line(exc: OSError) -> str:
    """'PATH: what the system said (ERRNO): what to do', for any OSError."""
    if isinstance(exc, BrokenPipeError):
        return ("the output pipe was closed before the command finished writing to it (a reader such as "
                "`| head` stopped early); what the command wrote to files is kept")
    where = exc.filename
    if exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}"
    said = exc.strerror or str(exc) or type(exc).__name__
    code = errno.errorcode.get(exc.errno) if exc.errno is not None else None
    advice = ADVICE.get(exc.errno, "")
    if isinstance(where, (bytes, os.PathLike)):
        where = os.fsdecode(where)
    line = f"{where}: " if where is not None else ""
    line += said + (f" ({code})" if code else "")
    return line + (f"; {advice}" if advice else "")


def encode_error_line(exc: UnicodeEncodeError) -> str:
    bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else ""
    return (f"cannot write {bad!r} in the {exc.encoding} encoding of this terminal or file: set "
            f"PYTHONIOENCODING=utf-8 (or a UTF-8 locale, e.g. LANG=C.UTF-8) and run the command again")


def tolerant_stdout() -> None:
    """Standard output that writes what its encoding cannot show as backslash escapes (as Python's
    standard error always does), so that a path printed under PYTHONIOENCODING=ascii, or a file
    name that is not valid text, never fails a command after its work is done."""
    stream = sys.stdout
    if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # already closed, or not a real text stream
            pass


def silence_stdout() -> None:
    """After a broken pipe: standard output goes nowhere, so that the final flush at exit does not
    fail a second time (Python's "Exception ignored ... BrokenPipeError")."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def say(line: str) -> None:
    """One line on standard error; nothing where standard error itself is gone (a closed terminal)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
