"""
# Picking the data: CamVid when it is there, synthetic streets otherwise

Every notebook and the CLI start with the same question: is CamVid on this machine?
`pick_datasets` answers it in a fixed order and says, in one printed line, what it chose:

1. an explicit `root` argument,
2. the `CAMVID_DIR` environment variable,
3. `data/CamVid`, relative to the current directory and then to the repository root
   (`seglib.paths.data_root`),
4. otherwise the procedural `SyntheticStreets` (same classes, palette and item format).

With `source="camvid"` a missing CamVid is an error (with the download hint) instead of
a fallback; with `source="synthetic"` CamVid is never looked for. Notebook
`05_camvid_data.ipynb` starts with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from seglib import paths
from seglib.data.camvid import CamVid
from seglib.data.synthetic import SyntheticStreets
from seglib.data.transforms import train_transform

__all__ = ["DataChoice", "camvid_hint", "find_camvid", "is_camvid", "pick_datasets"]



@dataclass
class DataChoice:
    """What `pick_datasets` chose: the two datasets and their class metadata."""

    name: str  # "camvid" | "synthetic"
    root: Path | None  # CamVid folder, None for synthetic scenes
    train: Dataset  # random augmentation
    val: Dataset  # deterministic, native size
    num_classes: int
    classes: list[str]
    palette: np.ndarray  # (K, 3) uint8


def is_camvid(path: Path) -> bool:
    """Whether `path` holds CamVid: a train split with labels in either layout
    (SegNet's `trainannot` or the original `train_labels`)."""
    return (path / "train").is_dir() and (
        (path / "trainannot").is_dir() or (path / "train_labels").is_dir()
    )


def _shown(path: Path) -> str:
    """`path` relative to the working directory (short, and the same on every machine)."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def _same_folder(a: Path, b: Path) -> bool:
    """Whether two paths name the same folder (relative or absolute, links resolved)."""
    return a.resolve() == b.resolve()


def camvid_hint() -> str:
    """What to do when CamVid is missing, for error messages: on Colab `ensure_camvid()`
    (downloads into the VM), elsewhere a deliberate download or `$CAMVID_DIR`."""
    target = os.path.relpath(paths.data_root() / "CamVid")
    return (
        "On Colab, run seglib.data.ensure_camvid() (downloads it into the VM). Elsewhere, "
        f'download it once with seglib.data.download_camvid("{target}") (a large archive, '
        "several hundred MB) or set CAMVID_DIR to a copy you have."
    )


def find_camvid(root: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """Where CamVid is, and how it was found: `(path, reason)`, or `(None, places tried)`.

    An explicit `root` is returned as is (checked later by `CamVid`), so that a typo is
    an error rather than a silent fallback. Its reason names where it came from when
    that is known: a root that is `$CAMVID_DIR` or `data/CamVid` (as `ensure_camvid`
    returns them) is reported as such, not as a "given path".
    """
    env = os.environ.get("CAMVID_DIR")
    local = [Path.cwd() / "data" / "CamVid", paths.data_root() / "CamVid"]
    if root is not None:
        root = Path(root)
        if env and _same_folder(root, Path(env)):
            return root, "$CAMVID_DIR"
        if any(_same_folder(root, path) for path in local):
            return root, "data/CamVid"
        return root, "given path"
    if env:
        return Path(env), "$CAMVID_DIR"
    for path in local:
        if is_camvid(path):
            return path, "data/CamVid"
    # Relative to the working directory: short, and the same on every machine
    return None, ", ".join(dict.fromkeys(os.path.relpath(p) for p in local))


def pick_datasets(
    root: str | os.PathLike | None = None,
    *,
    source: str = "auto",
    crop: tuple[int, int] | None = None,
    scale: tuple[float, float] | None = None,
    jitter: str = "light",
    train_size: int = 320,
    val_size: int = 48,
    synthetic_size: tuple[int, int] | None = None,
    seed: int = 0,
    split: str = "val",
    verbose: bool = True,
) -> DataChoice:
    """Train and validation datasets from CamVid if found, else synthetic street scenes.

    Args:
        root: CamVid folder; when given (or `$CAMVID_DIR` is set) it must be valid.
        source: "auto" (CamVid, else synthetic), "camvid" (error if not found) or
            "synthetic" (never look for CamVid).
        crop: training crop `(h, w)`; CamVid default 360x480; for synthetic scenes it
            is also the scene size unless `synthetic_size` is given.
        scale: CamVid's random scale range for training (default 0.5-2.0); e.g.
            (0.375, 0.75) trains at about half resolution.
        jitter: CamVid's colour jitter for training, a key of
            `seglib.data.transforms.JITTER` ("none", "light", "strong").
        train_size, val_size: number of synthetic scenes per split (the names of
            `TrainConfig`'s fields; CamVid's splits have their own sizes).
        synthetic_size: `(h, w)` of the synthetic scenes (default `crop` or 96x128).
        seed: seed of the synthetic scenes.
        split: which split serves as `val` ("val" or "test").
        verbose: print the one line saying which data was picked.

    Returns:
        a `DataChoice` (name, root, train, val, num_classes, classes, palette).
    """
    if source not in ("auto", "camvid", "synthetic"):
        raise ValueError(f"source must be 'auto', 'camvid' or 'synthetic', got {source!r}")
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    path, how = find_camvid(root) if source != "synthetic" else (None, "")
    if path is None and source == "camvid":
        raise FileNotFoundError(
            f"CamVid not found (looked at $CAMVID_DIR and {how}). {camvid_hint()} "
            "Or pass its folder as root."
        )
    if path is not None:
        kw: dict[str, Any] = {}
        if crop is not None or scale is not None or jitter != "light":
            kw["transform"] = train_transform(crop=crop or (360, 480), scale=scale or (0.5, 2.0),
                                              jitter=jitter)
        train = CamVid(path, "train", **kw)
        val = CamVid(path, split)
        if verbose:
            print(
                f"Data: CamVid ({train.layout} layout) from {_shown(path)} ({how}): "
                f"{len(train)} train / {len(val)} {split} images, {train.num_classes} classes"
            )
        return DataChoice("camvid", path, train, val, train.num_classes, train.classes,
                          train.palette)
    size = tuple(int(v) for v in (synthetic_size or crop or (96, 128)))
    transform = None  # the synthetic default: a random flip
    if crop is not None and tuple(crop) != size:  # a crop smaller than the scenes
        transform = train_transform(crop=crop, scale=(1.0, 1.0), jitter=False)
    train = SyntheticStreets(train_size, size=size, seed=seed, split="train",
                             transform=transform)
    val = SyntheticStreets(val_size, size=size, seed=seed, split=split)
    if verbose:
        why = "" if source == "synthetic" else f" (no CamVid found at $CAMVID_DIR or {how})"
        print(
            f"Data: synthetic street scenes{why}: {len(train)} train / {len(val)} {split} "
            f"scenes of {size[0]}x{size[1]}, seed {seed}"
        )
    return DataChoice("synthetic", None, train, val, train.num_classes, train.classes,
                      train.palette)
