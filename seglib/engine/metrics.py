r"""
# Segmentation metrics from one confusion matrix

Pixel accuracy alone flatters a segmentation model: on CamVid, sky, road and buildings
cover most pixels, so a net that never finds a pedestrian can still score 90 %. The
standard remedy (PASCAL VOC, Cityscapes, the CCNet paper) is the *intersection over
union* per class, averaged over classes: mIoU.

Everything is read off one $K \times K$ confusion matrix $M$, rows = truth, columns =
prediction, accumulated on the model's device with one `index_add_` per batch (each
pixel adds 1 at its pair index truth $\cdot K$ + prediction; pixels labelled
`ignore_index`, 255 = void, are left out):

$$\mathrm{IoU}_k = \frac{M_{kk}}{\sum_j M_{kj} + \sum_i M_{ik} - M_{kk}},\qquad
  \mathrm{mIoU} = \frac{1}{|\mathcal{K}|}\sum_{k \in \mathcal{K}} \mathrm{IoU}_k$$

where $\mathcal{K}$ holds the classes present in the truth *or* the prediction (a
class absent from both has an undefined IoU, NaN, and is skipped by `nanmean`).
Pixel accuracy is $\mathrm{tr}(M) / \sum M$; mean class accuracy averages the recall
$M_{kk} / \sum_j M_{kj}$ over classes present in the truth.

In multi-GPU training each process holds its own matrix; `all_reduce_confusion` sums
them so that every rank reports the metrics of the whole validation set.

Taught in `notebooks/06_training.ipynb` and `notebooks/07_evaluation.ipynb`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "ConfusionMatrix",
    "confusion_matrix",
    "iou_per_class",
    "mean_iou",
    "pixel_accuracy",
    "mean_class_accuracy",
    "all_reduce_confusion",
]


def _as_labels(pred: Tensor, target: Tensor) -> Tensor:
    """Return predicted labels with the target's shape (argmax over classes for logits)."""
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(dim=1)  # (B, K, H, W) logits -> (B, H, W) labels
    if pred.shape != target.shape:
        raise ValueError(
            "pred must be labels shaped like target or logits (B, K, H, W); "
            f"got pred {tuple(pred.shape)} and target {tuple(target.shape)}"
        )
    if pred.is_floating_point():
        raise ValueError(f"pred labels must be integers, got dtype {pred.dtype}")
    return pred


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = 255
) -> Tensor:
    """The (K, K) int64 confusion matrix of one batch, rows = truth, cols = prediction.

    `pred` may be labels shaped like `target` or logits with a class dimension at 1.
    Pixels whose target equals `ignore_index` are excluded; any other target outside
    0..K-1 is an error (it would silently corrupt the matrix otherwise).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    pred = _as_labels(pred, target)
    target = target.reshape(-1).long()
    pred = pred.reshape(-1).long().to(target.device)
    if ignore_index is not None:
        keep = target != ignore_index
    else:
        keep = torch.ones_like(target, dtype=torch.bool)
    bad_target = keep & ((target < 0) | (target >= num_classes))
    bad_pred = keep & ((pred < 0) | (pred >= num_classes))
    # one GPU->CPU sync per batch for validation; the details only on the error path
    if (bad_target | bad_pred).any():
        if bad_target.any():
            bad = target[bad_target][0].item()
            raise ValueError(
                f"target values must be in 0..{num_classes - 1} or ignore_index={ignore_index}, "
                f"found {bad}"
            )
        raise ValueError(f"predicted labels must be in 0..{num_classes - 1}")
    # count the (truth, prediction) pair index t * K + p; ignored pixels go to an extra
    # last bin that is dropped (no boolean indexing, bincount or other hidden sync)
    idx = torch.where(keep, target * num_classes + pred, num_classes * num_classes)
    counts = torch.zeros(num_classes * num_classes + 1, dtype=torch.int64, device=idx.device)
    counts.index_add_(0, idx, torch.ones_like(idx))
    counts = counts[:-1]
    return counts.reshape(num_classes, num_classes)  # (K, K)


def _check_cm(cm: Tensor) -> Tensor:
    if cm.dim() != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got {tuple(cm.shape)}")
    return cm.double()


def iou_per_class(cm: Tensor) -> Tensor:
    r"""Per-class IoU $M_{kk} / (\text{row}_k + \text{col}_k - M_{kk})$; NaN when class k
    is absent from both truth and prediction."""
    cm = _check_cm(cm)
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(cm: Tensor) -> float:
    """Mean IoU over the classes present in the truth or the prediction (NaN if none)."""
    iou = iou_per_class(cm)
    return float(iou.nanmean()) if not torch.isnan(iou).all() else float("nan")


def pixel_accuracy(cm: Tensor) -> float:
    """Fraction of non-ignored pixels predicted correctly (NaN when there are none)."""
    cm = _check_cm(cm)
    total = cm.sum()
    return float(cm.diagonal().sum() / total) if total > 0 else float("nan")


def mean_class_accuracy(cm: Tensor) -> float:
    """Recall averaged over the classes present in the truth (NaN when there are none)."""
    cm = _check_cm(cm)
    rows = cm.sum(1)
    if not (rows > 0).any():
        return float("nan")
    recall = cm.diagonal()[rows > 0] / rows[rows > 0]
    return float(recall.mean())


def all_reduce_confusion(cm: Tensor) -> Tensor:
    """Sum a confusion matrix over all processes (in place); a no-op without DDP.

    gloo and NCCL both reduce int64, so the counts stay exact.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(cm, op=dist.ReduceOp.SUM)
    return cm


class ConfusionMatrix:
    """Running confusion matrix on a device, with the usual summary metrics.

    Args:
        num_classes: K, the number of real classes (void excluded).
        ignore_index: target value left out of every count (255 = void).
        device: where the matrix lives; defaults to the device of the first update.

    Example:
        >>> cm = ConfusionMatrix(11)
        >>> cm.update(logits, masks)       # logits (B, K, H, W) or labels (B, H, W)
        >>> cm.compute()["miou"]
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = 255,
        device: torch.device | str | None = None,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.device = torch.device(device) if device is not None else None
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> ConfusionMatrix:
        """Add one batch (pred: logits (B, K, H, W) or labels (B, H, W); target (B, H, W))."""
        if pred.dim() == target.dim() + 1 and pred.shape[1] != self.num_classes:
            raise ValueError(
                f"logits have {pred.shape[1]} classes, the matrix {self.num_classes}"
            )
        if self.device is None:
            self.device = target.device
            self.matrix = self.matrix.to(self.device)
        batch = confusion_matrix(
            pred.to(self.device), target.to(self.device), self.num_classes, self.ignore_index
        )
        self.matrix += batch
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts of every DDP process into this one."""
        all_reduce_confusion(self.matrix)
        return self

    def compute(self) -> dict:
        """`pixel_acc`, `mean_class_acc`, `miou` (floats) and `iou` (per-class tensor, CPU)."""
        cm = self.matrix.cpu()
        return {
            "pixel_acc": pixel_accuracy(cm),
            "mean_class_acc": mean_class_accuracy(cm),
            "miou": mean_iou(cm),
            "iou": iou_per_class(cm),
        }
