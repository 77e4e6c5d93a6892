"""
# The run folder: nothing lost, nothing silent

A training run writes `last.pt`, `best.pt` and `metrics.csv` into its output folder. A
*fresh* run into a folder that already holds a run would truncate the old
`metrics.csv` at once and replace the old `best.pt` by a (possibly worse) one, so it is
refused unless the caller says which it wants: continue the old run (`resume=True`,
`--resume`) or replace it (`overwrite=True`, `--overwrite`). The checks run before any
data is read or any file written, so a mistake costs no training time:

- the folder must be a folder (not a file) and writable;
- the run files that would be lost are named in the message.

One run per folder: `run_lock` holds an exclusive lock on the folder for as long as a
run trains into it (two runs into one folder would interleave `metrics.csv` and
overwrite each other's checkpoints). The lock is the OS's lock on a file `.lock` that
holds the owner's pid: the OS releases it when the process ends, however it ends, so a
lock left by a killed run is taken over, never a reason to stop. Holding the lock, a
run also removes the temporary files a killed save left (`.last.pt.*.tmp`).

Used by `seglib.engine.training_loop.fit` (so notebooks are protected too) and, earlier
still, by `python -m seglib.train`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

__all__ = [
    "LOCK_FILE",
    "RUN_FILES",
    "RunExistsError",
    "RunLockedError",
    "check_run_folder",
    "check_writable_folder",
    "clear_run",
    "run_files",
    "run_lock",
]

#: the files a training run writes into its folder
RUN_FILES = ("last.pt", "best.pt", "metrics.csv")
#: the lock file of a folder a run is training into (holds the run's pid)
LOCK_FILE = ".lock"


class RunExistsError(FileExistsError):
    """A fresh run would replace the run already in its folder (the message names the
    files and the ways out: resume, overwrite, another folder)."""


class RunLockedError(BlockingIOError):
    """Another run is training into the same folder (the message names its pid)."""


def _holds_rows(csv: Path) -> bool:
    """True if a metrics CSV has at least one row below its header (a header-only file,
    what a run stopped in its first epoch leaves, holds nothing to lose)."""
    with open(csv, "rb") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    return len(lines) > 1


def run_files(out: str | os.PathLike) -> list[str]:
    """The run files in `out` that hold something (`RUN_FILES` order)."""
    out = Path(out)
    return [name for name in RUN_FILES if (out / name).is_file()
            and (name != "metrics.csv" or _holds_rows(out / name))]


def _existing_ancestor(path: Path) -> Path:
    """`path` itself or the nearest of its parents that exists."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_folder(out: str | os.PathLike) -> None:
    """Raise unless `out` is (or can be created as) a folder this process may write to."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(
            f"output folder {out} is an existing file, not a folder: choose another folder"
        )
    base = _existing_ancestor(out)
    if not base.is_dir():
        raise NotADirectoryError(f"cannot create output folder {out}: {base} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        where = "it" if base == out.absolute() else f"{base}"
        raise PermissionError(
            f"cannot write to output folder {out}: no write permission on {where}; "
            "choose another folder"
        )
    csv = out / "metrics.csv"
    if csv.is_file() and not os.access(csv, os.W_OK):
        raise PermissionError(f"cannot write to {csv}: no write permission")


def check_run_folder(out: str | os.PathLike, *, resume: bool = False, overwrite: bool = False
                     ) -> None:
    """Refuse, before anything is read or written, a run that would lose files.

    Args:
        out: the run's output folder (created later by the trainer if missing).
        resume: continue the run in `out` (its files are extended, not replaced).
        overwrite: a fresh run may replace the run in `out` (see `clear_run`).

    Raises:
        ValueError: both `resume` and `overwrite`.
        FileNotFoundError: `resume` without an `out/last.pt`.
        NotADirectoryError, PermissionError: `out` is a file or not writable.
        RunExistsError: a fresh run (no `resume`, no `overwrite`) into a folder
            holding a run; the message lists the files that would be lost.
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue the run in the "
                         "output folder (resume) or replace it (overwrite), not both")
    if resume and not (Path(out) / "last.pt").is_file():
        raise FileNotFoundError(f"no checkpoint at {Path(out) / 'last.pt'} to resume from")
    check_writable_folder(out)
    found = [] if resume or overwrite else run_files(out)
    if found:
        raise RunExistsError(
            f"{out} already holds a training run ({', '.join(found)}), which a fresh run "
            "would replace: continue it with --resume (resume=True), replace it with "
            "--overwrite (overwrite=True), or choose another output folder"
        )


def clear_run(out: str | os.PathLike) -> list[str]:
    """Delete the run files of `out` (an explicit overwrite), so that a new run never
    mixes with the old one's `best.pt` if it stops early; returns the names removed.
    Other files in the folder are left alone."""
    out = Path(out)
    removed = [name for name in RUN_FILES if (out / name).is_file()]
    for name in removed:
        (out / name).unlink()
    return removed


def _try_lock(fd: int) -> bool:
    """Take the OS's exclusive lock on the open file `fd` without waiting."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _owner(path: Path) -> str:
    """The pid written in a lock file, as text ("unknown" if unreadable)."""
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


_held: dict[Path, int] = {}  # folders this process holds, and how many holders


@contextlib.contextmanager
def run_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold the run lock of folder `out` (created if missing) for the `with` block.

    Re-entrant within a process (the command line locks before reading data, then
    `fit` again). On entry the temporary files of interrupted saves are removed; a
    folder made here and still empty on exit is removed again.

    Raises:
        RunLockedError: another live process holds the lock; the message names its pid.
    """
    out = Path(out)
    key = out.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield out
        finally:
            _held[key] -= 1
        return
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise RunLockedError(
                f"{out} is in use by another training run (pid {_owner(path)}): wait for it "
                "to finish or stop it, or choose another output folder"
            )
        try:  # the holder before us may have removed the file meanwhile: lock the new one
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        for name in RUN_FILES:  # what saves killed halfway left (atomic_save's names)
            for tmp in out.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
        _held[key] = 1
        yield out
    finally:
        _held.pop(key, None)
        if fcntl is not None:  # removed while locked: a run waiting on it then locks anew
            path.unlink(missing_ok=True)
        os.close(fd)
        if fcntl is None:  # Windows removes no open file
            with contextlib.suppress(OSError):
                path.unlink()
        if created:  # a run that stopped before writing anything leaves no empty folder
            with contextlib.suppress(OSError):
                out.rmdir()
