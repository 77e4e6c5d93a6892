"""
# Keeping runs on Google Drive, so that a Colab run outlives its VM

A Colab session ends (idle timeout, usage limit, closed tab) and its VM forgets every
file, `runs/` with its checkpoints included. The 80-epoch GPU recipe takes hours, so
the learner must be able to `resume` in the next session. `keep_runs_on_drive()`
mounts Google Drive and points `$SEGLIB_RUNS` at a folder on it; `seglib.paths.runs_root`
reads that variable at every call, so `fit(..., out=runs_root() / ...)`,
`python -m seglib.train` and `resume` all write to and read from Drive afterwards.
Off Colab it changes nothing: runs stay in `runs_root()`.

Notebooks 06 and 07 call it by default on Colab (`KEEP_RUNS_ON_DRIVE = True`; the cell
skips the call elsewhere, where there is nothing to mount): without it an 80-epoch run
is lost when Colab disconnects, and 07, which runs on a VM of its own, finds the
checkpoints 06 trained only on Drive. Setting the flag to False keeps runs on the VM.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from seglib import paths

__all__ = ["keep_runs_on_drive"]


def keep_runs_on_drive(
    folder: str = "seglib/runs", *, mount_point: str | os.PathLike = "/content/drive"
) -> Path | None:
    """On Colab, mount Google Drive and send runs to `MyDrive/<folder>`; else do nothing.

    Args:
        folder: where the runs go, relative to the root of "My Drive" (created).
        mount_point: where Drive is mounted (Colab's usual place; tests redirect it).

    Returns:
        the runs folder on Drive, now `$SEGLIB_RUNS` and `seglib.paths.runs_root()`;
        None off Colab (one printed line says where runs stay).
    """
    if "google.colab" not in sys.modules:
        print(f"Not on Colab: runs stay in {paths.runs_root()}")
        return None
    if Path(folder).is_absolute():
        raise ValueError(f"folder must be relative to My Drive, got {folder!r}")
    # Optional dependency: google.colab exists only on Colab (asks the user for access)
    from google.colab import drive

    drive.mount(str(mount_point))
    my_drive = Path(mount_point) / "MyDrive"
    if not my_drive.is_dir():  # never write "Drive" runs to the VM's disk by mistake
        raise RuntimeError(f"Google Drive is not mounted: {my_drive} does not exist")
    target = my_drive / folder
    target.mkdir(parents=True, exist_ok=True)
    os.environ["SEGLIB_RUNS"] = str(target)
    print(f"Runs go to Google Drive: {target} (SEGLIB_RUNS); resume works in a new session")
    return target
