r"""
# The query, key and value projections as one channels-last convolution

The lean criss-cross block needs $Q = W_q X + b_q$, $K = W_k X + b_k$ and
$V = W_v X + b_v$: three 1x1 convolutions of the same input. Done with three
`nn.Conv2d` calls under plain autograd, each convolution keeps its input for the
weight gradient, and a channels-last copy of a channels-first $X$ (the layout in
which oneDNN and the attention's row/column matmuls are fastest) would be kept too:
one more $(B, C, H, W)$ tensor alive until backward.

`QKVProjection` stacks the three weights into one $(2C' + C) \times C$ matrix and runs
a single channels-last convolution (one GEMM over pixels). It saves only $X$ itself,
which the caller holds anyway, and in backward re-makes the channels-last copy for
the weight gradient a block of images at a time (one image for large maps: about
8 ms per image at 97x97x512 on 2 cores) instead of keeping a copy of the whole batch.
The result is one channels-last $(B, 2C' + C, H, W)$ tensor whose channel slices are
$Q$, $K$, $V$, which `seglib.models.attention_lean.LeanPackedCrissCrossAttention` reads in
place and whose gradient it writes as one tensor, so that no concatenation is needed
on the way back either. The gradient of $X$ is written block by block in $X$'s own
layout, so that autograd adds it to the residual's gradient without a layout
conversion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from seglib.models.attention_lean import _image_blocks
from seglib.models.attention_plain import _needs_grad, _no_autocast

__all__ = ["QKVProjection", "project_qkv"]


def _stack(convs: tuple[nn.Conv2d, ...]) -> tuple[Tensor, Tensor | None]:
    """Weights (sum of out channels, C, 1, 1) and biases of 1x1 convs, stacked."""
    for conv in convs:
        plain_1x1 = (conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                     conv.groups) == ((1, 1), (1, 1), (0, 0), (1, 1), 1)
        if not plain_1x1 or conv.padding_mode != "zeros":
            raise ValueError(f"project_qkv needs plain 1x1 convolutions, got {conv}")
    weight = torch.cat([c.weight for c in convs])
    biases = [c.bias for c in convs]
    bias = None if any(b is None for b in biases) else torch.cat(biases)
    return weight, bias


def _conv_channels_last(x: Tensor, weight: Tensor, bias: Tensor | None,
                        dtype: torch.dtype) -> Tensor:
    """1x1 convolution of x in `dtype`, run and returned channels-last (B, out, H, W)."""
    xc = x.to(dtype).contiguous(memory_format=torch.channels_last)  # (B, C, H, W)
    b = None if bias is None else bias.to(dtype)
    with _no_autocast(x.device.type):
        out = F.conv2d(xc, weight.to(dtype), b)  # (B, out, H, W)
    return out.contiguous(memory_format=torch.channels_last)


class QKVProjection(torch.autograd.Function):
    """One channels-last 1x1 convolution with stacked weights; saves only its input."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, dtype: torch.dtype):
        out = _conv_channels_last(x, weight, bias, dtype)  # (B, 2C'+C, H, W)
        ctx.save_for_backward(x, weight)  # x is the caller's tensor: nothing new is kept
        ctx.has_bias, ctx.dtype = bias is not None, dtype
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.has_bias
        dtype, n_out = ctx.dtype, weight.shape[0]
        w = weight.to(dtype)
        # a block of images at a time (one for large maps): the channels-last copies
        # live for that block only
        dx = torch.empty_like(x) if need_x else None  # in x's layout
        # summed over images in the parameters' dtype (float32 under autocast)
        dw = torch.zeros_like(weight) if need_w else None
        db = torch.zeros(n_out, dtype=weight.dtype, device=w.device) if need_b else None
        with _no_autocast(grad.device.type):
            for b in _image_blocks(x):
                dy = grad[b].to(dtype).contiguous(memory_format=torch.channels_last)
                if need_w or need_b:
                    xc = x[b].to(dtype).contiguous(memory_format=torch.channels_last)
                    _, dw_b, db_b = torch.ops.aten.convolution_backward(
                        dy, xc, w, [n_out], [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                        [False, need_w, need_b],
                    )
                    del xc
                    if need_w:
                        dw += dw_b
                    if need_b:
                        db += db_b
                if need_x:  # $dX = W^\top dY$: a 1x1 convolution of dY
                    dx[b] = F.conv2d(dy, w.transpose(0, 1))  # (n, C, H, W)
        return dx, dw, db, None


def project_qkv(x: Tensor, query_conv: nn.Conv2d, key_conv: nn.Conv2d,
                value_conv: nn.Conv2d) -> Tensor:
    """(B, C'_q + C'_k + C_v, H, W) channels-last: the three 1x1 convs of x, stacked.

    Under autocast the convolution runs in the autocast dtype (as `nn.Conv2d` would).
    The convs must be 1x1 with stride 1, no padding, no groups (as in
    `CrissCrossAttention`).
    """
    convs = (query_conv, key_conv, value_conv)
    weight, bias = _stack(convs)
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
    else:
        dtype = torch.promote_types(x.dtype, weight.dtype)
    if _needs_grad(x, weight, bias):
        return QKVProjection.apply(x, weight, bias, dtype)
    return _conv_channels_last(x, weight, bias, dtype)
