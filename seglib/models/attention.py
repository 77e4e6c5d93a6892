r"""
# Criss-cross attention

The attention block of [CCNet: Criss-Cross Attention for Semantic Segmentation](
https://arxiv.org/abs/1811.11721) (Huang et al., ICCV 2019).

Non-local (dense) attention lets every pixel look at every other pixel: for a
$H \times W$ feature map that is an $(HW) \times (HW)$ attention matrix, which at a
97x97 map (a 769x769 crop at output stride 8) is 88 million entries per image.
Criss-cross attention keeps only the pixels on the same row and the same column:
$H + W - 1$ of them (the pixel itself counted once). Applied twice with shared
weights (the RCCA module, `seglib.models.ccnet`), information still flows from every pixel
to every other one: from $(h', w')$ along its row to $(h', w)$, then along the
column to $(h, w)$.

For a pixel $u$ with criss-cross neighbourhood $\Omega_u$,

$$A_{u,i} = \frac{\exp(Q_u^\top K_i)}{\sum_{j \in \Omega_u} \exp(Q_u^\top K_j)},\qquad
H'_u = \gamma \sum_{i \in \Omega_u} A_{u,i} V_i + H_u ,$$

the first index of $A$ being the query pixel $u$ (row $u$ of $A$ sums to one), as in
the notebooks.

This file holds the functional form, the module, a dense masked-attention reference
(the same maths through a full $(HW) \times (HW)$ matrix with a row-or-column mask,
used in the notebook and the tests) and two helpers to look at the weights.
The default backward is memory-lean (`seglib.models.attention_lean`): it stores only
$Q, K, V$ and one log-sum-exp per pixel and recomputes the attention (appendix notebook
`09_appendix_lean_backward.ipynb`). Notebook `02_criss_cross_attention.ipynb` derives
the rest step by step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglib.models.attention_lean import (
    lean_criss_cross_attention,
    lean_packed_criss_cross_attention,
)
from seglib.models.attention_plain import (
    _check_qkv,
    _dtypes,
    _energies,
    _exporting,
    _memory_format,
    _no_autocast,
    _plain_attention,
)
from seglib.models.qkv_projection import project_qkv

__all__ = [
    "criss_cross_attention",
    "criss_cross_weights",
    "criss_cross_mask",
    "dense_masked_attention",
    "attention_to_map",
    "CrissCrossAttention",
]


def criss_cross_attention(
    query: Tensor, key: Tensor, value: Tensor, *, lean: bool = True
) -> Tensor:
    r"""Criss-cross attention $\sum_{i \in \Omega_u} A_{u,i} V_i$ for every pixel $u$.

    Args:
        query, key: (B, C', H, W).
        value: (B, C, H, W).
        lean: use the memory-lean autograd Function (saves q, k, v and one
            log-sum-exp per pixel, recomputes the attention in backward). `False`
            gives the plain autograd path (einsum + softmax), kept for teaching and
            comparison. Both compute the same forward.

    Returns:
        (B, C, H, W): one softmax over the H + W - 1 pixels of each pixel's row and
        column (itself counted once), then the weighted sum of values. No gamma and
        no residual here (see `CrissCrossAttention`). Energies and softmax run in
        float32 (float64 for float64 input), also under autocast; the weighted sum
        runs in the value's (or autocast's) dtype.
    """
    _check_qkv(query, key, value)
    if lean:
        return lean_criss_cross_attention(query, key, value)
    return _plain_attention(query, key, value)


def criss_cross_weights(query: Tensor, key: Tensor) -> Tensor:
    """Softmax weights (B, H, W, H + W - 1) of every pixel, for visualisation.

    Entry `[b, h, w, :H]` holds the weights of the column pixels (g, w), g = 0..H-1
    (the centre at g = h); entry `[b, h, w, H:]` holds the row pixels (h, v), v != w,
    in increasing v. Each pixel's weights sum to one. Float32 (float64 for float64 input).
    """
    _check_qkv(query, key)
    B, _, H, W = query.shape
    _, stat = _dtypes(query, key)
    with _no_autocast(query.device.type):
        e_col, e_row = _energies(query.to(stat), key.to(stat))
        attn = torch.softmax(torch.cat([e_col, e_row], dim=-1), dim=-1)  # (B, H, W, H+W)
    # drop the (zero) centre of the row branch: for column w keep v = j + (j >= w)
    j = torch.arange(W - 1, device=query.device)
    w = torch.arange(W, device=query.device)
    keep = j[None, :] + (j[None, :] >= w[:, None]).long()  # (W, W-1)
    row = attn[..., H:].gather(-1, keep.expand(B, H, W, W - 1))  # (B, H, W, W-1)
    return torch.cat([attn[..., :H], row], dim=-1)  # (B, H, W, H+W-1)


def criss_cross_mask(H: int, W: int, device: torch.device | str | None = None) -> Tensor:
    """Bool (H*W, H*W) mask, True where pixel j (flattened h*W + w) is on pixel i's cross.

    Pixel i = (h, w) sees j = (g, v) when g == h or v == w; the diagonal is True.
    """
    if H < 1 or W < 1:
        raise ValueError(f"H and W must be >= 1, got H={H}, W={W}")
    idx = torch.arange(H * W, device=device)
    rows, cols = idx // W, idx % W  # (H*W,)
    return (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])  # (HW, HW)


def dense_masked_attention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor) -> Tensor:
    r"""Dense attention $\mathrm{softmax}(Q^\top K + \log M)\,V$ over all H*W pixels.

    With `mask = criss_cross_mask(H, W)` this is criss-cross attention computed the
    expensive way, through the full (HW) x (HW) matrix: the reference of the notebook
    and the tests. With an all-True mask it is non-local attention.

    Args:
        query, key: (B, C', H, W); value: (B, C, H, W).
        mask: bool (H*W, H*W), True where pixel i may attend to pixel j; every row
            needs at least one True.
    """
    _check_qkv(query, key, value)
    B, C, H, W = value.shape
    if mask.shape != (H * W, H * W) or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor of shape {(H * W, H * W)}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    dtype, stat = _dtypes(query, key, value)
    with _no_autocast(value.device.type):
        q = query.to(stat).flatten(2)  # (B, C', HW)
        k = key.to(stat).flatten(2)  # (B, C', HW)
        energy = q.transpose(1, 2) @ k  # (B, HW, HW)
        energy = energy.masked_fill(~mask.to(energy.device), float("-inf"))
        attn = F.softmax(energy, dim=-1).to(dtype)  # (B, HW, HW)
        out = value.to(dtype).flatten(2) @ attn.transpose(1, 2)  # (B, C, HW)
    return out.view(B, C, H, W)


def attention_to_map(weights: Tensor, h: int, w: int) -> Tensor:
    """Scatter pixel (h, w)'s H + W - 1 weights into an (H, W) map, zero off its cross.

    Args:
        weights: (H, W, H + W - 1) or (1, H, W, H + W - 1), as returned by
            `criss_cross_weights` (pick one image with `weights[i]`).
        h, w: the query pixel.
    """
    if weights.dim() == 4 and weights.shape[0] == 1:
        weights = weights[0]
    if weights.dim() != 3:
        raise ValueError(
            f"weights must be (H, W, H+W-1) or (1, H, W, H+W-1), got {tuple(weights.shape)}"
        )
    H, W, L = weights.shape
    if L != H + W - 1:
        raise ValueError(f"last dim must be H + W - 1 = {H + W - 1}, got {L}")
    if not (0 <= h < H and 0 <= w < W):
        raise ValueError(f"pixel (h, w) must lie in [0, {H}) x [0, {W}), got ({h}, {w})")
    pixel = weights[h, w]  # (H+W-1,)
    out = weights.new_zeros(H, W)
    out[:, w] = pixel[:H]  # the column, centre included
    others = [v for v in range(W) if v != w]
    out[h, others] = pixel[H:]  # the row without the centre
    return out


class CrissCrossAttention(nn.Module):
    r"""Criss-cross attention block with a learnt residual gate.

    $$H'_u = \gamma \sum_{i \in \Omega_u} A_{u,i} V_i + H_u,\qquad
      A_{u,\cdot} = \mathrm{softmax}\big(Q_u^\top K_{\Omega_u}\big)$$

    $Q, K$ come from 1x1 convolutions to $C' = C / \text{reduction}$ channels and $V$
    from a 1x1 convolution to $C$ channels. $\gamma$ starts at zero, so a freshly built
    block is the identity and the network learns how much context to mix in.

    With `lean = True` (default) training uses two autograd Functions: the three
    projections as one channels-last convolution that keeps only $X$
    (`seglib.models.qkv_projection`), and the memory-lean attention of
    `seglib.models.attention_lean`, which keeps $Q, K, V$ and one log-sum-exp per pixel and
    folds $\gamma$ and the residual in.
    Without gradients (`torch.no_grad`, eval) the same forward runs as plain tensor
    code, and under ONNX export / `torch.export` the plain einsum path is used: an
    autograd.Function cannot be exported, and the forward maths is identical.
    `lean = False` always takes the plain autograd path (for teaching and comparison).
    Works in float16/bfloat16 (`.half()`, `.bfloat16()`) and under autocast: energies
    and softmax statistics are computed in float32.

    Memory format: in both paths the output has the input's memory format
    (channels-last in, channels-last out; contiguous in, contiguous out), so
    `lean` never changes the layout the next layer sees. The lean path gets it for
    free: the residual sum `x + gamma * CCA(x)` is written in `x`'s layout.
    """

    def __init__(self, in_channels: int, reduction: int = 8, *, lean: bool = True):
        r"""* `in_channels` is $C$, the channels of the feature map $H$
        * `reduction` gives the query/key width $C' = C / \text{reduction}$
        * `lean` picks the memory-lean backward (default) or the plain autograd path;
          it is the attribute `self.lean` and can be flipped at any time
        """
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        if not isinstance(reduction, int) or reduction < 1 or in_channels % reduction:
            raise ValueError(
                f"reduction must be a positive int dividing in_channels={in_channels}, "
                f"got {reduction!r}"
            )
        self.in_channels = in_channels
        self.reduction = reduction
        self.lean = lean
        # $Q$ and $K$: 1x1 convs to $C'$ channels
        self.query_conv = nn.Conv2d(in_channels, in_channels // reduction, kernel_size=1)
        self.key_conv = nn.Conv2d(in_channels, in_channels // reduction, kernel_size=1)
        # $V$: 1x1 conv keeping $C$ channels
        self.value_conv = nn.Conv2d(in_channels, in_channels, kernel_size=1)
        # $\gamma$: residual gate, zero so the block starts as the identity
        self.gamma = nn.Parameter(torch.zeros(1))

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> gamma * CCA(x) + x, same shape and memory format as `x`."""
        self._check(x)
        fmt = _memory_format(x)
        if self.lean and not _exporting():
            # q, k, v as one channels-last conv (saves only x, which the caller holds);
            # gamma and the residual are folded into the lean Function, so neither
            # CCA(x) nor a second (B, C, H, W) buffer for the sum is stored
            qkv = project_qkv(x, self.query_conv, self.key_conv, self.value_conv)
            c_qk = self.query_conv.out_channels
            out = lean_packed_criss_cross_attention(qkv, c_qk, self.gamma, residual=x)
        else:
            q = self.query_conv(x)  # (B, C', H, W)
            k = self.key_conv(x)  # (B, C', H, W)
            v = self.value_conv(x)  # (B, C, H, W)
            out = _plain_attention(q, k, v)  # (B, C, H, W)
            # $H' = \gamma \cdot \mathrm{CCA}(H) + H$
            out = x + self.gamma * out  # (B, C, H, W)
        # a no-op when the sum already has the input's format (the usual case)
        return out.contiguous(memory_format=fmt)  # (B, C, H, W)

    def attention_weights(self, x: Tensor) -> Tensor:
        """Softmax weights (B, H, W, H + W - 1) of every pixel (see `criss_cross_weights`)."""
        self._check(x)
        return criss_cross_weights(self.query_conv(x), self.key_conv(x))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, reduction={self.reduction}, lean={self.lean}"
