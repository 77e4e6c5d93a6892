"""
# Small layers shared by the segmentation heads

The convolution, batch norm and ReLU block that CCNet's head, its auxiliary head and the
stride-4 decoder are built from.
"""

from __future__ import annotations

from torch import nn

__all__ = ["conv_bn_relu"]


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """A `kernel_size` convolution that keeps the size (no bias: BN follows), BN, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )
