r"""
# A local stem + RCCA: the smallest network for the long-range task

The network of notebook 03's experiment (`seglib.data.long_range`): three $3\times3$
convolutions (the first with stride 2) see only a small window of the image, then the
real `RCCAModule` with $R = 0$, 1 or 2 passes of its one criss-cross attention, then
bilinear upsampling of the logits to the input size. With $R = 0$ the whole network is
local: an output pixel depends on the input within `RECEPTIVE_FIELD` pixels of it
(three stem convolutions, the head's three $3\times3$ convolutions at stride 2, the
$\times 2$ upsampling), fewer than the task's cue distance, so only attention can bring
the cue's colour to an object.

Its `backbone` returns a tuple of stage features like seglib's ResNet and its `head` is
an `RCCAModule`, so `seglib.models.rcca_attention` records its attention maps as for CCNet.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from seglib.models.ccnet import RCCAModule
from seglib.models.layers import conv_bn_relu

__all__ = ["RECEPTIVE_FIELD", "LocalStem", "LongRangeNet"]

#: an output pixel of `LongRangeNet(recurrence=0)` depends only on input pixels at most
#: this many rows and columns away (checked by a gradient test)
RECEPTIVE_FIELD: int = 13


class LocalStem(nn.Module):
    """Three 3x3 conv-BN-ReLU layers, the first with stride 2: (B, 3, H, W) -> (B, C, H/2, W/2).

    A feature cell sees an 11x11 window of the input. Returns a one-element tuple, the
    stage features, like `seglib.models.backbone.ResNet` returns its four stages.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width // 2),
            nn.ReLU(inplace=True),
            conv_bn_relu(width // 2, width),
            conv_bn_relu(width, width),
        )
        self.stage_channels = (width,)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        return (self.layers(x),)  # ((B, C, H/2, W/2),)


class LongRangeNet(nn.Module):
    """Local stem + `RCCAModule` (R passes of one criss-cross attention) + upsampling.

    Args:
        num_classes: K (4 for the long-range task).
        recurrence: R = 0 (no attention: a purely local network), 1 (row and column)
            or 2 (every pixel).
        width: channels of the stem's features.
        attention_width: channels of the attention branch (the head's `inter_channels`).
        reduction: query/key reduction ($C' = $ `attention_width / reduction`).

    Forward (B, 3, H, W) -> logits (B, K, H, W) (even H and W keep the cells aligned).
    """

    def __init__(self, num_classes: int = 4, recurrence: int = 2, width: int = 16,
                 attention_width: int = 16, reduction: int = 2) -> None:
        super().__init__()
        self.backbone = LocalStem(width)
        self.head = RCCAModule(width, num_classes, recurrence=recurrence, reduction=reduction,
                               inter_channels=attention_width, dropout=0.0)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        out = self.head(self.backbone(x)[-1])  # (B, K, H/2, W/2)
        return F.interpolate(out, size=(H, W), mode="bilinear", align_corners=False)  # (B, K, H, W)
