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

Used by `seglib.engine.trainer.fit` (so notebooks are protected too) and, earlier
still, by `python -m seglib.train`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "RUN_FILES",
    "RunExistsError",
    "check_run_folder",
    "check_writable_folder",
    "clear_run",
    "run_files",
]

#: the files a training run writes into its folder
RUN_FILES = ("last.pt", "best.pt", "metrics.csv")


class RunExistsError(FileExistsError):
    """A fresh run would replace the run already in its folder (the message names the
    files and the ways out: resume, overwrite, another folder)."""


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
            and (name != "metrics.csv" or _holds_rows(out / name))]  # fmt: skip


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
                         "output folder (resume) or replace it (overwrite), not both")  # fmt: skip
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
