"""Test-time augmentation (several scales, mirrored views) in `label_size_logits`,
`evaluate`, `sweep_logit_adjustment` and `python -m seglib.evaluate`, against views
computed one by one with numpy flips and a numpy confusion matrix."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seglib.engine import evaluate
from seglib.engine.logit_adjustment import logit_bias, sweep_logit_adjustment
from seglib.engine.scoring import label_size_logits

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
