"""
# What autograd keeps for backward

Every tensor an operation saves for its backward passes through the `pack` hook of
`torch.autograd.graph.saved_tensors_hooks`, so counting what a forward keeps alive
until backward takes a few lines. Used by notebook 09 (plain vs lean criss-cross
attention) and `benchmarks/attention.py`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["saved_for_backward_bytes"]


def saved_for_backward_bytes(module: nn.Module, x: Tensor) -> int:
    """Bytes autograd keeps for the backward of `module(x)`.

    Counts unique storages (views of one buffer count once) and leaves out `x` and the
    module's parameters, which exist whether or not anything is saved.
    """
    skip = {p.untyped_storage().data_ptr() for p in module.parameters()}
    skip.add(x.untyped_storage().data_ptr())
    kept: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(kept.values())
