"""Metrics against an independent numpy reference (np.add.at + per-class loops)."""

import math

import numpy as np
import pytest
import torch

from seglib.engine.metrics import (
    ConfusionMatrix,
    confusion_matrix,
    iou_per_class,
    mean_class_accuracy,
    mean_iou,
    pixel_accuracy,
)


def np_confusion(pred, target, k, ignore=255):
    cm = np.zeros((k, k), dtype=np.int64)
    keep = target != ignore
    np.add.at(cm, (target[keep], pred[keep]), 1)
    return cm


def np_metrics(pred, target, k, ignore=255):
    """Per-class loops over the raw pixels, no confusion matrix involved."""
    keep = target != ignore
    p, t = pred[keep], target[keep]
    ious, recalls = [], []
    for c in range(k):
        inter = np.sum((p == c) & (t == c))
        union = np.sum((p == c) | (t == c))
        ious.append(inter / union if union else np.nan)
        if np.sum(t == c):
            recalls.append(inter / np.sum(t == c))
    ious = np.array(ious)
    return {
        "iou": ious,
        "miou": np.nanmean(ious) if not np.isnan(ious).all() else np.nan,
        "pixel_acc": np.mean(p == t) if p.size else np.nan,
        "mean_class_acc": np.mean(recalls) if recalls else np.nan,
    }


def assert_close(a, b):
    assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def test_random_batches_match_numpy_reference():
    rng = np.random.default_rng(0)
    k = 5
    cm = ConfusionMatrix(k)
    preds, targets = [], []
    for _ in range(3):
        t = rng.integers(0, k, size=(2, 7, 9))
        t[rng.random(t.shape) < 0.2] = 255
        p = rng.integers(0, k, size=(2, 7, 9))
        cm.update(torch.from_numpy(p), torch.from_numpy(t))
        preds.append(p)
        targets.append(t)
    p, t = np.concatenate(preds), np.concatenate(targets)
    np.testing.assert_array_equal(cm.matrix.numpy(), np_confusion(p, t, k))
    ref, got = np_metrics(p, t, k), cm.compute()
    np.testing.assert_allclose(got["iou"].numpy(), ref["iou"], rtol=0, atol=1e-12)
    for name in ("miou", "pixel_acc", "mean_class_acc"):
        assert_close(got[name], ref[name])


def test_logits_are_argmaxed():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 5, 6))
    a = confusion_matrix(logits, target, 4)
    b = confusion_matrix(logits.argmax(1), target, 4)
    assert torch.equal(a, b)
    assert a.sum() == target.numel()


def test_hand_made_cases():
    # class 0: TP 2; class 1 only in truth (predicted as 0); class 2 only predicted;
    # class 3 absent everywhere -> NaN; one ignore pixel predicted as 3 does not count
    target = torch.tensor([[0, 0, 1, 0, 255]])
    pred = torch.tensor([[0, 0, 0, 2, 3]])
    cm = confusion_matrix(pred, target, 4)
    expected = torch.tensor([[2, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert torch.equal(cm, expected)
    iou = iou_per_class(cm)
    assert iou[0] == pytest.approx(2 / 4)  # inter 2, union: truth 3 + pred 3 - 2
    assert iou[1] == 0 and iou[2] == 0
    assert math.isnan(iou[3])
    assert mean_iou(cm) == pytest.approx((0.5 + 0 + 0) / 3)
    assert pixel_accuracy(cm) == pytest.approx(2 / 4)
    # recall over classes present in truth: class 0 -> 2/3, class 1 -> 0
    assert mean_class_accuracy(cm) == pytest.approx((2 / 3 + 0) / 2)


def test_all_ignored_gives_nan_and_empty_matrix():
    target = torch.full((1, 3, 3), 255)
    cm = ConfusionMatrix(3).update(torch.zeros(1, 3, 3, dtype=torch.long), target)
    assert cm.matrix.sum() == 0
    out = cm.compute()
    assert math.isnan(out["miou"]) and math.isnan(out["pixel_acc"])
    assert math.isnan(out["mean_class_acc"])
    assert torch.isnan(out["iou"]).all()


def test_perfect_prediction():
    target = torch.tensor([[0, 1], [2, 2]])
    cm = ConfusionMatrix(3).update(target.clone(), target)
    out = cm.compute()
    assert out["miou"] == 1 and out["pixel_acc"] == 1 and out["mean_class_acc"] == 1


def test_bad_input_raises():
    with pytest.raises(ValueError, match="target values"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 3)
    with pytest.raises(ValueError, match="shaped like target"):
        confusion_matrix(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2), 3)
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(0)
    with pytest.raises(ValueError, match="classes"):
        ConfusionMatrix(3).update(torch.randn(1, 5, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="square"):
        mean_iou(torch.zeros(2, 3))


def test_range_checks_cost_one_sync_and_skip_ignored_pixels(monkeypatch):
    torch.manual_seed(0)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, 0] = 255
    pred = torch.randint(0, 4, (2, 5, 6))
    pred[0, 0] = 9  # out of range, but only on ignored pixels: not an error
    t, p = target.numpy().ravel(), pred.numpy().ravel()
    keep = t != 255
    ref = np.zeros((4, 4), dtype=np.int64)
    np.add.at(ref, (t[keep], p[keep]), 1)
    syncs = []
    real_bool = torch.Tensor.__bool__
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda self: syncs.append(1) or real_bool(self))
    cm = confusion_matrix(pred, target, 4)
    monkeypatch.undo()
    np.testing.assert_array_equal(cm.numpy(), ref)
    assert len(syncs) <= 1  # one combined check, not min()/max() per tensor
    pred[1, 1, 1] = -1
    with pytest.raises(ValueError, match="predicted labels must be in 0..3"):
        confusion_matrix(pred, target, 4)
    with pytest.raises(ValueError, match="found 4"):
        confusion_matrix(pred.clamp(0, 3), torch.where(target == 255, 4, target), 4, None)
