"""Logit adjustment: against numpy predictions and confusion matrices, and against
`evaluate(..., logit_bias=...)` run once per tau."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from seglib.engine import evaluate
from seglib.engine.logit_adjustment import best_tau, logit_bias, sweep_logit_adjustment

TAUS = (0.0, 0.5, 1.0, 2.0)


def channel_logits(num_classes: int) -> nn.Module:
    """A model whose logit k at a pixel is the input's channel k (K <= 3)."""
    conv = nn.Conv2d(3, num_classes, 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for k in range(num_classes):
            conv.weight[k, k] = 1.0
    return conv


def numpy_miou(logits: np.ndarray, labels: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Per-class IoU of argmax(logits + bias) over channel axis 1, void 255 left out."""
    k = len(bias)
    pred = (logits + bias[None, :, None, None]).argmax(1)
    valid = labels != 255
    cm = np.bincount(labels[valid] * k + pred[valid], minlength=k * k).reshape(k, k)
    tp = np.diag(cm)
    return tp / (cm.sum(0) + cm.sum(1) - tp)


def test_bias_is_minus_tau_log_weight():
    w = [0.5, 1.0, 8.0]
    expected = torch.tensor([np.log(2) / 2, 0.0, -1.5 * np.log(2)], dtype=torch.float32)
    assert torch.allclose(logit_bias(w, 0.5), expected)
    assert torch.equal(logit_bias(w, 0.0), torch.zeros(3))
    # a class absent from the training images has weight 0: nothing to undo
    assert torch.allclose(logit_bias([0.0, 4.0], 1.0), torch.tensor([0.0, -np.log(4)]).float())


def test_sweep_matches_numpy_predictions():
    """Each tau's IoU equals numpy's argmax of logits - tau log w, scored by bincount."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(6, 3, 10, 12, generator=gen)
    Y = torch.randint(0, 3, (6, 10, 12), generator=gen)
    Y[:, 0] = 255  # a void row
    w = [0.3, 1.0, 6.0]
    batches = [(X[:4], Y[:4]), (X[4:], Y[4:])]
    sweep = sweep_logit_adjustment(channel_logits(3), batches, w, TAUS, "cpu",
                                   classes=["a", "b", "c"])
    for tau in TAUS:
        ref = numpy_miou(X.numpy(), Y.numpy(), -tau * np.log(np.array(w)))
        got = sweep.loc[tau, ["iou_a", "iou_b", "iou_c"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, ref, rtol=1e-12)
        assert sweep.loc[tau, "miou"] == pytest.approx(ref.mean())
    # the rare class (weight 6) is predicted less as tau grows: its recall can only fall
    pred_c = [((X + logit_bias(w, t).view(1, -1, 1, 1)).argmax(1) == 2).sum() for t in TAUS]
    assert pred_c == sorted(pred_c, reverse=True) and pred_c[0] > pred_c[-1]


def test_sweep_equals_evaluate_per_tau_at_another_scale():
    """A CCNet-like path: logits at a lower resolution, resized to the labels' size."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    X, Y = torch.randn(3, 3, 24, 32), torch.randint(0, 4, (3, 24, 32))
    Y[0, :4] = 255
    w = [0.2, 1.0, 3.0, 9.0]
    batches = [(X[:2], Y[:2]), (X[2:], Y[2:])]
    sweep = sweep_logit_adjustment(net, batches, w, TAUS, input_scale=0.5)
    for tau in TAUS:
        ref = evaluate(net, batches, 4, "cpu", input_scale=0.5, logit_bias=logit_bias(w, tau))
        assert sweep.loc[tau, "miou"] == pytest.approx(ref["miou"], abs=1e-12)
        assert sweep.loc[tau, "pixel_acc"] == pytest.approx(ref["pixel_acc"], abs=1e-12)
    plain = evaluate(net, batches, 4, "cpu", input_scale=0.5)
    assert sweep.loc[0.0, "miou"] == pytest.approx(plain["miou"], abs=1e-12)


def test_evaluate_bias_changes_predictions_not_loss():
    X = torch.zeros(1, 3, 2, 2)
    X[:, 1] = 1.0  # class 1 wins by 1 everywhere
    Y = torch.zeros(1, 2, 2, dtype=torch.long)
    net, loss = channel_logits(2), nn.CrossEntropyLoss()
    plain = evaluate(net, [(X, Y)], 2, "cpu", criterion=loss)
    shifted = evaluate(net, [(X, Y)], 2, "cpu", criterion=loss,
                       logit_bias=torch.tensor([0.0, -2.0]))
    assert plain["pixel_acc"] == 0.0 and shifted["pixel_acc"] == 1.0
    assert shifted["loss"] == pytest.approx(plain["loss"])


def test_best_tau_prefers_the_smallest_on_a_tie():
    sweep = pd.DataFrame({"tau": [0.0, 0.5, 1.0], "miou": [0.4, 0.6, 0.6]}).set_index("tau")
    assert best_tau(sweep) == 0.5
    with pytest.raises(ValueError, match="empty"):
        best_tau(sweep.iloc[:0])


@pytest.mark.parametrize(
    ("weights", "tau", "match"),
    [([1.0, -1.0], 1.0, ">= 0"), ([1.0, float("nan")], 1.0, "finite"), ([[1.0]], 1.0, "1-D"),
     ([1.0, 2.0], -0.5, "tau")],
)
def test_bad_bias_arguments(weights, tau, match):
    with pytest.raises(ValueError, match=match):
        logit_bias(weights, tau)


def test_evaluate_rejects_a_bias_of_the_wrong_length():
    X, Y = torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        evaluate(channel_logits(2), [(X, Y)], 2, "cpu", logit_bias=torch.zeros(3))
