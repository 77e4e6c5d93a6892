"""DDP on CPU: two gloo processes on loopback train a tiny net with seglib's fit."""

import os
import socket

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

WORLD = 2


class TinyNet(nn.Module):
    def __init__(self, k=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, k, 1)

    def forward(self, x):
        return self.conv2(F.relu(self.bn(self.conv1(x))))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    from seglib.engine import TrainConfig, fit
    from seglib.engine import distributed as ddp

    device = ddp.init_from_env("cpu")
    try:
        g = torch.Generator().manual_seed(0)
        X = torch.randn(32, 3, 8, 8, generator=g)
        Y = X.argmax(1)
        data = TensorDataset(X, Y)
        torch.manual_seed(rank)  # different init per rank: DDP must broadcast rank 0's
        net = TinyNet()
        cfg = TrainConfig(model="tiny", num_classes=3, epochs=2, lr=0.1, verbose=False)
        hist = fit(net, DataLoader(data, batch_size=4, shuffle=True),
                   DataLoader(data, batch_size=4), cfg, out=out, device=device,
                   animate=False)
        torch.save(net.state_dict(), os.path.join(out, "..", f"rank{rank}.pt"))
        hist.to_csv(os.path.join(out, "..", f"hist{rank}.csv"), index=False)
    finally:
        ddp.cleanup()


@pytest.mark.slow
def test_two_cpu_processes_stay_in_sync_and_write_one_checkpoint(tmp_path):
    out = tmp_path / "run"
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    w0 = torch.load(tmp_path / "rank0.pt")
    w1 = torch.load(tmp_path / "rank1.pt")
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    h0, h1 = pd.read_csv(tmp_path / "hist0.csv"), pd.read_csv(tmp_path / "hist1.csv")
    cols = ["train_loss", "val_loss", "val_pixel_acc", "val_miou"]
    pd.testing.assert_frame_equal(h0[cols], h1[cols])  # metrics all-reduced
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.csv"]
    assert len(pd.read_csv(out / "metrics.csv")) == 2  # one writer, not two
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2
    for k in w0:
        assert torch.equal(ckpt["model"][k], w0[k]), k
    assert h0["val_miou"].iloc[-1] > 0.3
    # one RNG state per rank, and they differ (each rank was seeded with seed + rank)
    assert isinstance(ckpt["rng"], list) and len(ckpt["rng"]) == WORLD
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    assert ckpt["rng"][0]["numpy"][1] != ckpt["rng"][1]["numpy"][1]


def test_sync_bn_on_cpu_is_refused_clearly(monkeypatch):
    from seglib.engine import distributed as ddp

    monkeypatch.setattr(ddp, "is_distributed", lambda: True)
    with pytest.raises(ValueError, match="SyncBatchNorm is GPU-only"):
        ddp.wrap_model(TinyNet(), torch.device("cpu"), sync_bn=True)
    monkeypatch.setattr(ddp, "is_distributed", lambda: False)
    net = TinyNet()
    assert ddp.wrap_model(net, torch.device("cpu"), sync_bn=True) is net  # single process
