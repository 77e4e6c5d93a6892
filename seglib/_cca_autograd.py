r"""
# Memory-lean criss-cross attention: recompute instead of store

The default path of `seglib.attention.criss_cross_attention` and of the
`CrissCrossAttention` module; the idea of [FlashAttention](https://arxiv.org/abs/2205.14135)
applied along rows and columns.

Plain autograd keeps the (B, H, W, H + W) softmax (and, in the usual bmm
formulation, permuted copies of it and of $V$) alive until backward. Here the
forward keeps only $Q$, $K$, $V$ and one float32 log-sum-exp per pixel,

$$\ell_u = \log \sum_{i \in \Omega_u} \exp(Q_u^\top K_i),$$

and backward rebuilds the weights as $A_{i,u} = \exp(Q_u^\top K_i - \ell_u)$: one extra
matmul over the $C' = C/8$ query/key channels, about 1/8 of the forward's cost.
With $dA_{i,u} = dO_u^\top V_i$ and $\delta_u = \sum_i A_{i,u}\,dA_{i,u} = dO_u^\top O_u$
the softmax backward is $dS_{i,u} = A_{i,u}(dA_{i,u} - \delta_u)$, then
$dQ_u = \sum_i dS_{i,u} K_i$, $dK_i = \sum_u dS_{i,u} Q_u$, $dV_i = \sum_u A_{i,u}\,dO_u$.

The module's gate $\gamma$ is folded in: the Function returns $\gamma O$, so nobody has
to keep $O$ for $\partial L / \partial \gamma = \sum_u dY_u^\top O_u$, which is the
sum of the $\delta_u$ computed anyway (with $dY$ in place of $dO$).

Layout: tensors are used channels-last, rows (B, H, W, X), so the row branch is one
batched matmul. The column branch needs columns (W, B, H, X); they are copied a
block of columns at a time, never the whole tensor, and added into the row result in
place. The output is a channels-last (B, C, H, W) view. Taught at the end of
notebook `02_criss_cross_attention.ipynb`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from seglib.attention import _centre, _dtypes, _no_autocast, _plain_attention

__all__ = ["LeanCrissCrossAttention", "lean_criss_cross_attention", "lean_forward"]

BLOCK_BYTES = 8 * 2**20  # the column branch copies at most ~8 MB of a tensor at a time
MAX_BLOCKS = 4  # ...in at most 4 blocks (each block is a handful of kernel launches)


def _rows(x: Tensor) -> Tensor:
    """(B, X, H, W) -> (B, H, W, X) contiguous; free for a channels-last tensor."""
    return x.permute(0, 2, 3, 1).contiguous()  # (B, H, W, X)


def _blocks(rows: Tensor) -> list[slice]:
    """Column blocks of a rows tensor: one for small tensors, up to MAX_BLOCKS."""
    W = rows.shape[2]
    n = min(MAX_BLOCKS, W, -(-rows.numel() * rows.element_size() // BLOCK_BYTES))
    step = -(-W // max(n, 1))
    return [slice(w0, min(w0 + step, W)) for w0 in range(0, W, step)]


def _cols(rows: Tensor, sl: slice) -> Tensor:
    """Columns `sl` of a rows tensor (B, H, W, X) as contiguous (w, B, H, X)."""
    return rows[:, :, sl].permute(2, 0, 1, 3).contiguous()  # (w, B, H, X)


def _pix(t: Tensor) -> Tensor:
    """Per-pixel statistic in column order (W, B, H) -> pixel order (B, H, W)."""
    return t.permute(1, 2, 0)


def _col(t: Tensor) -> Tensor:
    """Per-pixel statistic (B, H, W) -> column order (W, B, H, 1), to broadcast."""
    return t.permute(2, 0, 1).unsqueeze(-1)


def _weighted_sum(p_col: Tensor, p_row: Tensor, rows: Tensor) -> Tensor:
    r"""$\sum_{i \in \Omega_u} P_{i,u} U_i$ -> (B, H, W, X), for U given as rows."""
    out = p_row @ rows  # (B, H, W, V) @ (B, H, V, X) -> (B, H, W, X)
    for sl in _blocks(rows):
        o = p_col[sl] @ _cols(rows, sl)  # (w, B, H, G) @ (w, B, G, X) -> (w, B, H, X)
        out[:, :, sl] += o.permute(1, 2, 0, 3)  # (B, H, w, X)
    return out


def _spread(p_col: Tensor, p_row: Tensor, rows: Tensor) -> Tensor:
    r"""The transpose of `_weighted_sum`: $\sum_{u : i \in \Omega_u} P_{i,u} U_u$."""
    out = p_row.transpose(-1, -2) @ rows  # (B, H, V, W) @ (B, H, W, X) -> (B, H, V, X)
    for sl in _blocks(rows):
        o = p_col[sl].transpose(-1, -2) @ _cols(rows, sl)  # (w, B, G, X)
        out[:, :, sl] += o.permute(1, 2, 0, 3)  # (B, G, w, X)
    return out


def _probabilities(
    q_rows: Tensor, k_rows: Tensor, lse: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Softmax weights, column (W, B, H, H) and row (B, H, W, W), and lse (B, H, W).

    `q_rows`, `k_rows` are (B, H, W, C') in the statistics dtype. With `lse` given
    (backward) the weights are rebuilt from it instead of normalised.
    """
    W = q_rows.shape[2]
    q_cols, k_cols = _cols(q_rows, slice(0, W)), _cols(k_rows, slice(0, W))  # (W, B, H, C')
    # $Q_u^\top K_i$ on the column (w, b, h, g) and on the row (b, h, w, v)
    s_col = q_cols @ k_cols.transpose(-1, -2)  # (W, B, H, H)
    s_row = q_rows @ k_rows.transpose(-1, -2)  # (B, H, W, W)
    # the centre is already in the column: drop it from the row, in place
    s_row.masked_fill_(_centre(q_rows.shape[2], q_rows.device), float("-inf"))
    if lse is None:
        m = torch.maximum(_pix(s_col.amax(-1)), s_row.amax(-1))  # (B, H, W)
        s_col.sub_(_col(m)).exp_()
        s_row.sub_(m.unsqueeze(-1)).exp_()
        z = _pix(s_col.sum(-1)) + s_row.sum(-1)  # (B, H, W)
        s_col.div_(_col(z))
        s_row.div_(z.unsqueeze(-1))
        # $\ell_u = m_u + \log \sum_i \exp(Q_u^\top K_i - m_u)$
        lse = m + z.log()  # (B, H, W)
    else:
        # $A_{i,u} = \exp(Q_u^\top K_i - \ell_u)$
        s_col.sub_(_col(lse)).exp_()
        s_row.sub_(lse.unsqueeze(-1)).exp_()
    return s_col, s_row, lse


