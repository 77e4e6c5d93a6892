"""seglib.course.long_range_experiment: the accuracy per region, and a short training run."""

from __future__ import annotations

import pytest
import torch

from seglib.course.long_range_experiment import region_accuracy, train_long_range
from seglib.data import LongRangeTask


class Oracle(torch.nn.Module):
    """Logits that pick the true label, except on the far pixels (always object A)."""

    def __init__(self, masks: torch.Tensor, regions: torch.Tensor) -> None:
        super().__init__()
        self.masks, self.regions = masks, regions
        self.weight = torch.nn.Parameter(torch.zeros(()))  # something to find a device on
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        y = self.masks[self.seen : self.seen + b].clone()
        y[self.regions[self.seen : self.seen + b] == 2] = 2
        self.seen += b
        return torch.nn.functional.one_hot(y, 4).permute(0, 3, 1, 2).float()  # (b, 4, H, W)


def test_region_accuracy_counts_each_region():
    images, masks, regions = LongRangeTask(6, seed=4).tensors()
    acc = region_accuracy(Oracle(masks, regions), images, masks, regions, batch_size=4)
    far = regions == 2
    far_right = (masks[far] == 2).double().mean()  # object A is right where the cue is red
    assert acc["local"] == 1.0 and acc["aligned"] == 1.0
    assert acc["far"] == pytest.approx(float(far_right))
    wrong = (far & (masks != 2)).sum()
    assert acc["overall"] == pytest.approx(1 - float(wrong) / masks.numel())


def test_training_steps_and_a_faster_gate():
    images, masks, _ = LongRangeTask(4, seed=2).tensors()
    losses = []
    slow = train_long_range(1, (images, masks), seed=0, steps=3, batch_size=2,
                            callback=lambda step, loss: losses.append((step, loss)))
    fast = train_long_range(1, (images, masks), seed=0, steps=3, batch_size=2, gamma_lr_mult=10)
    assert [s for s, _ in losses] == [0, 1, 2] and all(0 < v < 10 for _, v in losses)
    assert not slow.training
    # same seed, same batches: only the gate's step size differs (Adam: about lr per step)
    g_slow, g_fast = (abs(n.head.cca.gamma.item()) for n in (slow, fast))
    assert 0 < g_slow < g_fast
