r"""
# RefineNet: multi-path refinement

[RefineNet: Multi-Path Refinement Networks for High-Resolution Semantic Segmentation](
https://arxiv.org/abs/1611.06612) (Lin, Milan, Shen, Reid; CVPR 2017).

Instead of dilating the backbone (costly at high resolution), RefineNet keeps the
ResNet at output stride 32 and climbs back up: a cascade of four RefineNet blocks
fuses the coarse, semantic features of `layer4` with the finer ones of `layer3`,
`layer2` and `layer1`. Each block is built from three residual pieces:

* **RCU** (residual conv unit): $x + \mathrm{conv}(\mathrm{ReLU}(\mathrm{conv}(\mathrm{ReLU}(x))))$,
  adapts each input path;
* **MRF** (multi-resolution fusion): a 3x3 conv per path, bilinear resize of every path
  to the largest input's exact size, sum $\sum_i \mathrm{up}(\mathrm{conv}_i(x_i))$;
* **CRP** (chained residual pooling): $x \leftarrow x + \sum_{n=1}^{N} p_n$ with
  $p_n = \mathrm{conv}(\mathrm{maxpool}_{5\times5}(p_{n-1}))$, $p_0 = \mathrm{ReLU}(x)$,
  so that later pooling blocks see ever larger regions (background context).

Resizing always goes to an exact target size, never by a fixed scale factor: the seeds'
`scale_factor=2/4/8` breaks for CamVid's 360x480, whose stride-32 map is 12x15.

Taught in `notebooks/04_refinenet.ipynb`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglib.models.backbone import build_backbone

__all__ = [
    "ResidualConvUnit",
    "MultiResolutionFusion",
    "ChainedResidualPooling",
    "RefineNetBlock",
    "RefineNet",
]


class ResidualConvUnit(nn.Module):
    r"""RCU: $y = x + W_2 * \mathrm{ReLU}(W_1 * \mathrm{ReLU}(x))$ with 3x3 convolutions.

    A ResNet block without batch normalisation (as in the paper), keeping the width.
    The ReLUs are not in-place: `x` is needed again for the residual sum.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """Return the residual refinement `x + conv2(relu(conv1(relu(x))))`, same shape."""
        # x: (B, C, H, W) -> (B, C, H, W); 3x3 convs with padding 1 keep the size
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))  # (B, C, H, W)


class MultiResolutionFusion(nn.Module):
    r"""MRF: $y = \sum_i \mathrm{resize}(W_i * x_i,\ \text{size of the largest } x_i)$.

    Each path gets its own 3x3 convolution to `features` channels, then is resized
    bilinearly to the exact (H, W) of the largest input, and the paths are summed.
    With a single input (RefineNet-4) the block passes it through unchanged, as in
    the paper.

    Args:
        in_channels: channels of each input path.
        features: output channels.
    """

    def __init__(self, in_channels: Sequence[int], features: int) -> None:
        super().__init__()
        self.in_channels = tuple(in_channels)
        if len(self.in_channels) == 0:
            raise ValueError("MultiResolutionFusion needs at least one input path, got none")
        self.out_channels = self.in_channels[0] if len(self.in_channels) == 1 else features
        self.convs = nn.ModuleList(
            [nn.Conv2d(c, features, 3, padding=1) for c in self.in_channels]
            if len(self.in_channels) > 1
            else []
        )

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        """Return the sum of the per-path convs, each resized to the largest input's size."""
        if len(xs) != len(self.in_channels):
            raise ValueError(f"expected {len(self.in_channels)} inputs, got {len(xs)}")
        if len(xs) == 1:
            return xs[0]  # (B, C_0, H_0, W_0): passed through unchanged
        # The largest height and width set the output size, e.g. (45, 60) for 360x480 at
        # 1/8. `torch.sym_max` instead of `max`: no branch on sizes, so the graph stays
        # valid for every input size when exported with dynamic shapes.
        H, W = xs[0].shape[-2:]
        for x in xs[1:]:
            H, W = torch.sym_max(H, x.shape[-2]), torch.sym_max(W, x.shape[-1])
        out = None
        for conv, x in zip(self.convs, xs):
            y = conv(x)  # (B, features, h_i, w_i)
            # Resize to the exact size (an identity for the largest path)
            y = F.interpolate(y, size=(H, W), mode="bilinear", align_corners=False)  # (B, F, H, W)
            out = y if out is None else out + y  # (B, features, H, W)
        return out


class ChainedResidualPooling(nn.Module):
    r"""CRP: $x_0 = \mathrm{ReLU}(x)$, $p_n = W_n * \mathrm{maxpool}_{5\times5}(p_{n-1})$,
    $y = x_0 + \sum_{n=1}^{N} p_n$.

    Each pooling block (5x5 max pool, stride 1, then 3x3 conv) works on the previous
    block's output, so the $n$-th block pools over a $(4n+1)\times(4n+1)$ window: a
    cheap way to gather context from a large region, fused back by learned sums.

    Args:
        channels: width (kept).
        blocks: $N$. The CVPR paper uses 2 pooling blocks; later versions, e.g.
            Light-Weight RefineNet (Nekrasov et al., BMVC 2018), use 4, the default here
            (wider context for little cost at 256 channels). Pass 2 for the paper's setup.
    """

    def __init__(self, channels: int, blocks: int = 4) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"ChainedResidualPooling needs blocks >= 1, got {blocks}")
        self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)
        self.convs = nn.ModuleList(
            [nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(blocks)]
        )

    def forward(self, x: Tensor) -> Tensor:
        """Return `relu(x)` plus the outputs of the chained pool-conv blocks, same shape."""
        # Every step keeps (B, C, H, W): 5x5 pool stride 1 pad 2, 3x3 conv pad 1
        x = F.relu(x)  # (B, C, H, W)
        path = x
        for conv in self.convs:
            # $p_n = W_n * \mathrm{maxpool}(p_{n-1})$, added to the running sum
            path = conv(self.pool(path))  # (B, C, H, W)
            x = x + path  # (B, C, H, W)
        return x


