"""seglib.engine.optimization: parameter groups and the poly schedule, per iteration."""

import pytest
import torch
from torch import nn

from seglib.engine.optimization import make_optimizer, param_groups
from seglib.engine.training_loop import fit
from tests.helpers import FIT_CFG as CFG
from tests.helpers import (
    K,
    TinyNet,
    loaders,
)


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


class HeadedNet(nn.Module):
    """A 'backbone' conv and a 'head' holding a conv and a gate `gamma`, named as CCNet's."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 1)
        self.head = GatedNet()


def test_param_groups_scale_the_head_lr_and_multiply_the_gate_factors():
    net = HeadedNet()
    groups = param_groups(net, CFG.replace(head_lr_mult=10.0, gamma_lr_mult=3.0))
    lr = {name: g["lr"] for name, p in net.named_parameters() for g in groups
          if any(p is q for q in g["params"])}
    assert lr == pytest.approx({"backbone.weight": CFG.lr, "backbone.bias": CFG.lr,
                                "head.conv.weight": 10 * CFG.lr, "head.conv.bias": 10 * CFG.lr,
                                "head.gamma": 30 * CFG.lr})
    assert sum(len(g["params"]) for g in groups) == 5  # every parameter exactly once
    assert all(g["weight_decay"] == CFG.weight_decay for g in groups)
    with pytest.raises(ValueError, match="head_lr_mult"):
        CFG.replace(head_lr_mult=0.0)
