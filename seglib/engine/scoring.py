"""
# Evaluating a segmentation model

Evaluation runs the model in `eval` mode (BatchNorm uses its running statistics, the
auxiliary head is off) over a whole split, without gradients, and accumulates one
confusion matrix from which per-class IoU, mIoU, pixel accuracy and mean class
accuracy are read (see `seglib.engine.metrics`). Images are seen unchanged: no random crop or
flip, so the numbers are reproducible.

The command line `python -m seglib.evaluate` (`seglib/evaluate.py`) wraps these
functions. Taught in `notebooks/07_evaluation.ipynb`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from seglib.engine import distributed as ddp
from seglib.engine.checkpoint import load_checkpoint
from seglib.engine.config import TrainConfig
from seglib.engine.device import autocast, pick_device, resolve_amp
from seglib.engine.from_config import build_model_for
from seglib.engine.metrics import ConfusionMatrix
from seglib.models.losses import labelled_weight_sum, masked_cross_entropy

__all__ = ["evaluate", "iou_table", "label_size_logits", "load_model", "main_logits"]


def main_logits(outputs: Any) -> torch.Tensor:
    """The main logits of a model output (a tensor, or the first item of a tuple)."""
    return outputs[0] if isinstance(outputs, tuple | list) else outputs


def _summed_loss(
    criterion: nn.Module, logits: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss of one batch and what it is to be divided by (float64 scalars).

    For `nn.CrossEntropyLoss` (its `weight` and `ignore_index` are read), the sum is
    `masked_cross_entropy(..., reduction="sum")` and the divisor `labelled_weight_sum`:
    adding both up over the batches and dividing gives exactly the weighted mean over
    the whole set (what `nn.CrossEntropyLoss` returns on all pixels at once); averaging
    per-batch means would not, and an all-void batch would contribute NaN. Any other
    criterion is averaged per batch, weighted by its labelled pixels.
    """
    ig = getattr(criterion, "ignore_index", ignore_index)
    if isinstance(criterion, nn.CrossEntropyLoss):
        total = masked_cross_entropy(logits, target, criterion.weight, ig, reduction="sum")
        return total.double(), labelled_weight_sum(target, criterion.weight, ig, torch.float64)
    n = labelled_weight_sum(target, None, ig, torch.float64)
    mean = criterion(logits, target).double()
    return torch.where(n > 0, mean * n, torch.zeros_like(mean)), n


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    num_classes: int,
    device: str | torch.device | None = None,
    *,
    criterion: nn.Module | None = None,
    amp: str | bool = "off",
    channels_last: bool = False,
    ignore_index: int = 255,
    input_scale: float | Sequence[float] = 1.0,
    flip: bool = False,
    logit_bias: torch.Tensor | None = None,
) -> dict:
    """Metrics of `model` over `loader` of (image, mask) batches.

    Returns a dict with `pixel_acc`, `mean_class_acc`, `miou` (floats), `iou` (per-class
    tensor), `confusion` ((K, K) int64, rows = truth), `loss` (the `criterion` loss over
    all non-ignored pixels of the set, class-weighted like `nn.CrossEntropyLoss`; NaN
    without a criterion or without any valid pixel) and `images` (how many were seen).
    `input_scale` resizes the images before the model (e.g. 0.5 for a model trained at
    half resolution); the logits are always resized back to the labels' own size, so
    the metrics are measured against the native labels. Several scales and/or
    `flip=True` average the logits of all those views (test-time augmentation; see
    `label_size_logits`). `logit_bias` ((K,), e.g.
    `seglib.engine.logit_adjustment.logit_bias`) is added to the logits before the
    argmax; it changes the predictions and metrics, not the loss. Under
    DDP the counts of all ranks are summed, so every rank returns the same numbers.
    """
    device = pick_device(device)
    dtype = resolve_amp(amp, device)
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)
    # loss summed over the labelled pixels, its divisor (their summed class weights), images
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    bias = None if logit_bias is None else _bias_view(logit_bias, num_classes, device)
    try:
        for X, Y in loader:
            X, Y = X.to(device, non_blocking=True), Y.to(device, non_blocking=True).long()
            logits = label_size_logits(
                model, X, Y.shape[-2:], num_classes, dtype=dtype, input_scale=input_scale,
                flip=flip, channels_last=channels_last,
            )  # (B, K, h, w)
            cm.update(logits if bias is None else logits + bias, Y)
            if criterion is not None:
                loss_sum, denom = _summed_loss(criterion, logits, Y, ignore_index)
                sums[0] += loss_sum
                sums[1] += denom
            sums[2] += X.shape[0]
    finally:
        model.train(was_training)
    if ddp.is_distributed():
        cm.all_reduce()
        torch.distributed.all_reduce(sums)
    out = cm.compute()
    loss = float(sums[0] / sums[1]) if criterion is not None and sums[1] > 0 else math.nan
    return {**out, "confusion": cm.matrix.cpu(), "loss": loss, "images": int(sums[2])}


