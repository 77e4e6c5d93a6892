"""seglib.engine.scoring: evaluate() against a hand-rolled loop, load_model() round-trips, scores at
another input scale, and test-time augmentation (several scales, mirrored views) in
`label_size_logits`, `evaluate` and `sweep_logit_adjustment`, against views computed one by one
with numpy flips and a numpy confusion matrix."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seglib.engine import TrainConfig, evaluate, fit, iou_table, load_model
from seglib.engine.checkpoint import load_checkpoint
from seglib.engine.logit_adjustment import logit_bias, sweep_logit_adjustment
from seglib.engine.scoring import label_size_logits
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


def test_evaluate_at_half_scale_scores_against_native_labels():
    class Mean(torch.nn.Module):  # logits from the image's channels: any size in, same out
        def forward(self, x):
            return x[:, :2] * 10

    torch.manual_seed(0)
    X = torch.randn(2, 3, 8, 12)
    Y = torch.randint(0, 2, (2, 8, 12))
    res = evaluate(Mean(), [(X, Y)], num_classes=2, device="cpu", input_scale=0.5)
    small = F.interpolate(X, scale_factor=0.5, mode="bilinear", align_corners=False,
                          antialias=True)[:, :2] * 10
    pred = F.interpolate(small, size=(8, 12), mode="bilinear", align_corners=False).argmax(1)
    assert res["pixel_acc"] == pytest.approx((pred == Y).float().mean().item())
    full = evaluate(Mean(), [(X, Y)], num_classes=2, device="cpu")
    assert full["pixel_acc"] != res["pixel_acc"]


K = 4


def lopsided_net() -> nn.Module:
    """Stride-2 convolutions with random (so left-right asymmetric) kernels: its logits
    of a mirrored image are not the mirrored logits."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(8, K, 3, padding=1)).eval()


def one_view(net: nn.Module, X: torch.Tensor, size, scale: float, mirrored: bool) -> np.ndarray:
    """The label-size logits of one view, mirrored with numpy rather than torch."""
    x = torch.from_numpy(np.ascontiguousarray(X.numpy()[..., ::-1])) if mirrored else X
    x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False,
                      antialias=True)
    with torch.no_grad():
        out = F.interpolate(net(x), size, mode="bilinear", align_corners=False).numpy()
    return np.ascontiguousarray(out[..., ::-1]) if mirrored else out


def test_views_are_averaged_and_mirrored_back():
    net, X = lopsided_net(), torch.randn(2, 3, 24, 32)
    scales = (0.5, 0.75, 1.0)
    with torch.no_grad():
        got = label_size_logits(net, X, (24, 32), K, input_scale=scales, flip=True)
    views = [one_view(net, X, (24, 32), s, m) for s in scales for m in (False, True)]
    np.testing.assert_allclose(got.numpy(), np.mean(views, axis=0), rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # one scale, no flip: exactly the single view
        single = label_size_logits(net, X, (24, 32), K, input_scale=[0.75])
    np.testing.assert_allclose(single.numpy(), views[2], rtol=1e-5, atol=1e-6)


def test_flip_makes_the_prediction_mirror_symmetric():
    """With flip=True, a mirrored image gets the mirrored logits (its two views are the
    original's two views, swapped); without it, this asymmetric net does not."""
    net, X = lopsided_net(), torch.randn(2, 3, 24, 32)
    with torch.no_grad():
        for flip, symmetric in ((True, True), (False, False)):
            a = label_size_logits(net, X, (24, 32), K, input_scale=(0.5, 1.0), flip=flip)
            b = label_size_logits(net, X.flip(-1), (24, 32), K, input_scale=(0.5, 1.0), flip=flip)
            assert torch.allclose(a.flip(-1), b, atol=1e-5) is symmetric


def test_evaluate_and_sweep_score_the_averaged_views():
    net = lopsided_net()
    gen = torch.Generator().manual_seed(1)
    X, Y = torch.randn(3, 3, 24, 32, generator=gen), torch.randint(0, K, (3, 24, 32), generator=gen)
    Y[1, :5] = 255
    batches = [(X[:2], Y[:2]), (X[2:], Y[2:])]
    scales = (0.5, 0.75)
    views = [one_view(net, X, (24, 32), s, m) for s in scales for m in (False, True)]
    pred, t = np.mean(views, axis=0).argmax(1).ravel(), Y.numpy().ravel()
    keep = t != 255
    cm = np.bincount(t[keep] * K + pred[keep], minlength=K * K).reshape(K, K)
    res = evaluate(net, batches, K, "cpu", input_scale=scales, flip=True)
    np.testing.assert_array_equal(res["confusion"].numpy(), cm)
    w = [0.3, 1.0, 2.0, 8.0]
    sweep = sweep_logit_adjustment(net, batches, w, (0.0, 1.0), input_scale=scales, flip=True)
    assert sweep.loc[0.0, "miou"] == pytest.approx(res["miou"], abs=1e-12)
    adjusted = evaluate(net, batches, K, "cpu", input_scale=scales, flip=True,
                        logit_bias=logit_bias(w, 1.0))
    assert sweep.loc[1.0, "miou"] == pytest.approx(adjusted["miou"], abs=1e-12)


@pytest.mark.parametrize("scale", [[], [0.5, 0.0], -1.0, "0.5"])
def test_bad_scales_are_refused(scale):
    with pytest.raises(ValueError, match="input_scale"):
        label_size_logits(lopsided_net(), torch.randn(1, 3, 8, 8), (8, 8), K, input_scale=scale)
