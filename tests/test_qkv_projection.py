"""The stacked q/k/v projection of the lean block, against three plain nn.Conv2d."""

import pytest
import torch
from torch import nn

from seglib.models.attention import CrissCrossAttention, criss_cross_mask, dense_masked_attention
from seglib.models.qkv_projection import QKVProjection, project_qkv

LAYOUTS = [torch.contiguous_format, torch.channels_last]


def convs(C=6, c=2, bias=True, dtype=torch.float64):
    torch.manual_seed(0)
    return tuple(nn.Conv2d(C, n, 1, bias=bias).to(dtype) for n in (c, c, C))


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("bias", [True, False])
def test_projection_equals_three_convs_with_grads(fmt, bias):
    cq, ck, cv = convs(bias=bias)
    X = torch.randn(2, 6, 5, 7, dtype=torch.float64).contiguous(memory_format=fmt)
    X.requires_grad_()
    qkv = project_qkv(X, cq, ck, cv)
    assert qkv.shape == (2, 10, 5, 7)
    assert qkv.is_contiguous(memory_format=torch.channels_last)
    ref = torch.cat([cq(X), ck(X), cv(X)], dim=1)
    torch.testing.assert_close(qkv, ref, atol=1e-12, rtol=0)
    params = [p for c in (cq, ck, cv) for p in c.parameters()]
    grad = torch.randn_like(ref)
    ours = torch.autograd.grad(qkv, [X, *params], grad)
    theirs = torch.autograd.grad(ref, [X, *params], grad)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    # the gradient of X comes back in X's layout
    assert ours[0].is_contiguous(memory_format=fmt)


def test_projection_gradcheck():
    cq, ck, cv = convs(C=3, c=1)
    weight = torch.cat([c.weight for c in (cq, ck, cv)]).detach().requires_grad_()
    bias = torch.cat([c.bias for c in (cq, ck, cv)]).detach().requires_grad_()
    X = torch.randn(2, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    f = lambda x, w, b: QKVProjection.apply(x, w, b, torch.float64)  # noqa: E731
    assert torch.autograd.gradcheck(f, (X, weight, bias))


def test_projection_saves_only_input_and_stacked_weight():
    cq, ck, cv = convs(C=8, c=2, dtype=torch.float32)
    X = torch.randn(1, 8, 6, 5, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        project_qkv(X, cq, ck, cv)
    shapes = sorted(tuple(t.shape) for t in saved)
    assert shapes == [(1, 8, 6, 5), (12, 8, 1, 1)]  # X itself, W_q; W_k; W_v stacked
    assert any(t.data_ptr() == X.data_ptr() for t in saved)


def test_projection_without_grad_and_under_autocast():
    cq, ck, cv = convs(C=8, c=2, dtype=torch.float32)
    X = torch.randn(2, 8, 5, 4)
    with torch.no_grad():
        out = project_qkv(X, cq, ck, cv)
        ref = torch.cat([cq(X), ck(X), cv(X)], dim=1)
    assert out.grad_fn is None
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = project_qkv(X.requires_grad_(), cq, ck, cv)
    assert low.dtype == torch.bfloat16  # as nn.Conv2d under autocast
    low.float().sum().backward()
    assert cq.weight.grad.dtype == torch.float32 and X.grad.dtype == torch.float32


@pytest.mark.parametrize("fmt", LAYOUTS)
def test_lean_module_gradients_equal_an_independent_reference(fmt):
    """Lean block (stacked projection + packed Function, gamma and residual folded in)
    against plain convs + dense masked attention under autograd, in float64."""
    torch.manual_seed(5)
    net = CrissCrossAttention(16, reduction=4).double()
    with torch.no_grad():
        net.gamma.fill_(0.6)
    X = torch.randn(2, 16, 5, 7, dtype=torch.float64).contiguous(memory_format=fmt)
    X.requires_grad_()
    grad = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    params = list(net.parameters())
    Y = net(X)
    assert Y.grad_fn.name().startswith("LeanPackedCrissCrossAttention")
    ours = torch.autograd.grad(Y, [X, *params], grad)
    q, k, v = net.query_conv(X), net.key_conv(X), net.value_conv(X)
    ref = net.gamma * dense_masked_attention(q, k, v, criss_cross_mask(5, 7)) + X
    torch.testing.assert_close(Y, ref, atol=1e-12, rtol=0)
    theirs = torch.autograd.grad(ref, [X, *params], grad)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=0)


def test_projection_rejects_convs_that_are_not_plain_1x1():
    cq, ck, _ = convs(C=6, c=2)
    for bad in (nn.Conv2d(6, 6, 3, padding=1), nn.Conv2d(6, 6, 1, stride=2),
                nn.Conv2d(6, 6, 1, groups=2)):
        with pytest.raises(ValueError, match="plain 1x1"):
            project_qkv(torch.randn(1, 6, 4, 4), cq, ck, bad.double())