def _forward(q_rows, k_rows, v_rows, gamma, dtype, stat) -> tuple[Tensor, Tensor]:
    """(gamma *) attention as rows (B, H, W, C) in `dtype`, and lse (B, H, W)."""
    p_col, p_row, lse = _probabilities(q_rows.to(stat), k_rows.to(stat))
    if gamma is not None:  # $\gamma \sum_i A_{i,u} V_i = \sum_i (\gamma A_{i,u}) V_i$
        p_col, p_row = p_col.mul_(gamma.to(stat)), p_row.mul_(gamma.to(stat))
    return _weighted_sum(p_col.to(dtype), p_row.to(dtype), v_rows), lse


def lean_forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    dtype: torch.dtype,
    stat: torch.dtype,
    gamma: Tensor | None = None,
) -> Tensor:
    """(gamma *) criss-cross attention (B, C, H, W) in `dtype`, as plain tensor code.

    No autograd.Function, so it serves inference, ONNX export and torch.compile.
    Autocast must be off (the dtypes are explicit). The result is a channels-last view.
    """
    out, _ = _forward(_rows(query), _rows(key), _rows(value.to(dtype)), gamma, dtype, stat)
    return out.permute(0, 3, 1, 2)  # (B, C, H, W)


class LeanCrissCrossAttention(torch.autograd.Function):
    """autograd.Function saving q, k, v (channels-last) and the per-pixel log-sum-exp."""

    @staticmethod
    def forward(ctx, query, key, value, gamma, dtype, stat):
        q_rows, k_rows, v_rows = _rows(query), _rows(key), _rows(value.to(dtype))
        out, lse = _forward(q_rows, k_rows, v_rows, gamma, dtype, stat)
        ctx.save_for_backward(q_rows, k_rows, v_rows, lse, gamma)
        ctx.dtypes = (dtype, stat, query.dtype, key.dtype, value.dtype)
        return out.permute(0, 3, 1, 2)  # (B, C, H, W)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        q_rows, k_rows, v_rows, lse, gamma = ctx.saved_tensors
        dtype, stat, q_dtype, k_dtype, v_dtype = ctx.dtypes
        need_q, need_k, need_v, need_g = ctx.needs_input_grad[:4]
        dq = dk = dv = dg = None
        with _no_autocast(grad_out.device.type):
            q_rows, k_rows = q_rows.to(stat), k_rows.to(stat)
            p_col, p_row, _ = _probabilities(q_rows, k_rows, lse)
            g = torch.ones((), dtype=stat, device=lse.device) if gamma is None else gamma
            g = g.to(stat)
            # dY of the output (B, H, W, C); dO = gamma dY
            g_rows = _rows(grad_out.to(dtype))
            # $dA'_{i,u} = dY_u^\top V_i$ (so $dA = \gamma dA'$) and $dV = \gamma A^\top dY$
            da_row = g_rows @ v_rows.transpose(-1, -2)  # (B, H, W, W)
            da_col = torch.empty_like(p_col, dtype=da_row.dtype)  # (W, B, H, H)
            if need_v:
                a_col, a_row = (p_col * g).to(dtype), (p_row * g).to(dtype)
                dv = a_row.transpose(-1, -2) @ g_rows  # (B, H, V, C)
            for sl in _blocks(g_rows):
                g_cols = _cols(g_rows, sl)  # (w, B, H, C)
                torch.matmul(g_cols, _cols(v_rows, sl).transpose(-1, -2), out=da_col[sl])
                if need_v:  # (w, B, G, C) -> (B, G, w, C)
                    dv[:, :, sl] += (a_col[sl].transpose(-1, -2) @ g_cols).permute(1, 2, 0, 3)
            del g_rows
            da_col, da_row = da_col.to(stat), da_row.to(stat)
            # $\delta'_u = \sum_i A_{i,u} dA'_{i,u} = dY_u^\top O_u$
            delta = _pix((p_col * da_col).sum(-1)) + (p_row * da_row).sum(-1)  # (B, H, W)
            if need_g:
                dg = delta.sum().reshape(1).to(gamma.dtype)  # $\sum_u dY_u^\top O_u$
            if need_q or need_k:
                # $dS = A \odot (dA - \delta) = \gamma A \odot (dA' - \delta')$, over dA'
                ds_col = da_col.sub_(_col(delta)).mul_(p_col).mul_(g)
                ds_row = da_row.sub_(delta.unsqueeze(-1)).mul_(p_row).mul_(g)
                if need_q:  # $dQ_u = \sum_i dS_{i,u} K_i$
                    dq = _weighted_sum(ds_col, ds_row, k_rows).permute(0, 3, 1, 2).to(q_dtype)
                if need_k:  # $dK_i = \sum_u dS_{i,u} Q_u$
                    dk = _spread(ds_col, ds_row, q_rows).permute(0, 3, 1, 2).to(k_dtype)
            if dv is not None:
                dv = dv.permute(0, 3, 1, 2).to(v_dtype)
        return dq, dk, dv, dg, None, None


def lean_criss_cross_attention(
    query: Tensor, key: Tensor, value: Tensor, gamma: Tensor | None = None
) -> Tensor:
    """(gamma *) criss-cross attention through `LeanCrissCrossAttention` when needed.

    Without a gradient to compute (inference, `torch.no_grad`) it runs the same
    forward maths, `lean_forward`, as plain tensor code. During ONNX export or
    `torch.export` (which cannot trace an autograd.Function, and would bake the
    column-block loop into the graph for one size) it takes the plain einsum path of
    `seglib.attention`, the same maths again. `gamma` is the module's (1,) gate or None.
    """
    if torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting():
        out = _plain_attention(query, key, value)
        return out if gamma is None else gamma * out
    dtype, stat = _dtypes(query, key, value)
    tensors = (query, key, value) if gamma is None else (query, key, value, gamma)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    with _no_autocast(value.device.type):
        if needs_grad:
            return LeanCrissCrossAttention.apply(query, key, value, gamma, dtype, stat)
        return lean_forward(query, key, value, dtype, stat, gamma)
