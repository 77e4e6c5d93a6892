r"""
# CCNet: criss-cross attention for semantic segmentation

[CCNet: Criss-Cross Attention for Semantic Segmentation](https://arxiv.org/abs/1811.11721)
(Huang et al., ICCV 2019 / TPAMI 2020). The backbone and head, all in this file; the
attention itself lives in `seglib.models.attention`, the loss in `seglib.models.losses`.

One criss-cross attention (CCA) pass lets each pixel gather context from its row and
column only. Applying the SAME module twice (recurrence $R = 2$) closes the gap: pixel
$u$ reaches $(h_u, w_\theta)$ and $(h_\theta, w_u)$ in the first pass, and every pixel
$\theta$ through one of those in the second, so the whole image contributes:

$$H'' = \mathrm{CCA}(\mathrm{CCA}(H)),\qquad
  \forall u, \theta:\ \frac{\partial H''_u}{\partial H_\theta} \neq 0 .$$

At a fraction of the cost of dense non-local attention: $O((H+W)\,HW)$ instead of
$O((HW)^2)$. The network is a ResNet at output stride 8 (dilated), the recurrent
criss-cross attention head (RCCA), and an FCN auxiliary head on `layer3` used in
training with loss weight 0.4.

Taught in `notebooks/03_rcca_ccnet.ipynb`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglib.models.attention import CrissCrossAttention
from seglib.models.backbone import build_backbone
from seglib.models.decoder import SkipDecoder
from seglib.models.layers import conv_bn_relu

__all__ = ["RCCAModule", "CCNet"]


class RCCAModule(nn.Module):
    r"""Recurrent criss-cross attention head.

    $$H^{(0)} = \mathrm{conv}_a(X),\quad H^{(r)} = \mathrm{CCA}(H^{(r-1)}),\quad
      Y = \mathrm{cls}\big(\mathrm{bottleneck}([X, \mathrm{conv}_b(H^{(R)})])\big)$$

    Args:
        in_channels: channels $C$ of the backbone feature $X$ (2048 for ResNet-50).
        num_classes: number of classes K.
        recurrence: $R$, how many times the ONE shared `cca` is applied (paper: 2).
        reduction: query/key reduction of the CCA ($C'/8$).
        inter_channels: width of the attention branch (default $C/4$, 512 for 2048).
        dropout: Dropout2d rate before the classifier.

    Attributes `conva`, `cca`, `convb`, `bottleneck`, `classifier`.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        recurrence: int = 2,
        reduction: int = 8,
        inter_channels: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if recurrence < 0:
            raise ValueError(f"recurrence must be >= 0, got {recurrence}")
        inter = in_channels // 4 if inter_channels is None else inter_channels
        if inter < 1:
            raise ValueError(f"in_channels={in_channels} too small for a C/4 attention branch")
        self.in_channels = in_channels
        self.recurrence = recurrence
        # passes (1..R) whose attention is removed: H^(r) = H^(r-1) (see attention_knockout)
        self.knocked_out: frozenset[int] = frozenset()
        # Reduce $C \to C/4$ before attention (cheaper energies)
        self.conva = conv_bn_relu(in_channels, inter)
        # ONE criss-cross attention, reused on every recurrence (weights shared)
        self.cca = CrissCrossAttention(inter, reduction)
        self.convb = conv_bn_relu(inter, inter)
        # Concatenate with the input, fuse back to `inter` channels
        self.bottleneck = nn.Sequential(conv_bn_relu(in_channels + inter, inter),
                                        nn.Dropout2d(dropout))
        self.classifier = nn.Conv2d(inter, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        """`x` (B, C, h, w) -> logits (B, K, h, w)."""
        return self.classifier(self.features(x))  # (B, K, h, w)

    def features(self, x: Tensor) -> Tensor:
        """`x` (B, C, h, w) -> the features the classifier reads (B, C/4, h, w)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        out = self.conva(x)  # (B, C/4, h, w)
        for r in range(1, self.recurrence + 1):
            if r in self.knocked_out:  # the pass adds nothing: H^(r) = H^(r-1)
                continue
            # $H^{(r)} = \mathrm{CCA}(H^{(r-1)})$ with the same weights each time
            out = self.cca(out)  # (B, C/4, h, w)
        out = self.convb(out)  # (B, C/4, h, w)
        out = torch.cat([x, out], dim=1)  # (B, C + C/4, h, w)
        return self.bottleneck(out)  # (B, C/4, h, w)


class CCNet(nn.Module):
    """CCNet: dilated ResNet (output stride 8) + RCCA head + auxiliary FCN head.

    Args:
        num_classes: number of classes K.
        backbone: "resnet18" ... "resnet152" (paper: resnet101; resnet18 for quick CPU runs).
        recurrence: R, number of CCA passes (2 reaches every pixel).
        aux: build the auxiliary FCN head on `layer3` (training only).
        weights_backbone: backbone weights (see `seglib.models.backbone.build_backbone`).
        output_stride: 8 (the paper: small objects keep their pixels) or 16 (a quarter of
            the attention and layer3/4 cost; measured in `benchmarks/throughput.py`).
        decoder: fuse the head's features with `layer1` (stride 4) before the classifier
            (`seglib.models.decoder.SkipDecoder`, not in the paper): thin classes such as
            poles and signs keep more of their pixels.

    Forward `(B, 3, H, W)`: in eval mode (or with `aux=False`) the logits `(B, K, H, W)`
    at the input's exact size; in training with `aux=True` the tuple `(main, aux)`, both
    at the input's size (combine them with `ccnet_loss`).
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        recurrence: int = 2,
        aux: bool = True,
        weights_backbone: Any = None,
        output_stride: int = 8,
        decoder: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.backbone = build_backbone(backbone, output_stride=output_stride,
                                       weights=weights_backbone)
        c1, _, c3, c4 = self.backbone.stage_channels
        self.head = RCCAModule(c4, num_classes, recurrence=recurrence)
        self.decoder = SkipDecoder(c4 // 4, c1) if decoder else None
        # FCN head on layer3 (deep supervision): 3x3 conv to C3/2, BN, ReLU, dropout, 1x1
        self.aux_classifier = (
            nn.Sequential(conv_bn_relu(c3, c3 // 2), nn.Dropout2d(0.1),
                          nn.Conv2d(c3 // 2, num_classes, 1))
            if aux
            else None
        )

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Segment a batch of images `x` (B, 3, H, W) into class logits (B, K, H, W).

        Backbone features at 1/s of the input (output stride s = 8 keeps small objects), the
        RCCA head on the last stage, then bilinear upsampling to the exact input size. In
        training mode with an auxiliary head it returns `(main, aux)`, where `aux` is a
        plain classifier on the third stage that adds gradient to the middle of the net
        (see `ccnet_loss`); otherwise the main logits only.
        """
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D batch (B, 3, H, W), got shape {tuple(x.shape)}")
        B, C, H, W = x.shape
        c1, _, c3, c4 = self.backbone(x)  # (B, C1, H/4, W/4), (B, C3|C4, H/s, W/s)
        if self.decoder is None:
            out = self.head(c4)  # (B, K, H/s, W/s)
        else:  # the same classifier, reading features sharpened at stride 4
            out = self.head.classifier(self.decoder(self.head.features(c4), c1))  # (B, K, H/4, W/4)
        # Bilinear back to the exact input size (never a fixed factor: 360 / 8 = 45)
        out = F.interpolate(out, size=(H, W), mode="bilinear", align_corners=False)  # (B, K, H, W)
        if self.training and self.aux_classifier is not None:
            aux = self.aux_classifier(c3)  # (B, K, H/s, W/s)
            # (B, K, H/s, W/s) -> (B, K, H, W), like the main head
            aux = F.interpolate(aux, size=(H, W), mode="bilinear", align_corners=False)
            return out, aux
        return out
