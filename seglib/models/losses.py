r"""
# Segmentation losses: cross-entropy over the labelled pixels

Per-pixel cross-entropy, class-weighted, that leaves out the void pixels (label 255):

$$\mathrm{CE}(Y, T) = \frac{\sum_{u \in \mathcal{V}} w_{T_u}\,
  \big(-\log \mathrm{softmax}(Y_u)_{T_u}\big)}{\sum_{u \in \mathcal{V}} w_{T_u}},\qquad
  \mathcal{V} = \{u : T_u \neq 255\}$$

`masked_cross_entropy` writes it once for the whole package: the mean (what training
minimises, equal to `F.cross_entropy`) and the numerator alone (`reduction="sum"`, what
evaluation adds up over a split before dividing by `labelled_weight_sum`). A random crop
may hold only void pixels; the mean is then 0, not $0/0$ = NaN.

CCNet's loss adds its auxiliary head: $\mathcal{L} = \mathrm{CE}(Y_{main}, T) +
0.4\,\mathrm{CE}(Y_{aux}, T)$ (`ccnet_loss`). Taught in `notebooks/03_rcca_ccnet.ipynb`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ccnet_loss", "labelled_weight_sum", "masked_cross_entropy"]


def labelled_weight_sum(
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = 255,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The denominator of the weighted mean: the summed class weights of the pixels not
    labelled `ignore_index` (their count when `weight` is None), a `dtype` scalar.

    Computed on the target's device without a GPU->CPU sync; evaluation asks for float64
    so that a whole split's sum stays exact.
    """
    valid = target != ignore_index  # (B, H, W)
    if weight is None:
        return valid.sum().to(dtype)
    w = weight.to(target.device, dtype)[torch.where(valid, target, 0)]  # (B, H, W)
    return (w * valid).sum()


def masked_cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = 255,
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """Cross-entropy of logits (B, K, H, W) against class indices (B, H, W), pixels
    labelled `ignore_index` left out, optionally weighted per class (`weight`, (K,)).

    `reduction="mean"` equals `F.cross_entropy(..., reduction="mean")`, the weighted mean
    over the labelled pixels, except that a batch without any labelled pixel gives 0
    (still attached to the graph, so `backward` works) instead of NaN.
    `reduction="sum"` is the numerator alone; divide a sum over many batches by the
    summed `labelled_weight_sum` of the same batches to get the mean over all of them.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    total = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index,
                            reduction="sum")
    if reduction == "sum":
        return total
    denom = labelled_weight_sum(target, weight, ignore_index, total.dtype)
    return total / torch.where(denom > 0, denom, torch.ones_like(denom))


def ccnet_loss(
    outputs: Tensor | tuple[Tensor, Tensor],
    target: Tensor,
    aux_weight: float = 0.4,
    weight: Tensor | None = None,
    ignore_index: int = 255,
) -> Tensor:
    r"""CCNet's loss $\mathcal{L} = \mathrm{CE}(Y_{main}, T) + \lambda\,\mathrm{CE}(Y_{aux}, T)$.

    Args:
        outputs: logits (B, K, H, W), or the `(main, aux)` tuple of a training CCNet.
        target: class indices (B, H, W); `ignore_index` pixels do not count.
        aux_weight: $\lambda$ (0.4 as in the paper).
        weight: optional per-class weights (K,) for the cross-entropy.
        ignore_index: label to ignore (255 = void).

    Each CE is `masked_cross_entropy`: 0, not NaN, for a batch whose pixels are all void.
    """
    if isinstance(outputs, tuple | list):
        if len(outputs) != 2:
            raise ValueError(f"expected logits or a (main, aux) pair, got {len(outputs)} items")
        main, aux = outputs
    else:
        main, aux = outputs, None
    if main.dim() != 4 or target.dim() != 3 or target.shape != main.shape[:1] + main.shape[2:]:
        raise ValueError(
            f"expected logits (B, K, H, W) and target (B, H, W), got {tuple(main.shape)} "
            f"and {tuple(target.shape)}"
        )
    loss = masked_cross_entropy(main, target, weight, ignore_index)
    if aux is not None:
        loss = loss + aux_weight * masked_cross_entropy(aux, target, weight, ignore_index)
    return loss
