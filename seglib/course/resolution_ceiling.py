r"""
# The resolution ceiling: how much IoU a map at stride s can reach at all

A network whose logits live on a grid $s$ times coarser than the labels (output stride
8 on a half-resolution input: $s = 16$ against CamVid's native 360x480 labels) decides
each label pixel from a few grid cells. Give it a perfect classifier: each cell knows
the share $\pi_c$ of every class among its $s \times s$ label pixels (average pooling of
the one-hot labels), the shares are upsampled bilinearly like logits, and the argmax is
the prediction:

$$\hat y = \arg\max_c\ \mathrm{up}_s\big(\mathrm{avgpool}_s(\mathbf{1}[y = c])\big).$$

A pole two pixels wide fills an eighth of a 16-pixel cell and loses every cell to the
building behind it; its IoU ceiling is near 0 however good the network is. The per-class
IoU of $\hat y$ against $y$ is this module's *resolution ceiling*. It is not a strict
bound (a network may make its logits sharper than shares), but it shows which classes a
stride gives up before training starts, and what a finer decoder can win back
(`seglib.models.decoder`, notebook 07).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from seglib.engine.metrics import confusion_matrix, iou_per_class

__all__ = ["cell_share_prediction", "resolution_ceiling"]


def cell_share_prediction(
    labels: Tensor, stride: int, num_classes: int, ignore_index: int = 255
) -> Tensor:
    """The argmax of the class shares of `stride`x`stride` cells, upsampled bilinearly.

    `labels` (B, H, W) int -> predictions (B, H, W) int64. Ignored pixels count for no
    class (they dilute every share of their cell alike). Cells at the right and bottom
    edges may be partial (`ceil_mode`), as a network's last row and column are.
    """
    if labels.dim() != 3:
        raise ValueError(f"expected labels (B, H, W), got shape {tuple(labels.shape)}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    labels = labels.long()
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        raise ValueError(f"labels must be in 0..{num_classes - 1} or {ignore_index}, "
                         f"found {labels[bad][0].item()}")
    known = labels != ignore_index
    one_hot = F.one_hot(torch.where(known, labels, 0), num_classes)  # (B, H, W, K)
    one_hot = (one_hot * known[..., None]).permute(0, 3, 1, 2).float()  # (B, K, H, W)
    # average pooling with ceil_mode divides a partial edge cell by its real size
    shares = F.avg_pool2d(one_hot, stride, ceil_mode=True)  # (B, K, H/s, W/s)
    up = F.interpolate(shares, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return up.argmax(1)  # (B, H, W)


def resolution_ceiling(
    labels: Tensor | Iterable[Tensor],
    stride: int,
    num_classes: int,
    ignore_index: int = 255,
    chunk: int = 16,
) -> Tensor:
    """Per-class IoU (K,) of `cell_share_prediction` at `stride` against the labels.

    `labels`: a (N, H, W) tensor or an iterable of (B, H, W) batches (for example the
    label half of a DataLoader), scored `chunk` images at a time. NaN for a class that
    no label holds.
    """
    batches = labels.split(chunk) if isinstance(labels, Tensor) else labels
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for batch in batches:
        pred = cell_share_prediction(batch, stride, num_classes, ignore_index)
        cm += confusion_matrix(pred, batch, num_classes, ignore_index)
    return iou_per_class(cm)
