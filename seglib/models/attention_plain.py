r"""
# The plain criss-cross attention and the checks both paths share

The teaching path of `seglib.models.attention`: energies $Q_u^\top K_i$ by einsum over
each pixel's column and row (the centre counted once, in the column), one softmax over
the $H + W - 1$ positions, and the weighted sum of values, all under ordinary autograd.
The memory-lean path (`seglib.models.attention_lean`) reuses the shape check, the dtype
rules and the centre mask from here, so that both compute exactly the same maths.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

__all__: list[str] = []  # private helpers of seglib.models.attention and attention_lean


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


def _dtypes(*tensors: Tensor) -> tuple[torch.dtype, torch.dtype]:
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


def _no_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """Switch autocast off (dtypes are handled explicitly); a no-op when it is off."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def _exporting() -> bool:
    """True while ONNX export or `torch.export` traces us: they cannot trace an
    autograd.Function, so the lean paths fall back to the plain einsum maths."""
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


def _needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd must record an op on these tensors (None entries ignored)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _memory_format(x: Tensor) -> torch.memory_format:
    """`torch.channels_last` for a channels-last (and not also contiguous) 4-D tensor,
    else `torch.contiguous_format`: the layout `CrissCrossAttention` returns."""
    if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
        return torch.contiguous_format
    return torch.channels_last


def _centre(w: int, device: torch.device) -> Tensor:
    """(W, W) bool, True on v == w: the pixel itself in its own row.

    Built from index comparison (not `torch.eye`) on the input's device, so it traces
    to ONNX with a dynamic width and never pins a device.
    """
    idx = torch.arange(w, device=device)
    return idx[:, None] == idx[None, :]  # (W, W)


def _energies(query: Tensor, key: Tensor) -> tuple[Tensor, Tensor]:
    r"""Column and row energies $Q_u^\top K_i$, the centre removed from the row branch.

    Returns `e_col` (B, H, W, H) over pixels (g, w) and `e_row` (B, H, W, W) over
    pixels (h, v), with `-inf` at v == w so the centre is counted once (in the column).
    """
    # `q`, `k` have shape `[B, C', H, W]`; column scores for (h, w) against (g, w)
    e_col = torch.einsum("bchw,bcgw->bhwg", query, key)  # (B, H, W, H)
    # row scores for (h, w) against (h, v)
    e_row = torch.einsum("bchw,bchv->bhwv", query, key)  # (B, H, W, W)
    e_row = e_row.masked_fill(_centre(query.shape[-1], query.device), float("-inf"))
    return e_col, e_row


def _plain_attention(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """The teaching path: einsum energies, one softmax over the concatenation, einsum sum."""
    B, C, H, W = value.shape
    dtype, stat = _dtypes(query, key, value)
    with _no_autocast(value.device.type):
        e_col, e_row = _energies(query.to(stat), key.to(stat))
        # $A_{u,\cdot} = \mathrm{softmax}(Q_u^\top K_{\Omega_u})$, in float32 (or float64)
        attn = torch.softmax(torch.cat([e_col, e_row], dim=-1), dim=-1)  # (B, H, W, H+W)
        a_col, a_row = attn.to(dtype).split([H, W], dim=-1)
        v = value.to(dtype)
        # $\sum_{i \in \Omega_u} A_{u,i} V_i$: the column part plus the row part
        out = torch.einsum("bhwg,bcgw->bchw", a_col, v)  # (B, C, H, W)
        out = out + torch.einsum("bhwv,bchv->bchw", a_row, v)  # (B, C, H, W)
    return out
