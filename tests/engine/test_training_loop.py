"""Trainer behaviour on tiny stand-in models and in-memory data (CPU, a few seconds)."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seglib.engine import TrainConfig
from seglib.engine.checkpoint import load_checkpoint
from seglib.engine.optimization import make_optimizer, param_groups
from seglib.engine.training_loop import METRIC_COLUMNS, NonFiniteLossError, fit, segmentation_loss

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


CFG = TrainConfig(model="tiny", num_classes=K, epochs=2, lr=0.05, verbose=False, device="cpu")


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


def test_poly_schedule_per_iteration():
    torch.manual_seed(0)
    train, val = loaders()
    seen = []
    net = TinyNet()
    fit(net, train, val, CFG, animate=False, epochs=2,
        callback=lambda row: seen.append(row["lr"]))
    steps = len(train)
    # lr logged at the start of epoch 2 = base * (1 - steps / total) ** 0.9
    assert seen[0] == pytest.approx(0.05)
    assert seen[1] == pytest.approx(0.05 * (1 - steps / (2 * steps)) ** 0.9)


def test_resume_gives_identical_metrics_and_weights(tmp_path):
    def run(out, **kw):
        torch.manual_seed(0)
        net = TinyNet()
        train, val = loaders()
        return net, fit(net, train, val, CFG, out=out, animate=False, **kw)

    net_a, full = run(tmp_path / "a")
    _, first = run(tmp_path / "b", callback=lambda row: True)  # "crash" after epoch 1
    assert len(first) == 1
    net_b, resumed = run(tmp_path / "b", resume=True)
    cols = [c for c in METRIC_COLUMNS if c not in ("seconds", "images_per_s")]
    pd.testing.assert_frame_equal(resumed[cols], full[cols])
    for (k, a), b in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.equal(a, b), k
    assert len(pd.read_csv(tmp_path / "b" / "metrics.csv")) == 2


def test_resume_into_a_longer_run_follows_the_new_poly_schedule(tmp_path):
    torch.manual_seed(0)
    train, val = loaders()
    steps = len(train)
    fit(TinyNet(), train, val, CFG, out=tmp_path, animate=False, epochs=2)
    seen = []
    fit(TinyNet(), train, val, CFG, out=tmp_path, animate=False, epochs=4, resume=True,
        callback=lambda row: seen.append(row["lr"]))
    # epoch 3 starts at step 2 * steps of a 4-epoch schedule, not at the old final lr 0
    expected = [0.05 * (1 - e * steps / (4 * steps)) ** 0.9 for e in (2, 3)]
    assert seen == pytest.approx(expected)


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


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    train, val = loaders()  # 6 steps per epoch -> call 8 is epoch 2, step 2
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 2/6"):
        fit(Exploding(), train, val, CFG, out=tmp_path, animate=False, epochs=3)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_resume_refuses_other_model_or_classes(tmp_path):
    torch.manual_seed(0)
    train, val = loaders()
    fit(TinyNet(), train, val, CFG, out=tmp_path, animate=False, epochs=1)
    with pytest.raises(ValueError, match="num_classes: checkpoint 3 vs this run 4"):
        fit(TinyNet(k=4), train, val, CFG, out=tmp_path, resume=True, animate=False,
            num_classes=4)
    with pytest.raises(ValueError, match="model_class"):
        fit(Exploding(), train, val, CFG, out=tmp_path, resume=True, animate=False)


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


class GatedNet(nn.Module):
    """A conv (2-D weight, 1-D bias) and an attention-like gate named `gamma`."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, K, 1)
        self.gamma = nn.Parameter(torch.zeros(1))


def test_param_groups_exempt_1d_parameters_from_decay_and_scale_the_gate_lr():
    net = GatedNet()
    (group,) = param_groups(net, CFG)  # the default: one group, everything decays
    assert len(group["params"]) == 3
    groups = param_groups(net, CFG.replace(decay_1d=False, gamma_lr_mult=10.0))
    by_param = {id(p): g for g in groups for p in g["params"]}
    assert by_param[id(net.conv.weight)]["weight_decay"] == CFG.weight_decay
    assert by_param[id(net.conv.bias)]["weight_decay"] == 0.0
    assert by_param[id(net.gamma)]["weight_decay"] == 0.0
    assert by_param[id(net.gamma)]["lr"] == pytest.approx(10 * CFG.lr)
    assert by_param[id(net.conv.bias)]["lr"] == pytest.approx(CFG.lr)
    optimizer, scheduler = make_optimizer(net, CFG.replace(epochs=2), steps_per_epoch=5)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(CFG.lr * 0.5**0.9)  # t/T = 5/10
