"""
# Making sure CamVid is there: download on Colab, never by surprise elsewhere

A learner on Colab starts from an empty VM at every session: the notebook has to fetch
CamVid itself, or the GPU recipe has nothing to train on. On a laptop the opposite is
right: a large download (the archive is several hundred MB) must be a choice, not a
side effect of running a cell. `ensure_camvid()` does both:

1. it looks where `find_camvid` looks (a given `root`, `$CAMVID_DIR`, `data/CamVid`)
   and returns the folder when it holds CamVid (either layout);
2. on Colab (`"google.colab" in sys.modules`), when nothing was found, it downloads the
   SegNet layout with `seglib.data.download.download` (progress bar, atomic rename)
   into `seglib.paths.data_root() / "CamVid"`, i.e. `./data/CamVid` in the VM;
3. elsewhere it raises `FileNotFoundError` saying where it looked and the command that
   downloads the data, unless `download=True` asks for the download.

A given `root` or `$CAMVID_DIR` that holds no CamVid is an error (a typo must not
start a download somewhere else), except with `download=True`, which fills that
folder. Used in notebooks 05-07 (the Colab path).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from seglib import paths
from seglib.data.download import DEFAULT_URL
from seglib.data.download import download as download_camvid
from seglib.data.source import camvid_hint, find_camvid, is_camvid

__all__ = ["ensure_camvid"]


def ensure_camvid(
    root: str | os.PathLike | None = None,
    *,
    download: bool | None = None,
    progress: bool = True,
    url: str = DEFAULT_URL,
    timeout: float = 60.0,
) -> Path:
    """The CamVid folder, downloaded first when that is the right thing to do.

    Args:
        root: CamVid folder to use; when given it must hold CamVid (or `download=True`
            fills it). Otherwise `$CAMVID_DIR`, then `data/CamVid`, as `find_camvid`.
        download: None (default) downloads only on Colab; True downloads wherever CamVid
            is missing (into `root`, `$CAMVID_DIR` or `data/CamVid`); False never does.
        progress: show a tqdm progress bar while downloading.
        url, timeout: passed to `seglib.data.download_camvid`.

    Returns:
        the folder holding CamVid (`train/`, `trainannot/` or `train_labels/`, ...).

    Raises:
        FileNotFoundError: CamVid is missing and no download was made; the message says
            where seglib looked and how to get the data.
    """
    fetch = {"url": url, "progress": progress, "timeout": timeout}
    path, how = find_camvid(root)
    if path is not None:  # given root, $CAMVID_DIR, or a data/CamVid that holds CamVid
        if is_camvid(path):
            return path
        if download:
            return download_camvid(path, **fetch)
        raise FileNotFoundError(
            f"no CamVid in {path} ({how}): expected train/ with trainannot/ (SegNet layout) "
            f"or train_labels/ (colour layout). {camvid_hint()}"
        )
    on_colab = "google.colab" in sys.modules
    target = paths.data_root() / "CamVid"
    if download or (download is None and on_colab):
        print(f"CamVid not found (looked at $CAMVID_DIR and {how}): downloading it to {target}")
        return download_camvid(target, **fetch)
    rel = os.path.relpath(target)
    command = f'from seglib.data import download_camvid; download_camvid("{rel}")'
    raise FileNotFoundError(
        f"CamVid not found (looked at $CAMVID_DIR and {how}). Off Colab, seglib does not "
        "download it unasked (the archive is several hundred MB). Download it once with\n"
        f"    {command}\n"
        "or call ensure_camvid(download=True), or set CAMVID_DIR to a copy you have."
    )
