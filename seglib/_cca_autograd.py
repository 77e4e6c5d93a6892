r"""
# Memory-lean criss-cross attention: recompute instead of store

The default path of `seglib.attention.criss_cross_attention`; the idea of
[FlashAttention](https://arxiv.org/abs/2205.14135) applied along rows and columns.

Plain autograd keeps the (B, H, W, H + W) softmax (and, in the usual bmm
formulation, permuted copies of it and of $V$) alive until backward. Here the
forward keeps only $Q$, $K$, $V$ and one float32 log-sum-exp per pixel,

$$\ell_u = \log \sum_{i \in \Omega_u} \exp(Q_u^\top K_i),$$

and backward rebuilds the weights as $A_{i,u} = \exp(Q_u^\top K_i - \ell_u)$: one extra
matmul over the $C' = C/8$ query/key channels, about 1/8 of the forward's cost.
With $dA_{i,u} = dO_u^\top V_i$ and $\delta_u = \sum_i A_{i,u}\,dA_{i,u} = dO_u^\top O_u$
the softmax backward is $dS_{i,u} = A_{i,u}(dA_{i,u} - \delta_u)$, then
$dQ_u = \sum_i dS_{i,u} K_i$, $dK_i = \sum_u dS_{i,u} Q_u$, $dV_i = \sum_u A_{i,u}\,dO_u$.

Layout: every (B, X, H, W) tensor is used as two batched matrices, rows
(B, H, W, X) and columns (B, W, H, X), so each branch is one plain batched matmul
with X (channels) contiguous; the column weights stay in their native (B, W, H, H)
order and are never concatenated with the row weights. Taught at the end of
notebook `02_criss_cross_attention.ipynb`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seglib.attention import _centre, _dtypes, _no_autocast

__all__ = ["LeanCrissCrossAttention", "lean_criss_cross_attention", "lean_forward"]


def _layouts(x: Tensor) -> tuple[Tensor, Tensor]:
    """(B, X, H, W) -> columns (B, W, H, X) and rows (B, H, W, X), both contiguous."""
    cols = x.permute(0, 3, 2, 1).contiguous()  # (B, W, H, X): column w holds pixels (., w)
    rows = x.permute(0, 2, 3, 1).contiguous()  # (B, H, W, X): row h holds pixels (h, .)
    return cols, rows


def _merge(o_cols: Tensor, o_rows: Tensor) -> Tensor:
    """Column part (B, W, H, X) + row part (B, H, W, X) -> (B, X, H, W) (channels-last)."""
    return o_rows.add_(o_cols.transpose(1, 2)).permute(0, 3, 1, 2)  # (B, X, H, W)


def _weighted_sum(p_col: Tensor, p_row: Tensor, cols: Tensor, rows: Tensor) -> Tensor:
    r"""$\sum_{i \in \Omega_u} P_{i,u} U_i$ for weights P and a tensor U in both layouts."""
    o_cols = p_col @ cols  # (B, W, H, G) @ (B, W, G, X) -> (B, W, H, X)
    o_rows = p_row @ rows  # (B, H, W, V) @ (B, H, V, X) -> (B, H, W, X)
    return _merge(o_cols, o_rows)  # (B, X, H, W)


def _spread(p_col: Tensor, p_row: Tensor, cols: Tensor, rows: Tensor) -> Tensor:
    r"""The transpose of `_weighted_sum`: $\sum_{u : i \in \Omega_u} P_{i,u} U_u$."""
    o_cols = p_col.transpose(-1, -2) @ cols  # (B, W, G, H) @ (B, W, H, X) -> (B, W, G, X)
    o_rows = p_row.transpose(-1, -2) @ rows  # (B, H, V, W) @ (B, H, W, X) -> (B, H, V, X)
    return _merge(o_cols, o_rows)  # (B, X, H, W)


def _probabilities(
    q: Tensor, k: Tensor, stat: torch.dtype, lse: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Softmax weights, column (B, W, H, H) and row (B, H, W, W), and lse (B, H, W).

    With `lse` given (backward), the weights are rebuilt from it instead of normalised.
    """
    q_cols, q_rows = _layouts(q.to(stat))
    k_cols, k_rows = _layouts(k.to(stat))
    # $Q_u^\top K_i$ on the column (b, w, h, g) and on the row (b, h, w, v)
    s_col = q_cols @ k_cols.transpose(-1, -2)  # (B, W, H, H)
    s_row = q_rows @ k_rows.transpose(-1, -2)  # (B, H, W, W)
    # the centre is already in the column: drop it from the row, in place
    s_row.masked_fill_(_centre(q.shape[-1], q.device), float("-inf"))
    if lse is None:
        m = torch.maximum(s_col.amax(-1).transpose(1, 2), s_row.amax(-1))  # (B, H, W)
        s_col.sub_(m.transpose(1, 2).unsqueeze(-1)).exp_()
        s_row.sub_(m.unsqueeze(-1)).exp_()
        z = s_col.sum(-1).transpose(1, 2) + s_row.sum(-1)  # (B, H, W)
        s_col.div_(z.transpose(1, 2).unsqueeze(-1))
        s_row.div_(z.unsqueeze(-1))
        # $\ell_u = m_u + \log \sum_i \exp(Q_u^\top K_i - m_u)$
        lse = m + z.log()  # (B, H, W)
    else:
        # $A_{i,u} = \exp(Q_u^\top K_i - \ell_u)$
        s_col.sub_(lse.transpose(1, 2).unsqueeze(-1)).exp_()
        s_row.sub_(lse.unsqueeze(-1)).exp_()
    return s_col, s_row, lse


