"""The GPU memory estimate of `seglib.course.gpu_budget` (no GPU needed)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seglib.course import gpu_budget
from seglib.course.gpu_budget import (
    MEASURED,
    estimate_training_memory,
    format_estimate,
    parameter_count,
)
from seglib.course.saved_bytes import saved_for_backward_bytes
from seglib.models import CCNet, RefineNet

# How far the estimate of what autograd saves may be from a real count (either way).
# The table is measured at 360x480 and scaled by the crop's area; at 64x64 the feature
# maps of every stage are exactly 1/42 of those at 360x480 in area, so the scaling is
# nearly exact (measured: within 0.1%, batch 1 and 2, float32 and bf16). A wrong
# constant, a missing batch term, a wrong area scaling or a model whose activations
# changed by more than 5% since the table was measured breaks it.
SAVED_FACTOR = 1.05


@pytest.mark.parametrize("name", ["ccnet", "refinenet"])
def test_parameter_count_from_meta_equals_a_real_model(name):
    torch.manual_seed(0)
    model = (CCNet(11, backbone="resnet18", recurrence=2, aux=True) if name == "ccnet"
             else RefineNet(11, backbone="resnet18", features=256))
    params, buffers = parameter_count(name, "resnet18", 11)
    assert params == sum(p.numel() for p in model.parameters())
    assert buffers == sum(b.numel() * b.element_size() for b in model.buffers())
    # and the estimate uses it: weights = 4 bytes per parameter + buffers
    est = estimate_training_memory(name, "resnet18", 1, amp=False)
    assert est["params"] == params
    assert est["weights_bytes"] == 4 * params + buffers


def test_every_recipe_has_a_measurement():
    for model in ("ccnet", "refinenet"):
        for backbone in ("resnet18", "resnet50", "resnet101"):
            for precision in ("fp32", "amp"):
                act_fixed, act_image, saved_fixed, saved_image = MEASURED[
                    model, backbone, precision]
                assert act_image >= saved_image > 0 and act_fixed >= 0
    # 16-bit activations: AMP keeps clearly less per image than float32
    for model, backbone, precision in MEASURED:
        if precision == "amp":
            assert MEASURED[model, backbone, "amp"][1] < 0.8 * MEASURED[model, backbone, "fp32"][1]


@pytest.mark.parametrize("amp", [False, True])
def test_activations_scale_linearly_with_batch_and_crop_area(amp):
    def act(batch, crop=(360, 480)):
        return estimate_training_memory("ccnet", "resnet50", batch, crop, amp)["activation_bytes"]

    per_image = act(2) - act(1)
    assert per_image > 0
    assert act(4) - act(2) == pytest.approx(2 * per_image, rel=1e-9)
    assert act(8) - act(1) == pytest.approx(7 * per_image, rel=1e-9)
    # a quarter of the area, a quarter of the per-image part; the fixed part stays
    quarter = act(2, (180, 240)) - act(1, (180, 240))
    assert quarter == pytest.approx(per_image / 4, rel=1e-6)
    assert act(1, (180, 240)) - quarter == pytest.approx(act(1) - per_image, abs=2)


def test_total_is_the_sum_of_its_parts_and_max_batch_is_the_threshold():
    est = estimate_training_memory("refinenet", "resnet101", 2, amp=True)
    parts = ("weights_bytes", "grads_bytes", "momentum_bytes", "activation_bytes",
             "allowance_bytes")
    assert est["total_bytes"] == pytest.approx(sum(est[k] for k in parts), abs=2)
    assert est["grads_bytes"] == est["momentum_bytes"] == 4 * est["params"]
    assert est["budget_bytes"] == pytest.approx(0.8 * gpu_budget.T4_BYTES, abs=1)
    n = est["max_batch"]
    assert n >= 1
    assert estimate_training_memory("refinenet", "resnet101", n, amp=True)["fits"]
    assert not estimate_training_memory("refinenet", "resnet101", n + 1, amp=True)["fits"]
    # a card too small for the fixed part fits no batch at all
    tiny = estimate_training_memory("refinenet", "resnet101", 1, gpu_bytes=2**30)
    assert tiny["max_batch"] == 0 and not tiny["fits"]


class _TrainingForward(nn.Module):
    """Model (under bf16 autocast or not) + the trainer's loss, as the benchmark measures."""

    def __init__(self, model, target, amp):
        super().__init__()
        self.model, self.target, self.amp = model, target, amp

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp):
            main, aux = self.model(x)
        return (F.cross_entropy(main.float(), self.target, ignore_index=255)
                + 0.4 * F.cross_entropy(aux.float(), self.target, ignore_index=255))


@pytest.mark.parametrize("amp", [False, True])
def test_estimate_of_saved_bytes_matches_a_real_small_measurement(amp):
    torch.manual_seed(0)
    model = CCNet(11, backbone="resnet18", recurrence=2, aux=True).train()
    x = torch.randn(2, 3, 64, 64)
    target = torch.randint(0, 11, (2, 64, 64))
    measured = saved_for_backward_bytes(_TrainingForward(model, target, amp), x)
    est = estimate_training_memory("ccnet", "resnet18", 2, (64, 64), amp)["saved_bytes"]
    assert measured / SAVED_FACTOR <= est <= measured * SAVED_FACTOR, (measured, est)


def test_unknown_model_or_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="no measurement"):
        estimate_training_memory("ccnet", "resnet152", 2)
    with pytest.raises(ValueError, match="unknown model"):
        parameter_count("segformer", "resnet18")
    with pytest.raises(ValueError, match="batch_size"):
        estimate_training_memory("ccnet", "resnet50", 0)


def test_format_estimate_says_what_it_is():
    est = estimate_training_memory("ccnet", "resnet101", 4, amp=True)
    text = format_estimate(est)
    assert "CCNet (ResNet-101), batch 4" in text
    assert f"{est['total_bytes'] / 2**30:.2f} GB" in text
    assert "estimate" in text and "not a GPU measurement" in text
    assert "\n" not in text
