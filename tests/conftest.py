"""Shared fixtures: tiny CamVid folders written with PIL (both layouts), a machine without
CamVid, model checks, finished tiny runs of the train command line. Helper functions are
in helpers.py."""

from __future__ import annotations

import io
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import seglib.paths
from seglib import train as train_cli
from seglib.models import CCNet, rcca_attention
from tests.helpers import CLASS_DICT, CLI_ARGS, RUN_ARGS, copy_run, tiny_ccnet, write_png

matplotlib.use("Agg")  # headless figures in every test

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


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A finished one-epoch run of the train command line, shared by every test file
    (copy it before changing it: `tests.helpers.copy_run`)."""
    out = tmp_path_factory.mktemp("cli_failures") / "run"
    train_cli.main([*RUN_ARGS, "--out", str(out)])
    return out


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """`(folder, history)` of a one-epoch run of a ResNet-18 CCNet on 32x48 synthetic crops
    (read it only)."""
    out = tmp_path_factory.mktemp("cli")
    hist = train_cli.main([*CLI_ARGS, "--epochs", "1", "--out", str(out)])
    return out, hist


@pytest.fixture
def truncated(finished_run, tmp_path) -> Path:
    """The run with its checkpoints cut in half (a copy interrupted halfway)."""
    out = copy_run(finished_run, tmp_path / "cut")
    for name in ("last.pt", "best.pt"):
        data = (out / name).read_bytes()
        (out / name).write_bytes(data[: len(data) // 2])
    return out


@pytest.fixture(scope="module")
def net64() -> tuple[CCNet, torch.Tensor, dict]:
    """Float64 tiny CCNet, a 64x64 input (8x8 feature map) and its recorded attention."""
    net = tiny_ccnet().double()
    torch.manual_seed(1)
    image = torch.randn(1, 3, 64, 64, dtype=torch.float64)  # (1, 3, 64, 64)
    return net, image, rcca_attention(net, image)


@pytest.fixture
def close_figures():
    """Close every figure after the test (`pytestmark = pytest.mark.usefixtures(...)`)."""
    yield
    plt.close("all")
