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

This file holds the plain path (energies by einsum over each pixel's column and row,
the centre counted once, in the column; one softmax over the $H + W - 1$ positions;
the weighted sum of values, all under ordinary autograd), the functional form, the
module, a dense masked-attention reference (the same maths through a full
$(HW) \times (HW)$ matrix with a row-or-column mask, used in the notebook and the
tests), the layout of a pixel's $H + W - 1$ weights (`cross_positions`) and two
helpers to look at the weights.

The default backward is memory-lean (`seglib.models.attention_lean`, an optimisation of
this file that computes the same maths): it stores only $Q, K, V$ and one log-sum-exp
per pixel and recomputes the attention (appendix notebook
`09_appendix_lean_backward.ipynb`). The precision rules both paths follow are written
there once and imported here. Notebook `02_criss_cross_attention.ipynb` derives
the rest step by step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglib.models.attention_lean import (
    attention_dtypes,
    autocast_off,
    lean_criss_cross_attention,
    lean_packed_criss_cross_attention,
    project_qkv,
    row_centre_mask,
)

__all__ = [
    "cross_positions",
    "criss_cross_attention",
    "criss_cross_weights",
    "criss_cross_mask",
    "dense_masked_attention",
    "attention_to_map",
    "CrissCrossAttention",
]