class RefineNetBlock(nn.Module):
    """One RefineNet block: 2 RCUs per input path -> MRF -> CRP -> 1 output RCU.

    Args:
        in_channels: channels of each input path (e.g. `(256, 512)`: a backbone stage
            and the previous, coarser block's output).
        features: width after fusion.
        crp_blocks: pooling blocks in the CRP.
    """

    def __init__(self, in_channels: Sequence[int], features: int, crp_blocks: int = 4) -> None:
        super().__init__()
        self.rcus = nn.ModuleList(
            [nn.Sequential(ResidualConvUnit(c), ResidualConvUnit(c)) for c in in_channels]
        )
        self.mrf = MultiResolutionFusion(in_channels, features)
        self.out_channels = self.mrf.out_channels
        self.crp = ChainedResidualPooling(self.out_channels, crp_blocks)
        self.output_conv = ResidualConvUnit(self.out_channels)

    def forward(self, *xs: Tensor) -> Tensor:
        """Return the input paths fused (RCUs, MRF, CRP, output RCU) at the finest path's size."""
        if len(xs) != len(self.rcus):
            raise ValueError(f"expected {len(self.rcus)} input paths, got {len(xs)}")
        paths = [rcu(x) for rcu, x in zip(self.rcus, xs)]  # each (B, C_i, H_i, W_i)
        return self.output_conv(self.crp(self.mrf(paths)))  # (B, C_out, H_max, W_max)


class RefineNet(nn.Module):
    """4-cascade RefineNet on a ResNet at output stride 32.

    RefineNet-4 refines `layer4` alone; RefineNet-3 fuses `layer3` with RefineNet-4's
    output; ... RefineNet-1 works at 1/4 resolution. Each backbone stage is first
    adapted by a 3x3 conv: `layer4` to `2 * features` channels (512 for the paper's
    features=256, its wider top path), the others to `features`. Two more RCUs and a
    1x1 classifier follow RefineNet-1; the logits are resized bilinearly to the input's
    exact size (in training and in eval mode).

    Args:
        num_classes: number of classes K.
        backbone: "resnet18" ... "resnet152" (the paper uses resnet101 / resnet152).
        features: fusion width (paper: 256).
        weights_backbone: backbone weights (see `seglib.models.backbone.build_backbone`).
        crp_blocks: pooling blocks per CRP (default 4; the CVPR paper used 2).

    Forward: `(B, 3, H, W)` -> logits `(B, K, H, W)`.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet101",
        features: int = 256,
        weights_backbone: Any = None,
        crp_blocks: int = 4,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if features < 1:
            raise ValueError(f"features must be >= 1, got {features}")
        self.num_classes = num_classes
        self.backbone = build_backbone(backbone, output_stride=32, weights=weights_backbone)
        c1, c2, c3, c4 = self.backbone.stage_channels
        widths = (features, features, features, 2 * features)
        # Adapt each stage's width: layer1..layer3 -> features, layer4 -> 2 * features
        self.adapt = nn.ModuleList(
            [nn.Conv2d(c, w, 3, padding=1, bias=False) for c, w in zip((c1, c2, c3, c4), widths)]
        )
        self.refine4 = RefineNetBlock([widths[3]], features, crp_blocks)
        self.refine3 = RefineNetBlock([widths[2], self.refine4.out_channels], features, crp_blocks)
        self.refine2 = RefineNetBlock([widths[1], features], features, crp_blocks)
        self.refine1 = RefineNetBlock([widths[0], features], features, crp_blocks)
        # Two extra RCUs before the per-pixel classifier (the paper's output stage)
        self.classifier = nn.Sequential(
            ResidualConvUnit(features),
            ResidualConvUnit(features),
            nn.Conv2d(features, num_classes, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Return class logits (B, K, H, W) at the exact size of the (B, 3, H, W) input."""
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D batch (B, 3, H, W), got shape {tuple(x.shape)}")
        B, C, H, W = x.shape
        feats = self.backbone(x)  # strides 4, 8, 16, 32
        l1, l2, l3, l4 = (conv(f) for conv, f in zip(self.adapt, feats))
        y = self.refine4(l4)  # (B, 2F, H/32, W/32)
        y = self.refine3(l3, y)  # (B, F, H/16, W/16)
        y = self.refine2(l2, y)  # (B, F, H/8, W/8)
        y = self.refine1(l1, y)  # (B, F, H/4, W/4)
        logits = self.classifier(y)  # (B, K, H/4, W/4)
        logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
        return logits  # (B, K, H, W)
