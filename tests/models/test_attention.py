"""Criss-cross attention against references computed another way.

The references below are written here, independently of seglib: a python loop that
visits every pixel's row and column, and a dense softmax over all H*W pixels with a
-inf mask built by hand. seglib's `dense_masked_attention` is checked against them too.
"""

from __future__ import annotations

import pytest
import torch

from seglib.models import CCNet
from seglib.models.attention import (
    CrissCrossAttention,
    attention_to_map,
    criss_cross_attention,
    criss_cross_mask,
    criss_cross_weights,
    cross_positions,
    dense_masked_attention,
)
from seglib.models.attention_lean import _image_blocks

SIZES = [(1, 1), (1, 9), (9, 1), (5, 7), (13, 4)]


PATHS = [False, True]  # plain autograd path, memory-lean Function


def loop_reference(q, k, v):
    """Per pixel: gather its column and row (centre once), softmax, weighted sum."""
    B, C, H, W = v.shape
    out = torch.zeros_like(v)
    for b in range(B):
        for h in range(H):
            for w in range(W):
                cross = [(g, w) for g in range(H)] + [(h, u) for u in range(W) if u != w]
                keys = torch.stack([k[b, :, i, j] for i, j in cross])  # (L, C')
                vals = torch.stack([v[b, :, i, j] for i, j in cross])  # (L, C)
                a = torch.softmax(keys @ q[b, :, h, w], dim=0)  # (L,)
                out[b, :, h, w] = a @ vals
    return out


def dense_reference(q, k, v):
    """Full (HW, HW) softmax with -inf outside the row-or-column of each pixel."""
    B, C, H, W = v.shape
    hh, ww = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    hh, ww = hh.flatten(), ww.flatten()
    allowed = (hh[:, None] == hh[None, :]) | (ww[:, None] == ww[None, :])
    e = torch.einsum("bci,bcj->bij", q.flatten(2), k.flatten(2))
    e = torch.where(allowed, e, torch.full_like(e, float("-inf")))
    return torch.einsum("bij,bcj->bci", e.softmax(-1), v.flatten(2)).view(B, C, H, W)


def make_qkv(B, H, W, c=3, C=5, dtype=torch.float64, scale=1.0, requires_grad=False):
    q = (scale * torch.randn(B, c, H, W, dtype=dtype)).requires_grad_(requires_grad)
    k = (scale * torch.randn(B, c, H, W, dtype=dtype)).requires_grad_(requires_grad)
    v = torch.randn(B, C, H, W, dtype=dtype).requires_grad_(requires_grad)
    return q, k, v


@pytest.mark.parametrize("lean", PATHS)
@pytest.mark.parametrize("B", [1, 2])
@pytest.mark.parametrize("H,W", SIZES)
def test_equals_loop_and_dense_float64(H, W, B, lean):
    torch.manual_seed(0)
    q, k, v = make_qkv(B, H, W)
    out = criss_cross_attention(q, k, v, lean=lean)
    assert out.shape == v.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, loop_reference(q, k, v), atol=1e-12, rtol=0)
    torch.testing.assert_close(out, dense_reference(q, k, v), atol=1e-12, rtol=0)
    mask = criss_cross_mask(H, W)
    dense = dense_masked_attention(q, k, v, mask)
    torch.testing.assert_close(dense, dense_reference(q, k, v), atol=1e-12, rtol=0)


