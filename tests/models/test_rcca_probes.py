"""seglib.models.rcca_probes: the attention a trained RCCA head records (passes, shares, entropies)
against dense references, and attention_knockout against networks computed another way."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from seglib.models import CCNet, RCCAModule, attention_knockout, build_model, rcca_attention
from seglib.models.attention import criss_cross_mask
from tests.helpers import (
    dense_attention,
    tiny_ccnet,
)


def open_gate(head: RCCAModule, value: float = 0.7) -> RCCAModule:
    with torch.no_grad():
        head.cca.gamma.fill_(value)  # a trained-looking gate: the attention counts
    return head.eval()


def by_hand(head: RCCAModule, x: torch.Tensor, passes: int) -> torch.Tensor:
    """The RCCA head written out with `passes` applications of its shared attention."""
    out = head.conva(x)
    for _ in range(passes):
        out = head.cca(out)
    out = head.convb(out)
    return head.classifier(head.bottleneck(torch.cat([x, out], 1)))


def test_knockout_removes_exactly_the_named_passes():
    torch.manual_seed(0)
    head = open_gate(RCCAModule(32, num_classes=5, recurrence=2))
    x = torch.randn(2, 32, 7, 9)
    with torch.no_grad():
        intact = head(x)
        torch.testing.assert_close(intact, by_hand(head, x, 2))
        with attention_knockout(head, "all"):
            torch.testing.assert_close(head(x), by_hand(head, x, 0))
        for one in ([1], [2]):  # one shared module: either pass removed leaves R = 1
            with attention_knockout(head, one):
                torch.testing.assert_close(head(x), by_hand(head, x, 1))
        torch.testing.assert_close(head(x), intact)  # restored on leaving the block
    assert not torch.allclose(by_hand(head, x, 1), intact)  # the gate is open: passes count


def test_knockout_of_both_passes_equals_a_closed_gate():
    torch.manual_seed(0)
    net = CCNet(4, "resnet18", recurrence=2, aux=False, output_stride=16, decoder=True).eval()
    open_gate(net.head)
    closed = copy.deepcopy(net)
    open_gate(closed.head, 0.0)
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad(), attention_knockout(net):
        torch.testing.assert_close(net(x), closed(x))


def test_knockout_refuses_what_it_cannot_do_and_restores_after_an_error():
    head = RCCAModule(32, num_classes=3, recurrence=2)
    with pytest.raises(ValueError, match=r"passes must lie in 1\.\.2"):
        with attention_knockout(head, [3]):
            pass
    with pytest.raises(RuntimeError, match="inside"):
        with attention_knockout(head, [1]):
            raise RuntimeError("inside")
    assert head.knocked_out == frozenset()
    with pytest.raises(ValueError, match="has no RCCA head"):
        with attention_knockout(build_model("refinenet", 3, "resnet18", features=16)):
            pass


@torch.no_grad()
def test_shares_are_the_gated_attention_output_over_the_input_of_each_pass(net64):
    """||gamma * sum_i A_ui V_i|| / ||x||, with A the dense masked softmax and V the
    value projection: what each pass adds to its input, computed without the module."""
    net, image, att = net64
    cca = net.head.cca
    x = net.head.conva(net.backbone(image)[-1])  # (1, C, 8, 8): pass 1's input
    for share in att["shares"]:
        v = cca.value_conv(x).flatten(2)[0]  # (C, hw)
        added = att["gamma"] * (v @ dense_attention(cca, x).T)  # (C, hw)
        assert share == pytest.approx(float(added.norm() / x.norm()), rel=1e-10)
        x = x + added.reshape(x.shape)  # pass 2's input
    assert len(att["shares"]) == 2 and min(att["shares"]) > 0


@torch.no_grad()
def test_recorded_passes_are_what_the_forward_feeds_the_shared_module():
    net = tiny_ccnet()
    torch.manual_seed(2)
    image = torch.randn(1, 3, 64, 80)
    inputs = []
    hook = net.head.cca.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    net(image)
    hook.remove()
    att = rcca_attention(net, image)
    assert len(inputs) == len(att["weights"]) == att["recurrence"] == 2
    for x, weights in zip(inputs, att["weights"]):
        assert weights.shape == (8, 10, 8 + 10 - 1)
        torch.testing.assert_close(weights, net.head.cca.attention_weights(x)[0])
    assert att["gamma"] == pytest.approx(0.7)


def test_model_mode_is_kept_and_an_rcca_module_takes_a_feature():
    net = tiny_ccnet().train()
    rcca_attention(net, torch.randn(3, 64, 64))  # (3, H, W) is accepted too
    assert net.training  # ran in eval mode, put back into training mode
    torch.manual_seed(3)
    head = RCCAModule(64, 4).eval()
    feature = torch.randn(1, 64, 5, 7)  # (1, C, h, w)
    att = rcca_attention(head, feature)
    assert att["size"] == (5, 7) and len(att["weights"]) == 2
    with pytest.raises(TypeError, match="RCCAModule"):
        rcca_attention(torch.nn.Conv2d(3, 3, 1), feature)
    with pytest.raises(ValueError, match="one image"):
        rcca_attention(head, feature.expand(2, -1, -1, -1))


def test_entropies_are_each_passs_mean_entropy_over_the_uniform_one(net64):
    """From the dense masked softmax (scipy's entropy of each row's cross), not the module."""
    from scipy.stats import entropy

    net, image, att = net64
    cca = net.head.cca
    x = net.head.conva(net.backbone(image)[-1])  # (1, C, 8, 8): pass 1's input
    cross = criss_cross_mask(8, 8)  # (64, 64)
    for recorded in att["entropies"]:
        rows = dense_attention(cca, x).detach().numpy()  # (64, 64), zero off each cross
        each = [entropy(rows[u][cross[u].numpy()]) for u in range(64)]
        assert recorded == pytest.approx(np.mean(each) / np.log(8 + 8 - 1), rel=1e-9)
        v = cca.value_conv(x).flatten(2)[0]  # (C, hw)
        x = (x + (att["gamma"] * (v @ dense_attention(cca, x).T)).reshape(x.shape)).detach()
    assert 0 < min(att["entropies"]) <= max(att["entropies"]) < 1
