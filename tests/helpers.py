"""What several test files share: small models, data, command-line arguments and checks
(`from tests.helpers import ...`; the fixtures are in conftest.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seglib import cli
from seglib.engine import TrainConfig
from seglib.models import CCNet
from seglib.models.attention import criss_cross_mask

# --- the repository's scripts and notebooks (tools/, benchmarks/, notebooks/) ---

ROOT = Path(__file__).resolve().parents[1]  # the repository


def load_script(relative: str, name: str) -> ModuleType:
    """Import a script that is not part of seglib (`tools/sync_colab.py`, ...) as module
    `name`, registered in `sys.modules` (dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def read_notebook(path: Path) -> dict:
    """A notebook file as the JSON dict nbformat writes."""
    return json.loads(path.read_text(encoding="utf-8"))


def cell_source(cell: dict) -> str:
    """A cell's source as one string (nbformat stores a list of lines)."""
    return "".join(cell["source"])


# --- tiny CamVid files (conftest.make_camvid, data/) ---


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


# --- the command lines on a tiny synthetic run (test_train.py, test_cli.py, engine/, ...) ---


# one epoch of a ResNet-18 CCNet on 8 scenes of 32x32: a few seconds on one core
RUN_ARGS = ["--data", "synthetic", "--epochs", "1", "--train-size", "8", "--val-size", "4",
            "--synthetic-size", "32x32", "--crop", "32x32", "--batch-size", "4",
            "--device", "cpu", "--workers", "0"]


RUN_FILES = ("last.pt", "best.pt", "metrics.csv")


# a real ResNet-18 CCNet on synthetic scenes (test_train.py, test_evaluate.py)
CLI_ARGS = ["--data", "synthetic", "--crop", "32x48", "--batch-size", "2", "--train-size", "4",
            "--val-size", "2", "--device", "cpu", "--workers", "0"]


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m module args` in a fresh process (exit status and stderr are the point)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, env=env, timeout=300)


def assert_one_line_error(stderr: str, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def cli_exit(main, argv, capsys) -> str:
    """Run a command line's main through `seglib.cli.run` (what `__main__` does): it
    must exit with status 2 and one error line; returns that line."""
    with pytest.raises(SystemExit) as info:
        cli.run(lambda: main(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert_one_line_error(err)
    return err.strip()


def bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"empty": folder / "empty.pth", "garbage": folder / "garbage.pth",
             "pickled": folder / "pickled.pth"}
    files["empty"].write_bytes(b"")
    files["garbage"].write_text("this is not a checkpoint\n" * 20)
    # a pickled Python object: what the safe loader refuses (with a hint not to give)
    files["pickled"].write_bytes(pickle.dumps(Path("an object"), protocol=2))
    return files


# --- fit on a 1x1 convolution ---


class Tiny(nn.Module):
    """A 1x1 convolution: fit-level tests in milliseconds."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(3, k, 1)

    def forward(self, x):
        return self.conv(x)


def tiny_loaders():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(8, 3, 4, 4, generator=g)
    data = TensorDataset(X, X.argmax(1))
    return DataLoader(data, batch_size=4), DataLoader(data, batch_size=4)


TINY_CFG = TrainConfig(model="tiny", num_classes=3, epochs=1, lr=0.05, verbose=False)


class StopsIn(Tiny):
    """Raises KeyboardInterrupt (what Ctrl-C raises) at its `n`-th training forward
    (never for n = 0)."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.n:
                raise KeyboardInterrupt
        return super().forward(x)


# --- fit on a small conv net with dropout (engine/: training_loop, run_state, optimization) ---


K = 3


class TinyNet(nn.Module):
    """Two convs with dropout (so resume must restore the RNG to be exact)."""

    def __init__(self, k=K, aux=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout2d(0.2)
        self.conv2 = nn.Conv2d(8, k, 1)
        self.aux = nn.Conv2d(3, k, 1) if aux else None

    def forward(self, x):
        y = self.conv2(self.drop(F.relu(self.bn(self.conv1(x)))))
        if self.training and self.aux is not None:
            return y, self.aux(x)
        return y


def make_data(n=24, h=8, w=10, seed=0):
    """Label = the brightest of the first K channels; a few void pixels."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, h, w, generator=g)
    Y = X[:, :K].argmax(1)
    Y[torch.rand(n, h, w, generator=g) < 0.05] = 255
    return TensorDataset(X, Y)


def loaders(batch_size=4):
    train = DataLoader(make_data(24, seed=0), batch_size=batch_size, shuffle=True)
    val = DataLoader(make_data(8, seed=1), batch_size=batch_size)
    return train, val


FIT_CFG = TrainConfig(model="tiny", num_classes=K, epochs=2, lr=0.05, verbose=False, device="cpu")


class Exploding(TinyNet):
    """Returns NaN logits from the 5th training forward on (epoch 2 with 6 steps/epoch)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        y = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls >= 8:
                y = y * float("nan")
        return y


# --- a resnet18 CCNet with its attention gate open (models/test_rcca_probes.py, course/) ---


def tiny_ccnet(gamma: float = 0.7, recurrence: int = 2) -> CCNet:
    """resnet18 CCNet with random weights and a non-zero gamma (so pass 2 sees other
    features than pass 1: with the initial gamma = 0 both passes would be equal)."""
    torch.manual_seed(0)
    net = CCNet(5, backbone="resnet18", recurrence=recurrence, aux=False)
    with torch.no_grad():
        net.head.cca.gamma.fill_(gamma)
    return net.eval()


def dense_attention(cca: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax of the criss-cross-masked Q^T K: the pass's (hw, hw) attention matrix."""
    _, _, h, w = x.shape
    q = cca.query_conv(x).flatten(2)[0]  # (C', hw)
    k = cca.key_conv(x).flatten(2)[0]  # (C', hw)
    energy = (q.T @ k).masked_fill(~criss_cross_mask(h, w), float("-inf"))  # (hw, hw)
    return F.softmax(energy, dim=-1)  # (hw, hw), row i = where pixel i looks
