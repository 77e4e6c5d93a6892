r"""
# A stride-4 decoder: give thin objects their pixels back

At output stride 8 a CamVid frame at half resolution (180x240) becomes a 23x30 grid; a
pole two pixels wide covers a quarter of one cell, and bilinear upsampling of the logits
cannot draw it again. The backbone's first stage (`layer1`, stride 4) still sees it.
The decoder of [DeepLabv3+](https://arxiv.org/abs/1802.02611) (Chen et al., ECCV 2018)
fuses the two: the head's features, upsampled to stride 4, concatenated with a thin
projection of `layer1` (48 channels, so that the deep features keep the upper hand), and
two 3x3 convolutions:

$$Z = \mathrm{conv}_{3\times3}\Big(\mathrm{conv}_{3\times3}\big(
      [\,\mathrm{up}(F_{head}),\ \mathrm{proj}(C_1)\,]\big)\Big)$$

The head's own classifier then reads $Z$ instead of $F_{head}$. Used by `CCNet` when
built with `decoder=True`. On a CPU, in the `camvid-cpu` recipe's training step, it
runs at 0.89x the images/s at output stride 8 and, at output stride 16, still at 1.95x
the recipe's (`python benchmarks/throughput.py --cpu-recipe`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglib.models.layers import conv_bn_relu

__all__ = ["SkipDecoder"]


class SkipDecoder(nn.Module):
    """Fuse coarse head features with fine backbone features (DeepLabv3+ decoder).

    Args:
        head_channels: channels of the head's features (and of the output).
        low_channels: channels of the fine feature (ResNet `layer1`: 64, or 256 for
            Bottleneck ResNets).
        projected: channels the fine feature is projected to (48 in DeepLabv3+).

    Forward `(head, low)`: head features `(B, C, h, w)` and the fine feature
    `(B, C_low, H4, W4)` -> fused features `(B, C, H4, W4)` at the fine feature's size.
    """

    def __init__(self, head_channels: int, low_channels: int, projected: int = 48) -> None:
        super().__init__()
        if min(head_channels, low_channels, projected) < 1:
            raise ValueError(
                f"channels must be >= 1, got head {head_channels}, low {low_channels}, "
                f"projected {projected}"
            )
        self.head_channels = head_channels
        self.low_channels = low_channels
        self.project = conv_bn_relu(low_channels, projected, 1)
        self.fuse = nn.Sequential(
            conv_bn_relu(head_channels + projected, head_channels, 3),
            conv_bn_relu(head_channels, head_channels, 3),
        )

    def forward(self, head: Tensor, low: Tensor) -> Tensor:
        """Upsample `head` to `low`'s size, concatenate, fuse."""
        if head.dim() != 4 or head.shape[1] != self.head_channels:
            raise ValueError(f"expected head (B, {self.head_channels}, h, w), "
                             f"got {tuple(head.shape)}")
        if low.dim() != 4 or low.shape[1] != self.low_channels or low.shape[0] != head.shape[0]:
            raise ValueError(f"expected low ({head.shape[0]}, {self.low_channels}, H, W), "
                             f"got {tuple(low.shape)}")
        # Exact size, never a fixed factor: 45x60 at stride 4 is not 23x30 times 2
        up = F.interpolate(head, size=low.shape[-2:], mode="bilinear", align_corners=False)
        fused = torch.cat([up, self.project(low)], dim=1)  # (B, C + 48, H4, W4)
        return self.fuse(fused)  # (B, C, H4, W4)
