r"""
# Memory-lean criss-cross attention: recompute instead of store

An optimisation of `seglib.models.attention` (notebook 02): the same criss-cross
attention, the same maths and dtypes, computed in less memory. It is the default path
of `seglib.models.attention.criss_cross_attention` and of the `CrissCrossAttention`
module; the idea of [FlashAttention](https://arxiv.org/abs/2205.14135) applied along
rows and columns. The tests hold both paths to the same dense float64 reference.

`seglib.models.attention` builds on this file, so this file imports nothing from it:
the three rules both paths follow are written here once (`attention_dtypes`: energies
and softmax in at least float32; `autocast_off`; `row_centre_mask`: the centre is
counted once, in the column).

Plain autograd keeps the (B, H, W, H + W) softmax (and, in the usual bmm
formulation, permuted copies of it and of $V$) alive until backward. Here the
forward keeps only $Q$, $K$, $V$ (the tensors the caller passed, no copies) and one
float32 log-sum-exp per pixel,

$$\ell_u = \log \sum_{i \in \Omega_u} \exp(Q_u^\top K_i),$$

and backward rebuilds the weights as $A_{u,i} = \exp(Q_u^\top K_i - \ell_u)$: one extra
matmul over the $C' = C/8$ query/key channels, about 1/8 of the forward's cost.
With $dA_{u,i} = dO_u^\top V_i$ and $\delta_u = \sum_i A_{u,i}\,dA_{u,i} = dO_u^\top O_u$
the softmax backward is $dS_{u,i} = A_{u,i}(dA_{u,i} - \delta_u)$, then
$dQ_u = \sum_i dS_{u,i} K_i$, $dK_i = \sum_u dS_{u,i} Q_u$, $dV_i = \sum_u A_{u,i}\,dO_u$.

The module's gate $\gamma$ and its residual are folded in: the Function returns
$Y = X + \gamma O$ directly, written in $X$'s memory layout, so neither $O$ nor a
second $(B, C, H, W)$ buffer for the sum is ever alive. $\partial L / \partial \gamma =
\sum_u dY_u^\top O_u$ is the sum of the $\delta_u$ computed anyway (with $dY$ in place
of $dO$), and $\partial L / \partial X = dY$.

What stays small, and why: the work runs a block of images at a time (one image for
large maps, the whole batch for small ones), so the attention maps and their
gradients exist for that block only, and every product with a
$C$-channel tensor runs on a block of rows or of columns (4 MB on a CPU, 64 MB on a GPU),
reading $V$ and $dY$ through strided views in whatever layout they come
(channels-first or channels-last) and adding into the output in place. No full-size
permuted copy of a $C$-channel tensor is made.

## The query, key and value projections as one channels-last convolution

The lean block needs $Q = W_q X + b_q$, $K = W_k X + b_k$ and
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
$Q$, $K$, $V$, which `LeanPackedCrissCrossAttention` reads in place and whose gradient
it writes as one tensor, so that no concatenation is needed on the way back either.
The gradient of $X$ is written block by block in $X$'s own layout, so that autograd
adds it to the residual's gradient without a layout conversion.

Taught in the appendix notebook `09_appendix_lean_backward.ipynb`; measured in
`benchmarks/attention.py`.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = [
    "attention_dtypes",
    "autocast_off",
    "row_centre_mask",
    "LeanCrissCrossAttention",
    "LeanPackedCrissCrossAttention",
    "lean_criss_cross_attention",
    "lean_packed_criss_cross_attention",
    "lean_forward",
    "QKVProjection",
    "project_qkv",
]


# ## The rules both paths follow (`seglib.models.attention` uses them too)


def attention_dtypes(*tensors: Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(compute dtype of the value aggregation, dtype of energies and softmax).

    Under autocast the aggregation runs in the autocast dtype (as a matmul would);
    energies and softmax statistics always run in at least float32.
    """
    device_type = tensors[0].device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
    else:
        dtype = tensors[0].dtype
        for t in tensors[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype, torch.promote_types(dtype, torch.float32)


def autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """Switch autocast off (dtypes are handled explicitly); a no-op when it is off."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def row_centre_mask(w: int, device: torch.device) -> Tensor:
    """(W, W) bool, True on v == w: the pixel itself in its own row.

    Its row energy is set to `-inf`, so that the centre is counted once (in the column).
    Built from index comparison (not `torch.eye`) on the input's device, so it traces
    to ONNX with a dynamic width and never pins a device.
    """
    idx = torch.arange(w, device=device)
    return idx[:, None] == idx[None, :]  # (W, W)


def _needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd must record an op on these tensors (None entries ignored)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# ## Blocks: how much of a C-channel tensor is worked on at once

# A C-channel block (images, then rows or columns) is at most this many bytes: ~4 MB on
# a CPU (cache-sized temporaries, small peak); 64 MB on a GPU, where every block costs
# a few kernel launches and memory is plentiful next to them.
BLOCK_BYTES = 4 * 2**20
GPU_BLOCK_BYTES = 64 * 2**20


def _blocks(n: int, bytes_per_item: int, device: torch.device | None = None) -> list[slice]:
    """Slices of `n` items (images, rows or columns), each block at most BLOCK_BYTES
    (GPU_BLOCK_BYTES off the CPU) and at least one item."""
    budget = BLOCK_BYTES if device is None or device.type == "cpu" else GPU_BLOCK_BYTES
    step = max(1, budget // max(bytes_per_item, 1))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _item_bytes(t: Tensor, dim: int) -> int:
    """Bytes of one item along `dim` (the product of the other sizes), from the shape
    alone, so that it is right even when another dimension (the batch) is empty."""
    return math.prod(s for i, s in enumerate(t.shape) if i != dim % t.dim()) * t.element_size()


def _image_blocks(t: Tensor) -> list[slice]:
    """Blocks of the images of a (B, X, H, W) tensor: small maps go all at once, large
    ones one image at a time (so that attention maps exist for few images at once).
    An empty batch (B = 0) has no blocks: the callers' loops do nothing and their
    zero-initialised outputs are the (empty) result."""
    return _blocks(t.shape[0], _item_bytes(t, 0), t.device)


def _line_blocks(t: Tensor) -> list[slice]:
    """Blocks of the lines (dim -3) of a rows or columns view (n, L, M, X)."""
    return _blocks(t.shape[-3], _item_bytes(t, -3), t.device)


def _as_rows(t: Tensor) -> Tensor:
    """(n, X, H, W) -> strided view (n, H, W, X): row h of an image is the matrix (W, X)."""
    return t.permute(0, 2, 3, 1)


def _as_cols(t: Tensor) -> Tensor:
    """(n, X, H, W) -> strided view (n, W, H, X): column w is the matrix (H, X)."""
    return t.permute(0, 3, 2, 1)


def _lines(t: Tensor, sl: slice) -> Tensor:
    """Lines `sl` (rows of a rows view, columns of a columns view) of (n, L, M, X)."""
    return t[:, sl]


def _matrices(t: Tensor) -> Tensor:
    """`t` if BLAS can read its last two dims in place (one unit stride), else a copy.

    Rows of any layout and columns of a channels-last tensor pass as they are; a
    column block of a channels-first tensor is copied once, here, rather than matrix
    by matrix inside the matmul.
    """
    return t if 1 in (t.stride(-1), t.stride(-2)) else t.contiguous()


def _add_product(out: Tensor, a: Tensor, b: Tensor, *, rows: bool) -> None:
    """`out += a @ b` in place, for (n, L, M, X) blocks. Row blocks of one image use
    baddbmm_ (no temporary); otherwise a matmul then an add (baddbmm_ into a strided
    column view is slower on CPU, and it takes one batch dimension only)."""
    if rows and out.dtype == a.dtype and out.shape[0] == 1:
        out[0].baddbmm_(a[0], b[0])
    else:
        out.add_(a @ b)


def _matmul_into(out: Tensor, a: Tensor, b: Tensor) -> None:
    """`out = a @ b`, written in place when `out` is contiguous (one image's block)."""
    if out.is_contiguous():
        torch.matmul(a, b, out=out)
    else:
        out.copy_(a @ b)


def _cross_matmul(out: Tensor, p_col: Tensor, p_row: Tensor, src: Tensor,
                  transpose: bool = False) -> None:
    r"""In place: `out` += $\sum_{i \in \Omega_u} P_{u,i}\,S_i$ at every pixel $u$.

    With `transpose` it adds $\sum_{u : i \in \Omega_u} P_{u,i}\,S_u$ at every pixel $i$
    instead (the adjoint: how $dV$ and $dK$ collect from the pixels that looked at $i$).

    Args:
        out, src: (n, X, H, W) in any memory layout (strided views are fine).
        p_col: (n, W, H, G), entry [., w, h, g] the weight of pixel (g, w) for (h, w).
        p_row: (n, H, W, V), entry [., h, w, v] the weight of pixel (h, v) for (h, w).
            Both in `src`'s dtype.
    """
    if transpose:
        p_col, p_row = p_col.transpose(-1, -2), p_row.transpose(-1, -2)
    for views, p, rows in ((_as_rows, p_row, True), (_as_cols, p_col, False)):
        out_l, src_l = views(out), views(src)  # (n, H, W, X) rows or (n, W, H, X) columns
        for sl in _line_blocks(src_l):  # (n, l, M, M) @ (n, l, M, X)
            _add_product(_lines(out_l, sl), _lines(p, sl), _matrices(_lines(src_l, sl)),
                         rows=rows)


def _cross_scores(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    r"""$a_u^\top b_i$ on the column (n, W, H, G) and on the row (n, H, W, V) of every pixel.

    `a`, `b`: (n, X, H, W). Products with a C-channel tensor go block by block.
    """
    n, _, H, W = a.shape
    s_col, s_row = a.new_empty((n, W, H, H)), a.new_empty((n, H, W, W))
    for views, s in ((_as_rows, s_row), (_as_cols, s_col)):
        a_l, b_l = views(a), views(b)
        for sl in _line_blocks(a_l):
            b_blk = _matrices(_lines(b_l, sl)).transpose(-1, -2)
            _matmul_into(_lines(s, sl), _matrices(_lines(a_l, sl)), b_blk)
    return s_col, s_row


def _value_side(dy: Tensor, v: Tensor, p_col: Tensor, p_row: Tensor, dv: Tensor | None
                ) -> tuple[Tensor, Tensor]:
    r"""$dA'_{u,i} = dY_u^\top V_i$ (column (n, W, H, G), row (n, H, W, V)), and
    `dv` += $\sum_u A_{u,i}\,dY_u$ when `dv` is given.

    The two share every block of dY, read (or copied, see `_matrices`) once for both.
    """
    n, _, H, W = dy.shape
    da_col, da_row = dy.new_empty((n, W, H, H)), dy.new_empty((n, H, W, W))
    for views, p, da, rows in ((_as_rows, p_row, da_row, True), (_as_cols, p_col, da_col, False)):
        dy_l, v_l = views(dy), views(v)
        dv_l = None if dv is None else views(dv)
        for sl in _line_blocks(dy_l):
            g = _matrices(_lines(dy_l, sl))  # (n, l, M, X)
            _matmul_into(_lines(da, sl), g, _matrices(_lines(v_l, sl)).transpose(-1, -2))
            if dv_l is not None:  # (n, l, M, M)^T @ (n, l, M, X)
                _add_product(_lines(dv_l, sl), _lines(p, sl).transpose(-1, -2), g, rows=rows)
    return da_col, da_row


def _probabilities(q: Tensor, k: Tensor, lse: Tensor | None = None
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Softmax weights, column (n, W, H, H) and row (n, H, W, W), and lse (n, H, W).

    `q`, `k`: (n, C', H, W) in the statistics dtype. With `lse` given (backward) the
    weights are rebuilt from it instead of normalised.
    """
    s_col, s_row = _cross_scores(q, k)
    # the centre is already in the column: drop it from the row, in place
    s_row.masked_fill_(row_centre_mask(q.shape[-1], q.device), float("-inf"))

    def col(t: Tensor) -> Tensor:  # per-pixel (n, H, W) -> column order (n, W, H, 1)
        return t.transpose(-1, -2).unsqueeze(-1)

    if lse is None:
        m = torch.maximum(s_col.amax(-1).transpose(-1, -2), s_row.amax(-1))  # (n, H, W)
        s_col.sub_(col(m)).exp_()
        s_row.sub_(m.unsqueeze(-1)).exp_()
        z = s_col.sum(-1).transpose(-1, -2) + s_row.sum(-1)  # (n, H, W)
        s_col.div_(col(z))
        s_row.div_(z.unsqueeze(-1))
        # $\ell_u = m_u + \log \sum_i \exp(Q_u^\top K_i - m_u)$
        lse = m + z.log()  # (n, H, W)
    else:
        # $A_{u,i} = \exp(Q_u^\top K_i - \ell_u)$
        s_col.sub_(col(lse)).exp_()
        s_row.sub_(lse.unsqueeze(-1)).exp_()
    return s_col, s_row, lse


def _forward(query: Tensor, key: Tensor, value: Tensor, gamma: Tensor | None,
             residual: Tensor | None, dtype: torch.dtype, stat: torch.dtype
             ) -> tuple[Tensor, Tensor]:
    """(residual +) (gamma *) attention (B, C, H, W), and lse (B, H, W) in `stat`.

    The result has the residual's memory format (the value's without a residual), and
    the dtype `dtype` promoted with the residual's.
    """
    B, _, H, W = value.shape
    if residual is None:
        out = torch.zeros_like(value, dtype=dtype)  # (B, C, H, W)
    else:
        out = residual.to(torch.promote_types(residual.dtype, dtype), copy=True)
    lse = torch.empty((B, H, W), dtype=stat, device=value.device)
    g = None if gamma is None else gamma.to(stat)
    for b in _image_blocks(value):
        p_col, p_row, lse[b] = _probabilities(query[b].to(stat), key[b].to(stat))
        if g is not None:  # $\gamma \sum_i A_{u,i} V_i = \sum_i (\gamma A_{u,i}) V_i$
            p_col, p_row = p_col.mul_(g), p_row.mul_(g)
        _cross_matmul(out[b], p_col.to(dtype), p_row.to(dtype), value[b].to(dtype))
    return out, lse


def lean_forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    dtype: torch.dtype,
    stat: torch.dtype,
    gamma: Tensor | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """(residual +) (gamma *) criss-cross attention (B, C, H, W), as plain tensor code.

    No autograd.Function, so it serves inference and torch.compile. Autocast must be
    off (the dtypes are explicit). The result has the residual's (else the value's)
    memory format.
    """
    return _forward(query, key, value, gamma, residual, dtype, stat)[0]


def _backward(grad_out: Tensor, query: Tensor, key: Tensor, value: Tensor, lse: Tensor,
              gamma: Tensor | None, dq: Tensor | None, dk: Tensor | None,
              dv: Tensor | None, dtype: torch.dtype, stat: torch.dtype) -> Tensor:
    r"""Add dQ, dK, dV into the zero buffers `dq`, `dk`, `dv` (None: not needed), return dgamma.

    `dv` holds $\sum_u A_{u,i}\,dY_u$ without the factor gamma: the caller scales it.
    """
    g = torch.ones((), dtype=stat, device=lse.device) if gamma is None else gamma.to(stat)
    dg = torch.zeros((), dtype=stat, device=lse.device)
    for b in _image_blocks(value):
        q, k = query[b].to(stat), key[b].to(stat)  # (n, C', H, W)
        p_col, p_row, _ = _probabilities(q, k, lse[b])  # (n, W, H, H), (n, H, W, W)
        dy, v = grad_out[b].to(dtype), value[b].to(dtype)  # (n, C, H, W)
        # $dA'_{u,i} = dY_u^\top V_i$ (so $dA = \gamma\,dA'$), and
        # $dV_i = \gamma \sum_u A_{u,i}\,dY_u$ (gamma applied by the caller)
        da_col, da_row = _value_side(dy, v, p_col.to(dtype), p_row.to(dtype),
                                     None if dv is None else dv[b])
        del dy, v
        da_col, da_row = da_col.to(stat), da_row.to(stat)
        # $\delta'_u = \sum_i A_{u,i} dA'_{u,i} = dY_u^\top O_u$, (n, H, W)
        delta = (p_col * da_col).sum(-1).transpose(-1, -2) + (p_row * da_row).sum(-1)
        dg += delta.sum()  # $\partial L / \partial \gamma = \sum_u dY_u^\top O_u$
        if dq is not None or dk is not None:
            # $dS = A \odot (dA - \delta) = \gamma A \odot (dA' - \delta')$
            ds_col = da_col.sub_(delta.transpose(-1, -2).unsqueeze(-1)).mul_(p_col).mul_(g)
            ds_row = da_row.sub_(delta.unsqueeze(-1)).mul_(p_row).mul_(g)
            if dq is not None:  # $dQ_u = \sum_i dS_{u,i} K_i$
                _cross_matmul(dq[b], ds_col.to(dq.dtype), ds_row.to(dq.dtype), k.to(dq.dtype))
            if dk is not None:  # $dK_i = \sum_u dS_{u,i} Q_u$
                _cross_matmul(dk[b], ds_col.to(dk.dtype), ds_row.to(dk.dtype), q.to(dk.dtype),
                              transpose=True)
    return dg


class LeanCrissCrossAttention(torch.autograd.Function):
    """autograd.Function saving q, k, v as given and the per-pixel log-sum-exp."""

    @staticmethod
    def forward(ctx, query, key, value, gamma, residual, dtype, stat):
        out, lse = _forward(query, key, value, gamma, residual, dtype, stat)
        ctx.save_for_backward(query, key, value, lse, gamma)
        ctx.dtypes = (dtype, stat, None if residual is None else residual.dtype)
        return out  # (B, C, H, W)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        query, key, value, lse, gamma = ctx.saved_tensors
        dtype, stat, residual_dtype = ctx.dtypes
        need_q, need_k, need_v, need_g, need_r = ctx.needs_input_grad[:5]
        with autocast_off(grad_out.device.type):
            # q, k gradients accumulate in the statistics dtype, v's in the compute dtype
            dq = torch.zeros_like(query, dtype=stat) if need_q else None
            dk = torch.zeros_like(key, dtype=stat) if need_k else None
            dv = torch.zeros_like(value, dtype=dtype) if need_v else None
            dg = _backward(grad_out, query, key, value, lse, gamma, dq, dk, dv, dtype, stat)
            if need_v and gamma is not None:
                dv = dv.mul_(gamma.to(dtype))
        return (
            dq.to(query.dtype) if need_q else None,
            dk.to(key.dtype) if need_k else None,
            dv.to(value.dtype) if need_v else None,
            dg.reshape(1).to(gamma.dtype) if need_g else None,
            grad_out.to(residual_dtype) if need_r else None,
            None,
            None,
        )


def _split(qkv: Tensor, c_qk: int) -> tuple[Tensor, Tensor, Tensor]:
    """Channel slices q (C'), k (C'), v (the rest) of a stacked (B, 2C' + C, H, W) tensor."""
    return qkv[:, :c_qk], qkv[:, c_qk:2 * c_qk], qkv[:, 2 * c_qk:]


class LeanPackedCrissCrossAttention(torch.autograd.Function):
    """The same attention on q, k, v stacked in one tensor (see `project_qkv` below).

    Reads q, k, v as channel slices in place and returns their gradient as one tensor
    of the stacked shape and layout, so the projection needs no concatenation.
    """

    @staticmethod
    def forward(ctx, qkv, c_qk, gamma, residual, dtype, stat):
        out, lse = _forward(*_split(qkv, c_qk), gamma, residual, dtype, stat)
        ctx.save_for_backward(qkv, lse, gamma)
        ctx.c_qk, ctx.dtypes = c_qk, (dtype, stat, None if residual is None else residual.dtype)
        return out  # (B, C, H, W)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        qkv, lse, gamma = ctx.saved_tensors
        dtype, stat, residual_dtype = ctx.dtypes
        need_qkv, _, need_g, need_r = ctx.needs_input_grad[:4]
        dqkv = None
        with autocast_off(grad_out.device.type):
            # one buffer in qkv's layout (statistics dtype: exact sums for half inputs)
            buffers = (None, None, None)
            if need_qkv:
                dqkv = torch.zeros_like(qkv, dtype=stat)  # (B, 2C'+C, H, W)
                buffers = _split(dqkv, ctx.c_qk)
            dg = _backward(grad_out, *_split(qkv, ctx.c_qk), lse, gamma, *buffers, dtype, stat)
            if need_qkv:
                if gamma is not None:
                    buffers[2].mul_(gamma.to(stat))
                dqkv = dqkv.to(qkv.dtype)
        return (
            dqkv,
            None,
            dg.reshape(1).to(gamma.dtype) if need_g else None,
            grad_out.to(residual_dtype) if need_r else None,
            None,
            None,
        )


def lean_criss_cross_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    gamma: Tensor | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """`residual + gamma * CCA(q, k, v)` through `LeanCrissCrossAttention` when needed.

    `gamma` is the module's (1,) gate and `residual` its input; either may be None
    (then no gate, no residual). Without a gradient to compute (inference,
    `torch.no_grad`) it runs the same forward maths, `lean_forward`, as plain tensor
    code. Not for ONNX export or `torch.export`, which cannot trace an
    autograd.Function and would bake the per-image and per-block loops into the graph
    for one size: there `seglib.models.attention` takes its plain einsum path instead.
    """
    dtype, stat = attention_dtypes(query, key, value)
    with autocast_off(value.device.type):
        if _needs_grad(query, key, value, gamma, residual):
            return LeanCrissCrossAttention.apply(query, key, value, gamma, residual, dtype,
                                                 stat)
        return lean_forward(query, key, value, dtype, stat, gamma, residual)


def lean_packed_criss_cross_attention(
    qkv: Tensor, c_qk: int, gamma: Tensor | None = None, residual: Tensor | None = None
) -> Tensor:
    """`lean_criss_cross_attention` on q, k, v stacked along channels in one tensor.

    `qkv` is (B, 2C' + C, H, W) (as `project_qkv` returns it),
    `c_qk` is C'. Used by `CrissCrossAttention`'s lean path during training.
    """
    q, k, v = _split(qkv, c_qk)
    dtype, stat = attention_dtypes(q, k, v)
    with autocast_off(qkv.device.type):
        if _needs_grad(qkv, gamma, residual):
            return LeanPackedCrissCrossAttention.apply(qkv, c_qk, gamma, residual, dtype, stat)
        return lean_forward(q, k, v, dtype, stat, gamma, residual)


# ## The query, key and value projections as one channels-last convolution


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
    with autocast_off(x.device.type):
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
        with autocast_off(grad.device.type):
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