def lean_forward(
    query: Tensor, key: Tensor, value: Tensor, dtype: torch.dtype, stat: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Criss-cross attention (B, C, H, W) in `dtype` and the log-sum-exp (B, H, W) in `stat`.

    Plain tensor code (no autograd.Function), so it also serves inference, ONNX
    export and torch.compile. Autocast must be off: the dtypes are explicit.
    """
    p_col, p_row, lse = _probabilities(query, key, stat)
    v_cols, v_rows = _layouts(value.to(dtype))
    out = _weighted_sum(p_col.to(dtype), p_row.to(dtype), v_cols, v_rows)  # (B, C, H, W)
    return out, lse


class LeanCrissCrossAttention(torch.autograd.Function):
    """autograd.Function saving q, k, v and the per-pixel log-sum-exp only."""

    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, value: Tensor, dtype, stat):
        out, lse = lean_forward(query, key, value, dtype, stat)
        ctx.save_for_backward(query, key, value, lse)
        ctx.dtypes = (dtype, stat)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        query, key, value, lse = ctx.saved_tensors
        dtype, stat = ctx.dtypes
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        dq = dk = dv = None
        with _no_autocast(grad_out.device.type):
            p_col, p_row, _ = _probabilities(query, key, stat, lse)
            g_cols, g_rows = _layouts(grad_out.to(dtype))
            v_cols, v_rows = _layouts(value.to(dtype))
            if need_v:
                # $dV_i = \sum_u A_{i,u}\, dO_u$
                dv = _spread(p_col.to(dtype), p_row.to(dtype), g_cols, g_rows).to(value.dtype)
            if need_q or need_k:
                # $dA_{i,u} = dO_u^\top V_i$
                da_col = (g_cols @ v_cols.transpose(-1, -2)).to(stat)  # (B, W, H, H)
                da_row = (g_rows @ v_rows.transpose(-1, -2)).to(stat)  # (B, H, W, W)
                del g_cols, g_rows, v_cols, v_rows
                # $\delta_u = \sum_i A_{i,u}\, dA_{i,u}$
                delta = (p_col * da_col).sum(-1).transpose(1, 2) + (p_row * da_row).sum(-1)
                # $dS = A \odot (dA - \delta)$, in place over dA
                ds_col = da_col.sub_(delta.transpose(1, 2).unsqueeze(-1)).mul_(p_col)
                ds_row = da_row.sub_(delta.unsqueeze(-1)).mul_(p_row)
                del p_col, p_row
                if need_q:
                    # $dQ_u = \sum_i dS_{i,u} K_i$
                    dq = _weighted_sum(ds_col, ds_row, *_layouts(key.to(stat)))
                    dq = dq.to(query.dtype)
                if need_k:
                    # $dK_i = \sum_u dS_{i,u} Q_u$
                    dk = _spread(ds_col, ds_row, *_layouts(query.to(stat))).to(key.dtype)
        return dq, dk, dv, None, None


def lean_criss_cross_attention(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """Criss-cross attention through `LeanCrissCrossAttention` when a gradient is needed.

    Without a gradient to compute (inference, `torch.no_grad`) or during ONNX export
    (which cannot trace an autograd.Function) it runs the same forward maths,
    `lean_forward`, as plain tensor code.
    """
    dtype, stat = _dtypes(query, key, value)
    needs_grad = torch.is_grad_enabled() and (
        query.requires_grad or key.requires_grad or value.requires_grad
    )
    with _no_autocast(value.device.type):
        if needs_grad and not torch.onnx.is_in_onnx_export():
            return LeanCrissCrossAttention.apply(query, key, value, dtype, stat)
        return lean_forward(query, key, value, dtype, stat)[0]
