"""Shared fixtures: tiny CamVid folders written with PIL (both layouts), a machine without
CamVid, model checks."""

from __future__ import annotations

import io
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

import seglib.paths

matplotlib.use("Agg")  # headless figures in every test

# a small 32-class-style class_dict: Void first, as in the real CamVid file
CLASS_DICT = [
    ("Animal", 64, 128, 64),
    ("Void", 0, 0, 0),
    ("Road", 128, 64, 128),
    ("Sky", 128, 128, 128),
]


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as PNG (mode L for 2-D, RGB for 3-D)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def make_camvid(tmp_path: Path) -> Callable[..., Path]:
    """Build a tiny CamVid folder; returns its root.

    `make_camvid(layout="segnet"|"colour", split="train", n=3, size=(h, w), seed=0)`
    writes random RGB images and random labels (SegNet: values 0..11, 11 = void;
    colour: colours from CLASS_DICT) named frame0..frameN.
    """

    def build(
        layout: str = "segnet",
        split: str = "train",
        n: int = 3,
        size: tuple[int, int] = (12, 16),
        seed: int = 0,
        root: Path | None = None,
    ) -> Path:
        rng = np.random.default_rng(seed)
        root = root or tmp_path / f"camvid_{layout}"
        h, w = size
        for i in range(n):
            write_png(root / split / f"frame{i}.png", rng.integers(0, 256, (h, w, 3)))
            if layout == "segnet":
                write_png(root / f"{split}annot" / f"frame{i}.png", rng.integers(0, 12, (h, w)))
            else:
                colours = np.array([c[1:] for c in CLASS_DICT], dtype=np.uint8)
                write_png(
                    root / f"{split}_labels" / f"frame{i}_L.png",
                    colours[rng.integers(0, len(colours), (h, w))],
                )
        if layout != "segnet":
            lines = ["name,r,g,b"] + [",".join(map(str, c)) for c in CLASS_DICT]
            (root / "class_dict.csv").write_text("\n".join(lines) + "\n")
        return root

    return build


@pytest.fixture
def no_camvid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $CAMVID_DIR, an empty working directory, and no data/CamVid in the repository."""
    monkeypatch.delenv("CAMVID_DIR", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(seglib.paths, "REPO_ROOT", tmp_path / "repo")
    return work


@pytest.fixture
def fake_colab(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Pretend to run on Colab: a `google.colab` module in `sys.modules` whose
    `drive.mount(mountpoint)` creates `<mountpoint>/MyDrive`; returns the mount calls."""
    mounts: list[str] = []

    def mount(mountpoint: str, force_remount: bool = False) -> None:
        Path(mountpoint, "MyDrive").mkdir(parents=True, exist_ok=True)
        mounts.append(mountpoint)

    drive = types.ModuleType("google.colab.drive")
    drive.mount = mount
    colab = types.ModuleType("google.colab")
    colab.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    return mounts


@pytest.fixture
def not_colab(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure no `google.colab` module is loaded (a laptop)."""
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


@pytest.fixture
def camvid_dir() -> Path:
    """The real CamVid (SegNet layout) from $CAMVID_DIR; skip the test when unset."""
    value = os.environ.get("CAMVID_DIR")
    if not value:
        pytest.skip("CAMVID_DIR is not set")
    root = Path(value)
    if not root.is_dir():
        pytest.skip(f"CAMVID_DIR={value} is not a folder")
    return root


@pytest.fixture
def assert_state_dict_round_trip() -> Callable:
    """Check that `make()`'s state_dict, saved and loaded into a fresh `make()`, gives
    identical outputs on a random input of `size`."""

    def check(make: Callable[[], torch.nn.Module], size: tuple[int, int]) -> None:
        torch.manual_seed(0)
        net = make().eval()
        buf = io.BytesIO()
        torch.save(net.state_dict(), buf)
        buf.seek(0)
        torch.manual_seed(1)  # a differently initialised copy
        other = make().eval()
        other.load_state_dict(torch.load(buf, weights_only=True))
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            assert torch.equal(net(x), other(x))

    return check