def _check_qkv(query: Tensor, key: Tensor, value: Tensor | None = None) -> None:
    """Raise ValueError unless q, k are (B, C', H, W) alike and v is (B, C, H, W)."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t is not None and t.dim() != 4:
            raise ValueError(f"{name} must be 4-D (B, C, H, W), got shape {tuple(t.shape)}")
    if query.shape != key.shape:
        raise ValueError(
            f"query and key must have the same shape (B, C', H, W), got "
            f"{tuple(query.shape)} and {tuple(key.shape)}"
        )
    if value is not None and (value.shape[0], *value.shape[2:]) != (
        query.shape[0],
        *query.shape[2:],
    ):
        raise ValueError(
            f"value must be (B, C, H, W) with the B, H, W of query {tuple(query.shape)}, "
            f"got {tuple(value.shape)}"
        )


def _exporting() -> bool:
    """True while ONNX export or `torch.export` traces us: they cannot trace an
    autograd.Function, so the lean path gives way to the plain einsum maths."""
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


def _memory_format(x: Tensor) -> torch.memory_format:
    """`torch.channels_last` for a channels-last (and not also contiguous) 4-D tensor,
    else `torch.contiguous_format`: the layout `CrissCrossAttention` returns."""
    if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
        return torch.contiguous_format
    return torch.channels_last


def _energies(query: Tensor, key: Tensor) -> tuple[Tensor, Tensor]:
    r"""Column and row energies $Q_u^\top K_i$, the centre removed from the row branch.

    Returns `e_col` (B, H, W, H) over pixels (g, w) and `e_row` (B, H, W, W) over
    pixels (h, v), with `-inf` at v == w so the centre is counted once (in the column).
    """
    # `q`, `k` have shape `[B, C', H, W]`; column scores for (h, w) against (g, w)
    e_col = torch.einsum("bchw,bcgw->bhwg", query, key)  # (B, H, W, H)
    # row scores for (h, w) against (h, v)
    e_row = torch.einsum("bchw,bchv->bhwv", query, key)  # (B, H, W, W)
    e_row = e_row.masked_fill(row_centre_mask(query.shape[-1], query.device), float("-inf"))
    return e_col, e_row


def _plain_attention(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """The teaching path: einsum energies, one softmax over the concatenation, einsum sum."""
    B, C, H, W = value.shape
    dtype, stat = attention_dtypes(query, key, value)
    with autocast_off(value.device.type):
        e_col, e_row = _energies(query.to(stat), key.to(stat))
        # $A_{u,\cdot} = \mathrm{softmax}(Q_u^\top K_{\Omega_u})$, in float32 (or float64)
        attn = torch.softmax(torch.cat([e_col, e_row], dim=-1), dim=-1)  # (B, H, W, H+W)
        a_col, a_row = attn.to(dtype).split([H, W], dim=-1)
        v = value.to(dtype)
        # $\sum_{i \in \Omega_u} A_{u,i} V_i$: the column part plus the row part
        out = torch.einsum("bhwg,bcgw->bchw", a_col, v)  # (B, C, H, W)
        out = out + torch.einsum("bhwv,bchv->bchw", a_row, v)  # (B, C, H, W)
    return out


def cross_positions(
    H: int, W: int, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Row and column index of every entry of a pixel's H + W - 1 weights (the layout).

    Each pixel (h, w) lists its cross in one fixed order, the order of the last dim of
    `criss_cross_weights`: first the column pixels (g, w), g = 0..H-1 (the centre at
    g = h), then the row pixels (h, v), v != w, in increasing v. The centre is counted
    once, in the column. `attention_to_map` and `seglib.course.explorer` read weights
    through this function, so the layout is written here only.

    Returns:
        `rows`, `cols`: long (H, W, H + W - 1) each; entry `[h, w, k]` is the pixel
        `(rows[h, w, k], cols[h, w, k])` that weight k of pixel (h, w) belongs to.
    """
    if H < 1 or W < 1:
        raise ValueError(f"H and W must be >= 1, got H={H}, W={W}")
    h = torch.arange(H, device=device)[:, None, None]  # (H, 1, 1): the query row
    w = torch.arange(W, device=device)[None, :, None]  # (1, W, 1): the query column
    g = torch.arange(H, device=device)[None, None, :]  # (1, 1, H): down the column
    j = torch.arange(W - 1, device=device)[None, None, :]  # (1, 1, W-1)
    v = j + (j >= w).long()  # (1, W, W-1): along the row, skipping the centre v = w
    rows = torch.cat([g.expand(H, W, H), h.expand(H, W, W - 1)], dim=-1)  # (H, W, H+W-1)
    cols = torch.cat([w.expand(H, W, H), v.expand(H, W, W - 1)], dim=-1)  # (H, W, H+W-1)
    return rows, cols


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
            comparison. Both compute the same forward. Under ONNX export or
            `torch.export` the plain path is taken either way.

    Returns:
        (B, C, H, W): one softmax over the H + W - 1 pixels of each pixel's row and
        column (itself counted once), then the weighted sum of values. No gamma and
        no residual here (see `CrissCrossAttention`). Energies and softmax run in
        float32 (float64 for float64 input), also under autocast; the weighted sum
        runs in the value's (or autocast's) dtype.
    """
    _check_qkv(query, key, value)
    if lean and not _exporting():  # an autograd.Function cannot be exported
        return lean_criss_cross_attention(query, key, value)
    return _plain_attention(query, key, value)


def criss_cross_weights(query: Tensor, key: Tensor) -> Tensor:
    """Softmax weights (B, H, W, H + W - 1) of every pixel, for visualisation.

    Entry `[b, h, w, k]` is the weight of the pixel given by `cross_positions`: the
    column pixels (g, w), g = 0..H-1, for k < H (the centre at g = h), then the row
    pixels (h, v), v != w, in increasing v. Each pixel's weights sum to one. Float32
    (float64 for float64 input).
    """
    _check_qkv(query, key)
    B, _, H, W = query.shape
    _, stat = attention_dtypes(query, key)
    with autocast_off(query.device.type):
        e_col, e_row = _energies(query.to(stat), key.to(stat))
        attn = torch.softmax(torch.cat([e_col, e_row], dim=-1), dim=-1)  # (B, H, W, H+W)
    # drop the (zero) centre of the row branch: keep the row pixels v != w, in the
    # order of `cross_positions`
    _, cols = cross_positions(H, W, device=query.device)  # (H, W, H+W-1)
    row = attn[..., H:].gather(-1, cols[..., H:].expand(B, H, W, W - 1))  # (B, H, W, W-1)
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
    dtype, stat = attention_dtypes(query, key, value)
    with autocast_off(value.device.type):
        q = query.to(stat).flatten(2)  # (B, C', HW)
        k = key.to(stat).flatten(2)  # (B, C', HW)
        energy = q.transpose(1, 2) @ k  # (B, HW, HW)
        energy = energy.masked_fill(~mask.to(energy.device), float("-inf"))
        attn = F.softmax(energy, dim=-1).to(dtype)  # (B, HW, HW)
        out = value.to(dtype).flatten(2) @ attn.transpose(1, 2)  # (B, C, HW)
    return out.view(B, C, H, W)


def attention_to_map(weights: Tensor, h: int, w: int) -> Tensor:
    """Scatter pixel (h, w)'s H + W - 1 weights into an (H, W) map, zero off its cross.

    Each weight goes to the pixel `cross_positions` names for it.

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
    rows, cols = cross_positions(H, W, device=weights.device)  # (H, W, H+W-1) each
    out = weights.new_zeros(H, W)
    out[rows[h, w], cols[h, w]] = weights[h, w]  # (H+W-1,) weights onto their pixels
    return out  # (H, W)


class CrissCrossAttention(nn.Module):
    r"""Criss-cross attention block with a learnt residual gate.

    $$H'_u = \gamma \sum_{i \in \Omega_u} A_{u,i} V_i + H_u,\qquad
      A_{u,\cdot} = \mathrm{softmax}\big(Q_u^\top K_{\Omega_u}\big)$$

    $Q, K$ come from 1x1 convolutions to $C' = C / \text{reduction}$ channels and $V$
    from a 1x1 convolution to $C$ channels. $\gamma$ starts at zero, so a freshly built
    block is the identity and the network learns how much context to mix in.

    With `lean = True` (default) training uses two autograd Functions: the three
    projections as one channels-last convolution that keeps only $X$, and the
    memory-lean attention, which keeps $Q, K, V$ and one log-sum-exp per pixel and
    folds $\gamma$ and the residual in (both in `seglib.models.attention_lean`).
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
