"""
# Build a segmentation model by name

One entry point for the command lines, the notebooks and `load_model`: `ccnet`
(`seglib.models.ccnet.CCNet`, with its auxiliary head unless `aux=False`) or `refinenet`
(`seglib.models.refinenet.RefineNet`), on any ResNet backbone.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from seglib.models.ccnet import CCNet
from seglib.models.refinenet import RefineNet

__all__ = ["MODELS", "build_model"]

MODELS = ("ccnet", "refinenet")


def build_model(
    name: str,
    num_classes: int,
    backbone: str = "resnet18",
    *,
    recurrence: int = 2,
    features: int = 256,
    weights_backbone: Any = None,
    aux: bool = True,
    output_stride: int = 8,
    decoder: bool = False,
) -> nn.Module:
    """Build `ccnet` (with its auxiliary head unless `aux=False`; `output_stride` 8 or
    16; a stride-4 `decoder` if asked) or `refinenet` (its own fixed strides)."""
    if name == "ccnet":
        return CCNet(num_classes, backbone=backbone, recurrence=recurrence, aux=aux,
                     weights_backbone=weights_backbone, output_stride=output_stride,
                     decoder=decoder)
    if name == "refinenet":
        return RefineNet(num_classes, backbone=backbone, features=features,
                         weights_backbone=weights_backbone)
    raise ValueError(f"unknown model {name!r}, expected one of {MODELS}")