def test_mask_is_row_or_column():
    H, W = 3, 4
    mask = criss_cross_mask(H, W)
    assert mask.shape == (12, 12) and mask.dtype == torch.bool
    for i in range(H * W):
        for j in range(H * W):
            assert bool(mask[i, j]) == (i // W == j // W or i % W == j % W)
    assert int(mask.sum(1)[0]) == H + W - 1
    with pytest.raises(ValueError, match=">= 1"):
        criss_cross_mask(0, 3)


@pytest.mark.parametrize("lean", PATHS)
@pytest.mark.parametrize("H,W", [(1, 9), (5, 7), (13, 4)])
def test_gradients_equal_dense(H, W, lean):
    torch.manual_seed(1)
    q, k, v = make_qkv(2, H, W, requires_grad=True)
    grad_out = torch.randn(2, 5, H, W, dtype=torch.float64)
    ours = torch.autograd.grad(criss_cross_attention(q, k, v, lean=lean), (q, k, v), grad_out)
    ref = torch.autograd.grad(dense_reference(q, k, v), (q, k, v), grad_out)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("H,W", [(1, 1), (1, 9), (9, 1), (5, 7)])
def test_weights_layout_and_map(H, W):
    torch.manual_seed(2)
    q, k, _ = make_qkv(2, H, W)
    a = criss_cross_weights(q, k)
    assert a.shape == (2, H, W, H + W - 1)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, H, W, dtype=torch.float64))
    # independent check of the layout: entry order = column (g, w), then row (h, v), v != w
    for h in range(H):
        for w in range(W):
            cross = [(g, w) for g in range(H)] + [(h, u) for u in range(W) if u != w]
            e = torch.stack([q[1, :, h, w] @ k[1, :, i, j] for i, j in cross])
            torch.testing.assert_close(a[1, h, w], e.softmax(0), atol=1e-12, rtol=0)
    h, w = H // 2, W - 1
    m = attention_to_map(a[1], h, w)
    assert m.shape == (H, W)
    dense = torch.softmax(
        (q[1].flatten(1)[:, h * W + w] @ k[1].flatten(1))
        .masked_fill(~criss_cross_mask(H, W)[h * W + w], float("-inf")),
        dim=0,
    ).view(H, W)
    torch.testing.assert_close(m, dense, atol=1e-12, rtol=0)
    torch.testing.assert_close(attention_to_map(a[1:2], h, w), m)


@pytest.mark.parametrize("H,W", [(1, 1), (1, 9), (9, 1), (5, 7), (4, 4)])
def test_cross_positions_lists_each_cross_in_the_documented_order(H, W):
    rows, cols = cross_positions(H, W)
    assert rows.shape == cols.shape == (H, W, H + W - 1)
    assert rows.dtype == cols.dtype == torch.long
    # independent construction: a python loop writing each pixel's cross by hand,
    # its column top to bottom (centre included), then its row left to right (centre left out)
    for h in range(H):
        for w in range(W):
            cross = [(g, w) for g in range(H)] + [(h, v) for v in range(W) if v != w]
            assert list(zip(rows[h, w].tolist(), cols[h, w].tolist())) == cross
    # every cross holds H + W - 1 distinct pixels, all on the pixel's row or column
    mask = criss_cross_mask(H, W)
    for h in range(H):
        for w in range(W):
            flat = rows[h, w] * W + cols[h, w]
            assert flat.unique().numel() == H + W - 1
            assert mask[h * W + w, flat].all() and mask[h * W + w].sum() == H + W - 1


def test_cross_positions_rejects_empty_maps():
    with pytest.raises(ValueError, match=">= 1"):
        cross_positions(0, 3)


def test_attention_to_map_rejects_bad_input():
    a = torch.rand(3, 4, 6)
    with pytest.raises(ValueError, match="H \\+ W - 1"):
        attention_to_map(torch.rand(3, 4, 5), 0, 0)
    with pytest.raises(ValueError, match="pixel"):
        attention_to_map(a, 3, 0)
    with pytest.raises(ValueError, match="weights must be"):
        attention_to_map(torch.rand(2, 3, 4, 6), 0, 0)


def test_functional_rejects_bad_shapes():
    q = torch.rand(1, 2, 4, 5)
    with pytest.raises(ValueError, match="4-D"):
        criss_cross_attention(q[0], q[0], torch.rand(3, 4, 5))
    with pytest.raises(ValueError, match="same shape"):
        criss_cross_attention(q, torch.rand(1, 3, 4, 5), torch.rand(1, 3, 4, 5))
    with pytest.raises(ValueError, match="value must be"):
        criss_cross_attention(q, q, torch.rand(1, 3, 4, 6))
    with pytest.raises(ValueError, match="mask must be"):
        dense_masked_attention(q, q, torch.rand(1, 3, 4, 5), torch.ones(20, 20))


