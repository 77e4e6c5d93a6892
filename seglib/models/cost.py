r"""
# Multiply-adds of a network's convolutions, counted while it runs

A convolution with $C_\text{in}$ input channels, $g$ groups and a $k_h \times k_w$
kernel does $C_\text{in}/g \cdot k_h k_w$ multiply-adds for each of its output values,

$$\text{MACs} = \underbrace{C_\text{out}\, h\, w}_\text{output values}
  \cdot \frac{C_\text{in}}{g} \cdot k_h k_w,$$

and in a CNN the convolutions are nearly all of the arithmetic (batch norm, ReLU,
pooling and bilinear resizing cost one or a few operations per value). Forward hooks
read the output shape of every `nn.Conv2d` during one forward pass, so the count
follows the input's size, the dilation and the output stride exactly. Notebook 01 uses
it to price output stride 8, notebook 04 to price RefineNet's refinement path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["conv_macs"]


def conv_macs(model: nn.Module, *inputs: Any) -> dict[str, int]:
    """Multiply-adds per image of every `nn.Conv2d` in `model` during `model(*inputs)`.

    Args:
        model: any module; it runs once under `torch.no_grad()` (put it in eval mode
            first if batch norm statistics must not change).
        *inputs: its positional inputs, e.g. one `(B, 3, H, W)` tensor. The counts are
            per image (per item of the batch), so `B = 1` is enough.

    Returns:
        MACs summed by the top-level child of `model` that holds each convolution, in
        the order they ran (`{"conv1": ..., "layer1": ..., ...}` for a ResNet; the key is
        `""` when `model` is itself a convolution). `sum(result.values())` is the total.
        A convolution run twice (a shared module) is counted twice.
    """
    owner = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            owner[module] = name.split(".")[0]
    totals: dict[str, int] = {}

    def count(conv: nn.Conv2d, args: tuple, out: torch.Tensor) -> None:
        per_output = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        key = owner[conv]
        totals[key] = totals.get(key, 0) + out[0].numel() * per_output  # out: (B, C, h, w)

    hooks = [conv.register_forward_hook(count) for conv in owner]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return totals