def label_size_logits(
    model: nn.Module,
    X: torch.Tensor,
    label_size: Sequence[int],
    num_classes: int,
    *,
    dtype: torch.dtype | None = None,
    input_scale: float | Sequence[float] = 1.0,
    flip: bool = False,
    channels_last: bool = False,
) -> torch.Tensor:
    """The main logits (B, K, h, w) of images X (B, 3, H, W) at the labels' size (h, w),
    in float32: X resized by `input_scale` before the model, the logits bilinearly
    resized after it. Call under `torch.no_grad()` with the model in eval mode.

    Test-time augmentation: several scales (`input_scale=(0.5, 0.625, 0.75)`) and/or
    `flip=True` (each scale also seen mirrored, its logits mirrored back) average the
    label-size logits of all the views. Averaging logits (not probabilities) keeps
    `logit_bias` exact: adding a bias to every view adds it to the mean.
    """
    scales = _scales(input_scale)
    views = [(s, f) for s in scales for f in ((False, True) if flip else (False,))]
    total = None
    for scale, mirrored in views:
        x = X.flip(-1) if mirrored else X  # (B, 3, H, W)
        logits = _one_view_logits(model, x, label_size, num_classes, dtype, scale,
                                  channels_last)  # (B, K, h, w)
        logits = logits.flip(-1) if mirrored else logits
        total = logits if total is None else total + logits
    return total if len(views) == 1 else total / len(views)  # (B, K, h, w)


def _scales(input_scale: float | Sequence[float]) -> tuple[float, ...]:
    """`input_scale` as a non-empty tuple of positive floats."""
    scales = (input_scale,) if isinstance(input_scale, int | float) else tuple(input_scale)
    if not scales or not all(isinstance(s, int | float) and s > 0 for s in scales):
        raise ValueError(f"input_scale must be a number > 0 or a list of them, got {input_scale!r}")
    return tuple(float(s) for s in scales)


def _one_view_logits(
    model: nn.Module,
    X: torch.Tensor,
    label_size: Sequence[int],
    num_classes: int,
    dtype: torch.dtype | None,
    input_scale: float,
    channels_last: bool,
) -> torch.Tensor:
    """`label_size_logits` of one view: one scale, no flip."""
    if input_scale != 1.0:  # (B, 3, H, W) -> (B, 3, sH, sW)
        X = F.interpolate(X, scale_factor=input_scale, mode="bilinear",
                          align_corners=False, antialias=True)
    if channels_last:
        X = X.contiguous(memory_format=torch.channels_last)
    with autocast(X.device, dtype):
        logits = main_logits(model(X)).float()  # (B, K, h', w')
    if logits.shape[1] != num_classes:
        raise ValueError(
            f"model returns {logits.shape[1]} classes, expected num_classes={num_classes}"
        )
    if tuple(logits.shape[-2:]) != tuple(label_size):
        logits = F.interpolate(logits, tuple(label_size), mode="bilinear", align_corners=False)
    return logits  # (B, K, h, w)


def _bias_view(bias: torch.Tensor, num_classes: int, device: torch.device) -> torch.Tensor:
    """A (K,) per-class bias as a (1, K, 1, 1) float32 tensor on `device`."""
    bias = torch.as_tensor(bias, dtype=torch.float32)
    if bias.shape != (num_classes,):
        raise ValueError(f"logit_bias must have shape ({num_classes},), got {tuple(bias.shape)}")
    return bias.to(device).view(1, -1, 1, 1)


def load_model(
    checkpoint: str | os.PathLike, device: str | torch.device | None = None
) -> tuple[nn.Module, Any]:
    """Rebuild the model a `seglib.train` checkpoint was written for, in eval mode.

    Returns `(model, config)` where config is the run's `TrainConfig`. Works for the
    models `seglib.models.build_model` knows (ccnet, refinenet).
    """
    ckpt = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(ckpt["config"])
    model = build_model_for(config, pretrained=False)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint {checkpoint} does not fit a rebuilt {config.model}/{config.backbone} "
            f"with {config.num_classes} classes: {err}"
        ) from err
    return model.to(pick_device(device)).eval(), config


def iou_table(iou: torch.Tensor, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """A pandas DataFrame with one row per class: name and IoU (NaN = class absent)."""
    names = list(classes) if classes is not None else [str(k) for k in range(len(iou))]
    if len(names) != len(iou):
        raise ValueError(f"{len(iou)} IoU values but {len(names)} class names")
    return pd.DataFrame({"class": names, "iou": iou.tolist()}).set_index("class")
