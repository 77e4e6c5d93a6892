r"""
# ResNet backbones with dilation

[Deep Residual Learning for Image Recognition](https://arxiv.org/abs/1512.03385)
(He et al., CVPR 2016), used as a feature extractor for segmentation as in
[DeepLab](https://arxiv.org/abs/1606.00915) and [CCNet](https://arxiv.org/abs/1811.11721).

A classification ResNet shrinks the image 32 times (output stride 32): a 360x480
CamVid frame becomes a 12x15 grid, too coarse for thin poles and pedestrians. Replacing
the stride 2 of `layer4` (and `layer3`) by a dilation of 2 (and 4) keeps the resolution
at 1/16 (or 1/8) while every 3x3 kernel still sees the same receptive field as before:

$$y[i] = \sum_{k=-1}^{1} w[k]\, x[i + d\,k]$$

with dilation $d$. The weights do not change shape, so ImageNet weights still fit.

The attribute names are torchvision's (`conv1`, `bn1`, `layer1` ... `layer4`), minus the
classifier (`avgpool`, `fc`), so `torchvision.models.resnet50` weights load strictly.
`forward` returns the four stage features `[layer1, layer2, layer3, layer4]`.

Taught in `notebooks/01_backbone.ipynb`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from seglib.torch_load import load_torch_file

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "build_backbone",
    "BACKBONES",
    "load_backbone_weights",
]

# `output_stride` -> torchvision's `replace_stride_with_dilation` for layer2..layer4
_DILATION = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution whose padding keeps the size (up to the stride) for any dilation."""
    return nn.Conv2d(
        in_planes, out_planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution (channel mixing, or the strided shortcut projection)."""
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    r"""Two 3x3 convolutions plus the identity: $y = \mathrm{ReLU}(F(x) + x)$ (ResNet-18/34).

    `expansion = 1`: the block outputs `planes` channels (the seeds' 4 is a bug).

    Unlike torchvision's BasicBlock, it accepts dilation > 1, so ResNet-18/34 run at
    output stride 8 or 16: both 3x3 convolutions are dilated, the first block of a
    dilated stage keeping the previous dilation (torchvision's Bottleneck rule). The
    receptive field then shrinks slightly (ResNet-18: 435 px at OS32, 387 px at OS8),
    which notebook 01 measures by gradient.
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    r"""1x1 reduce, 3x3, 1x1 expand, plus the identity (ResNet-50/101/152).

    `expansion = 4`: the block outputs `4 * planes` channels. The stride and the
    dilation sit on the 3x3 convolution (torchvision's "ResNet v1.5").
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet body (stem + four stages) returning the four stage features.

    Args:
        block: `BasicBlock` or `Bottleneck`.
        layers: number of blocks per stage, e.g. `[3, 4, 6, 3]` for ResNet-50.
        output_stride: 32 (classification), 16 (layer4 dilated) or 8 (layer3 and
            layer4 dilated), exactly as torchvision's `replace_stride_with_dilation`
            `[False, False, True]` / `[False, True, True]`.
        norm_layer: normalisation constructor (default `nn.BatchNorm2d`).

    Attributes:
        stage_channels: channels of `[layer1, ..., layer4]`, e.g. `(256, 512, 1024, 2048)`.
        output_stride: the input-to-layer4 size ratio.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        output_stride: int = 32,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if output_stride not in _DILATION:
            raise ValueError(f"output_stride must be one of 8, 16, 32, got {output_stride!r}")
        if len(layers) != 4:
            raise ValueError(f"layers must have 4 entries (one per stage), got {layers!r}")
        self.output_stride = output_stride
        self._norm_layer = norm_layer
        self.inplanes = 64
        self.dilation = 1
        dilate = _DILATION[output_stride]
        # Stem: 7x7/2 conv and 3x3/2 max pool, 1/4 resolution
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=dilate[2])
        self.stage_channels = tuple(p * block.expansion for p in (64, 128, 256, 512))
        # He init for convolutions, unit-scale BN (as torchvision)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self,
        block: type[BasicBlock | Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        """One stage. When `dilate`, the stride becomes a dilation; the FIRST block keeps
        the previous dilation and the later blocks use the new one (torchvision's rule,
        so that features match torchvision's exactly)."""
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                self._norm_layer(planes * block.expansion),
            )
        layers = [
            block(self.inplanes, planes, stride, downsample, previous_dilation, self._norm_layer)
        ]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(self.inplanes, planes, dilation=self.dilation, norm_layer=self._norm_layer)
            )
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        """`x` (B, 3, H, W) -> `[layer1, layer2, layer3, layer4]` features."""
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D batch (B, 3, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != 3:
            raise ValueError(f"expected 3 input channels (RGB), got {x.shape[1]}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        c1 = self.layer1(x)  # (B, C1, H/4, W/4)
        c2 = self.layer2(c1)  # (B, C2, H/8, W/8)
        c3 = self.layer3(c2)  # (B, C3, H/8 or H/16, ...)
        c4 = self.layer4(c3)  # (B, C4, H/output_stride, W/output_stride)
        return [c1, c2, c3, c4]


# name -> (block, blocks per stage)
BACKBONES: dict[str, tuple[type[BasicBlock | Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


def _torchvision_weights(name: str, weights: Any) -> Any:
    """Resolve a torchvision weights enum, or its name, for the architecture `name`."""
    from torchvision.models import get_model_weights, get_weight

    enum_cls = get_model_weights(name)  # e.g. ResNet50_Weights
    if isinstance(weights, str):
        try:
            if "." in weights:  # "ResNet50_Weights.IMAGENET1K_V2"
                weights = get_weight(weights)
            else:  # "IMAGENET1K_V1" or "DEFAULT"
                weights = enum_cls[weights]
        except (KeyError, ValueError) as err:
            choices = ", ".join(w.name for w in enum_cls)
            raise ValueError(
                f"unknown weights {weights!r} for {name}: expected an existing file, "
                f"a torchvision enum or one of {choices}, DEFAULT"
            ) from err
    if not isinstance(weights, enum_cls):
        raise ValueError(f"weights {weights!r} do not belong to {name} (expected {enum_cls})")
    return weights


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """Read a state_dict file (or a {'state_dict': ...} wrapper) onto the CPU; an
    empty, truncated or foreign file is a ValueError naming it."""
    obj = load_torch_file(path, "backbone weights file")
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} does not hold a state_dict (got {type(obj).__name__})")
    return dict(obj)


def load_backbone_weights(model: ResNet, name: str, weights: Any) -> ResNet:
    """Load `weights` into `model` strictly (classifier keys `fc.*` are dropped).

    `weights` is a torchvision enum (e.g. `ResNet50_Weights.IMAGENET1K_V2`), its name
    (`"IMAGENET1K_V1"`, `"ResNet50_Weights.IMAGENET1K_V2"`, `"DEFAULT"`; downloaded by
    torchvision into its cache) or the path of a local state_dict file.
    """
    if isinstance(weights, str | os.PathLike) and (
        Path(weights).is_file() or str(weights).endswith((".pth", ".pt")) or os.sep in str(weights)
    ):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file not found: {path}")
        state = _read_state_dict(path)
        source = str(path)
    else:
        enum = _torchvision_weights(name, weights)
        state = enum.get_state_dict(progress=True, check_hash=True)
        source = f"torchvision {enum}"
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
        if unexpected:
            details.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
        if wrong:
            k = sorted(wrong)[0]
            details.append(
                f"{len(wrong)} shape mismatches (e.g. {k}: expected {tuple(own[k].shape)}, "
                f"got {tuple(state[k].shape)})"
            )
        raise ValueError(
            f"weights from {source} do not fit {name}: " + "; ".join(details)
            + f" -- expected a torchvision {name} state_dict"
        )
    model.load_state_dict(state, strict=True)
    return model


def build_backbone(name: str, output_stride: int = 32, weights: Any = None) -> ResNet:
    """Build the ResNet called `name` ("resnet18" ... "resnet152").

    Args:
        name: one of `BACKBONES`.
        output_stride: 32, 16 or 8 (dilation replaces the last strides).
        weights: None (random init), a torchvision weights enum or its name, or a local
            state_dict path (torchvision keys; `fc.*` ignored).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}, expected one of {sorted(BACKBONES)}")
    block, layers = BACKBONES[name]
    model = ResNet(block, layers, output_stride=output_stride)
    if weights is not None:
        load_backbone_weights(model, name, weights)
    return model


def resnet18(output_stride: int = 32, weights: Any = None) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]); stage channels (64, 128, 256, 512)."""
    return build_backbone("resnet18", output_stride, weights)


def resnet34(output_stride: int = 32, weights: Any = None) -> ResNet:
    """ResNet-34 (BasicBlock, [3, 4, 6, 3]); stage channels (64, 128, 256, 512)."""
    return build_backbone("resnet34", output_stride, weights)


def resnet50(output_stride: int = 32, weights: Any = None) -> ResNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]); stage channels (256, 512, 1024, 2048)."""
    return build_backbone("resnet50", output_stride, weights)


def resnet101(output_stride: int = 32, weights: Any = None) -> ResNet:
    """ResNet-101 (Bottleneck, [3, 4, 23, 3]); stage channels (256, 512, 1024, 2048)."""
    return build_backbone("resnet101", output_stride, weights)


def resnet152(output_stride: int = 32, weights: Any = None) -> ResNet:
    """ResNet-152 (Bottleneck, [3, 8, 36, 3]); stage channels (256, 512, 1024, 2048)."""
    return build_backbone("resnet152", output_stride, weights)
