"""seglib.engine.training_loop: fit on tiny stand-in models and in-memory data (CPU, a few
seconds)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from seglib.engine.checkpoint import load_checkpoint
from seglib.engine.training_loop import METRIC_COLUMNS, NonFiniteLossError, fit, segmentation_loss
from tests.helpers import FIT_CFG as CFG
from tests.helpers import (
    RUN_FILES,
    TINY_CFG,
    Exploding,
    K,
    StopsIn,
    Tiny,
    TinyNet,
    loaders,
    make_data,
    tiny_loaders,
)


def test_fit_learns_and_writes_csv_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    train, val = loaders()
    hist = fit(TinyNet(), train, val, CFG, out=tmp_path, animate=False, epochs=4, lr=0.2)
    assert list(hist.columns) == METRIC_COLUMNS and len(hist) == 4
    assert hist["val_miou"].iloc[-1] > 0.7  # argmax of channels is easy to learn
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]
    assert (hist["lr"].diff().dropna() < 0).all()  # poly decay
    csv = pd.read_csv(tmp_path / "metrics.csv")
    pd.testing.assert_frame_equal(csv, hist, check_dtype=False)
    last = load_checkpoint(tmp_path / "last.pt")
    best = load_checkpoint(tmp_path / "best.pt")
    assert last["epoch"] == 4 and last["config"]["num_classes"] == K
    assert best["best_miou"] == pytest.approx(hist["val_miou"].max())
    assert {"torch", "numpy", "python", "cuda"} <= set(last["rng"])
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_aux_output_uses_weighted_aux_loss(tmp_path):
    torch.manual_seed(0)
    main, aux = torch.randn(2, K, 4, 5), torch.randn(2, K, 4, 5)
    y = torch.randint(0, K, (2, 4, 5))
    y[0, 0, 0] = 255
    expected = F.cross_entropy(main, y, ignore_index=255) + 0.4 * F.cross_entropy(
        aux, y, ignore_index=255
    )
    assert segmentation_loss((main, aux), y).item() == pytest.approx(expected.item())
    train, val = loaders()
    hist = fit(TinyNet(aux=True), train, val, CFG, animate=False, epochs=1)
    assert math.isfinite(hist["val_miou"].iloc[0])


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    train, val = loaders()  # 6 steps per epoch -> call 8 is epoch 2, step 2
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 2/6"):
        fit(Exploding(), train, val, CFG, out=tmp_path, animate=False, epochs=3)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_bad_arguments():
    train, val = loaders()
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        fit(TinyNet(), train, val, CFG, animate=False, learning_rate=0.1)
    with pytest.raises(ValueError, match="needs out"):
        fit(TinyNet(), train, val, CFG, animate=False, resume=True)
    with pytest.raises(ValueError, match="fp16"):
        fit(TinyNet(), train, val, CFG, animate=False, amp="fp16")
    with pytest.raises(FileNotFoundError):
        fit(TinyNet(), train, val, CFG, out="/nonexistent/x", resume=True, animate=False)


def test_animate_draws_d2l_curves(capsys):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    pytest.importorskip("d2l")
    torch.manual_seed(0)
    train, val = loaders()
    hist = fit(TinyNet(), train, val, CFG, animate=True, epochs=2)
    text = capsys.readouterr().out
    assert "images/sec on cpu" in text and f"val mIoU {hist['val_miou'].iloc[-1]:.3f}" in text
    import matplotlib.pyplot as plt

    lines = plt.gcf().axes[0].get_lines()  # the Animator's figure
    assert [len(line.get_xdata()) for line in lines] == [2 * 5, 2, 2, 2]  # 5 loss points/epoch
    assert list(lines[1].get_ydata()) == pytest.approx(list(hist["val_loss"]))
    assert list(lines[3].get_ydata()) == pytest.approx(list(hist["val_miou"]))
    plt.close("all")


def test_a_resumed_run_plots_the_earlier_epochs_first(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    pytest.importorskip("d2l")
    import matplotlib.pyplot as plt

    torch.manual_seed(0)
    train, val = loaders()
    net = TinyNet()
    fit(net, train, val, CFG, out=tmp_path, animate=False, epochs=3,
        callback=lambda row: row["epoch"] == 2)  # "interrupted" after epoch 2
    plt.close("all")
    hist = fit(net, train, val, CFG, out=tmp_path, resume=True, animate=True, epochs=3)
    loss, val_loss, _, miou = plt.gcf().axes[0].get_lines()
    assert list(miou.get_xdata()) == [1, 2, 3]  # a continuation, not a new curve
    assert list(miou.get_ydata()) == pytest.approx(list(hist["val_miou"]))
    assert list(loss.get_xdata())[:2] == [1, 2] and len(loss.get_xdata()) == 2 + 5
    plt.close("all")


def test_an_all_void_batch_gives_zero_loss_and_does_not_stop_training():
    torch.manual_seed(0)
    main = torch.randn(2, K, 4, 5, requires_grad=True)
    y = torch.full((2, 4, 5), 255, dtype=torch.long)
    loss = segmentation_loss(main, y, weight=torch.ones(K))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(main.grad).all()
    data = make_data(8, seed=2)
    data.tensors[1][:4] = 255  # the first training batch has no labelled pixel
    train = DataLoader(data, batch_size=4)
    hist = fit(TinyNet(), train, DataLoader(make_data(4, seed=1), batch_size=4), CFG,
               animate=False, epochs=1)
    assert math.isfinite(hist["train_loss"].iloc[0])


def test_ctrl_c_without_an_output_folder_names_the_epoch_only():
    train, val = tiny_loaders()
    with pytest.raises(KeyboardInterrupt, match="^interrupted after epoch 1$"):
        fit(StopsIn(3), train, val, TINY_CFG.replace(epochs=3), animate=False)


def all_void(X: torch.Tensor) -> torch.Tensor:
    return torch.full(X.shape[:1] + X.shape[2:], 255, dtype=torch.long)  # (N, H, W)


@pytest.mark.parametrize("split", ["training", "validation"])
def test_a_split_without_a_labelled_pixel_is_refused(tmp_path, split):
    X = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    good, void = TensorDataset(X, X.argmax(1)), TensorDataset(X, all_void(X))
    train = DataLoader(void if split == "training" else good, batch_size=4)
    val = DataLoader(void if split == "validation" else good, batch_size=4)
    with pytest.raises(ValueError, match=f"the {split} data has no labelled pixel"):
        fit(Tiny(), train, val, TINY_CFG, out=tmp_path, animate=False)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


def test_fit_refuses_an_empty_out_and_expands_a_tilde(tmp_path, monkeypatch):
    train, val = tiny_loaders()
    with pytest.raises(ValueError, match="out is an empty path"):
        fit(Tiny(), train, val, TINY_CFG, out="", animate=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    fit(Tiny(), train, val, TINY_CFG, out="~/run", animate=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == list(sorted(RUN_FILES))
    assert not (tmp_path / "~").exists()  # no literal "~" folder beside the home one