def test_module_is_identity_at_init_and_shapes():
    torch.manual_seed(3)
    net = CrissCrossAttention(16)
    assert net.query_conv.out_channels == 2 and net.value_conv.out_channels == 16
    assert net.gamma.shape == (1,) and net.gamma.item() == 0.0
    X = torch.randn(1, 16, 7, 5)
    torch.testing.assert_close(net(X), X, atol=0, rtol=0)
    assert net.attention_weights(X).shape == (1, 7, 5, 11)


@pytest.mark.parametrize("lean", PATHS)
def test_module_matches_dense_and_grads_reach_every_parameter(lean):
    torch.manual_seed(4)
    net = CrissCrossAttention(16, reduction=4, lean=lean).double()
    with torch.no_grad():
        net.gamma.fill_(0.7)
    X = torch.randn(2, 16, 5, 6, dtype=torch.float64, requires_grad=True)
    Y = net(X)
    q, k, v = net.query_conv(X), net.key_conv(X), net.value_conv(X)
    torch.testing.assert_close(Y, 0.7 * dense_reference(q, k, v) + X, atol=1e-12, rtol=0)
    Y.square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert X.grad.abs().sum() > 0


def test_module_rejects_bad_input():
    net = CrissCrossAttention(16)
    with pytest.raises(ValueError, match="expected input"):
        net(torch.rand(16, 4, 4))
    with pytest.raises(ValueError, match="expected input"):
        net(torch.rand(1, 8, 4, 4))
    with pytest.raises(ValueError, match="reduction"):
        CrissCrossAttention(12, reduction=8)
    with pytest.raises(ValueError, match="reduction"):
        CrissCrossAttention(4, reduction=8)
    with pytest.raises(ValueError, match="reduction"):
        CrissCrossAttention(4, reduction=0)
    with pytest.raises(ValueError, match="in_channels"):
        CrissCrossAttention(0)


@pytest.mark.parametrize("lean", PATHS)
def test_bf16_autocast_cpu_close_to_fp32(lean):
    torch.manual_seed(5)
    net = CrissCrossAttention(32, lean=lean)
    with torch.no_grad():
        net.gamma.fill_(1.0)
    X = torch.randn(2, 32, 9, 11)
    ref = net(X)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(X)
    assert torch.isfinite(out).all()
    # bf16 keeps 8 significant bits: the convs and the weighted sum each round to
    # ~2**-8 relative, so a few percent of the output's scale bounds the difference
    torch.testing.assert_close(out.float(), ref, atol=0.05 * ref.abs().max().item(), rtol=0)


def test_empty_batch_through_criss_cross_attention_both_paths():
    torch.manual_seed(0)
    q, k, v = torch.randn(0, 2, 5, 6), torch.randn(0, 2, 5, 6), torch.randn(0, 16, 5, 6)
    for lean in (True, False):
        out = criss_cross_attention(q, k, v, lean=lean)
        assert out.shape == (0, 16, 5, 6)
        qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
        criss_cross_attention(qg, kg, vg, lean=lean).sum().backward()
        assert qg.grad.shape == q.shape and kg.grad.shape == k.shape
        assert vg.grad.shape == v.shape
    assert _image_blocks(v) == []


def test_empty_batch_through_the_module_and_ccnet():
    torch.manual_seed(0)
    for lean in (True, False):
        cca = CrissCrossAttention(16, lean=lean)
        x = torch.randn(0, 16, 5, 6, requires_grad=True)
        y = cca(x)
        y.sum().backward()
        assert y.shape == x.shape and x.grad.shape == x.shape
        assert cca.gamma.grad is not None and torch.equal(cca.gamma.grad, torch.zeros(1))
    net = CCNet(11, backbone="resnet18").eval()
    with torch.no_grad():
        assert net(torch.randn(0, 3, 32, 32)).shape == (0, 11, 32, 32)
