"""evaluate() against a hand-rolled loop, load_model() round-trips, the evaluate CLI."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seglib.engine import TrainConfig, evaluate, fit, iou_table, load_model
from seglib.engine.checkpoint import load_checkpoint
from seglib.models import build_model


class TupleNet(nn.Module):
    """Returns (main, aux) even in eval mode: evaluate must use the first item."""

    def __init__(self, k=4):
        super().__init__()
        self.conv = nn.Conv2d(3, k, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y, -y


def test_evaluate_matches_a_manual_loop():
    torch.manual_seed(0)
    k = 4
    X = torch.randn(10, 3, 6, 7)
    Y = torch.randint(0, k, (10, 6, 7))
    Y[:, 0, 0] = 255
    net = TupleNet(k).train()
    res = evaluate(net, DataLoader(TensorDataset(X, Y), batch_size=3), k, "cpu",
                   criterion=nn.CrossEntropyLoss(ignore_index=255))
    assert net.training  # mode restored
    with torch.no_grad():
        logits = net(X)[0]
    pred, t = logits.argmax(1).numpy().ravel(), Y.numpy().ravel()
    keep = t != 255
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t[keep], pred[keep]), 1)
    np.testing.assert_array_equal(res["confusion"].numpy(), cm)
    assert res["pixel_acc"] == pytest.approx(np.mean(pred[keep] == t[keep]))
    assert res["loss"] == pytest.approx(F.cross_entropy(logits, Y, ignore_index=255).item())
    assert res["images"] == 10
    with pytest.raises(ValueError, match="expected num_classes=5"):
        evaluate(net, DataLoader(TensorDataset(X, Y), batch_size=5), 5, "cpu")


def test_val_loss_is_the_weighted_mean_over_all_pixels_even_with_a_void_batch():
    torch.manual_seed(0)
    k = 4
    X = torch.randn(9, 3, 5, 6)
    Y = torch.randint(0, k, (9, 5, 6))
    Y[3:6] = 255  # the second batch (of 3) is entirely void
    Y[0, :2] = 255
    weight = torch.tensor([0.2, 1.0, 3.0, 0.5])
    net = TupleNet(k)
    loader = DataLoader(TensorDataset(X, Y), batch_size=3)
    with torch.no_grad():
        logits = net(X)[0]
    flat_logits = logits.permute(0, 2, 3, 1).reshape(-1, k)  # every pixel of the set at once
    flat_y = Y.reshape(-1)
    for w in (weight, None):
        res = evaluate(net, loader, k, "cpu",
                       criterion=nn.CrossEntropyLoss(weight=w, ignore_index=255))
        ref = F.cross_entropy(flat_logits, flat_y, weight=w, ignore_index=255)
        assert res["loss"] == pytest.approx(ref.item(), rel=1e-6)
    # hand computation of the weighted mean: sum w[y] * (-log p_y) / sum w[y]
    keep = flat_y != 255
    nll = -F.log_softmax(flat_logits[keep], 1).gather(1, flat_y[keep, None])[:, 0]
    hand = (weight[flat_y[keep]] * nll).sum() / weight[flat_y[keep]].sum()
    crit = nn.CrossEntropyLoss(weight=weight, ignore_index=255)
    res = evaluate(net, loader, k, "cpu", criterion=crit)
    assert res["loss"] == pytest.approx(hand.item(), rel=1e-6)
    void = DataLoader(TensorDataset(X[3:6], Y[3:6]), batch_size=3)  # nothing to average
    res = evaluate(net, void, k, "cpu", criterion=nn.CrossEntropyLoss(ignore_index=255))
    assert np.isnan(res["loss"])


def test_iou_table():
    table = iou_table(torch.tensor([0.5, float("nan")]), ["Sky", "Road"])
    assert list(table.index) == ["Sky", "Road"] and table.loc["Sky", "iou"] == 0.5
    with pytest.raises(ValueError, match="2 IoU values but 1 class names"):
        iou_table(torch.tensor([0.5, 0.1]), ["Sky"])


@pytest.fixture(scope="module")
def ccnet_run(tmp_path_factory):
    """One tiny epoch of a real ResNet-18 CCNet, 3 classes, 32x32 images."""
    out = tmp_path_factory.mktemp("ccnet")
    g = torch.Generator().manual_seed(0)
    X = torch.randn(4, 3, 32, 32, generator=g)
    Y = X[:, :3].argmax(1)
    data = TensorDataset(X, Y)
    torch.manual_seed(0)
    net = build_model("ccnet", 3, "resnet18")
    cfg = TrainConfig(model="ccnet", backbone="resnet18", num_classes=3, epochs=1,
                      batch_size=2, lr=0.01, verbose=False, device="cpu")
    fit(net, DataLoader(data, batch_size=2, shuffle=True), DataLoader(data, batch_size=2),
        cfg, out=out, animate=False)
    return out, net.eval(), X


def test_load_model_rebuilds_the_trained_model(ccnet_run):
    out, net, X = ccnet_run
    model, config = load_model(out / "best.pt", device="cpu")
    assert isinstance(config, TrainConfig) and config.model == "ccnet"
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(X[:2]), net(X[:2]), rtol=0, atol=0)


def test_load_model_refuses_a_mismatched_checkpoint(ccnet_run, tmp_path):
    out, _, _ = ccnet_run
    ckpt = load_checkpoint(out / "last.pt")
    ckpt["config"]["num_classes"] = 5  # weights are for 3 classes
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not fit a rebuilt ccnet/resnet18 with 5 classes"):
        load_model(tmp_path / "bad.pt")
