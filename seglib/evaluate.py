"""
# Evaluating a segmentation model

Evaluation runs the model in `eval` mode (BatchNorm uses its running statistics, the
auxiliary head is off) over a whole split, without gradients, and accumulates one
confusion matrix from which per-class IoU, mIoU, pixel accuracy and mean class
accuracy are read (see `seglib.metrics`). Images are seen unchanged: no random crop or
flip, so the numbers are reproducible.

Command line, on a checkpoint written by `python -m seglib.train`:

    python -m seglib.evaluate --checkpoint runs/quick/best.pt --split val

prints a per-class IoU table and the summary metrics. Taught in
`notebooks/07_evaluation.ipynb`.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from seglib import distributed as ddp
from seglib.checkpoint import load_checkpoint
from seglib.metrics import ConfusionMatrix
from seglib.runtime import autocast, pick_device, resolve_amp

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["evaluate", "load_model", "iou_table", "main"]


def main_logits(outputs: Any) -> torch.Tensor:
    """The main logits of a model output (a tensor, or the first item of a tuple)."""
    return outputs[0] if isinstance(outputs, tuple | list) else outputs


def _loss_sum(
    criterion: nn.Module, logits: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy of one batch and its normaliser (float64 scalars).

    Summing `reduction="sum"` losses and dividing by the summed class weights of the
    non-ignored pixels gives exactly the weighted mean over the whole set (what
    `nn.CrossEntropyLoss` returns on all pixels at once); averaging per-batch means
    would not, and an all-void batch would contribute NaN. The criterion is read for its
    `weight` and `ignore_index`; any other criterion is averaged per batch.
    """
    ig = getattr(criterion, "ignore_index", ignore_index)
    valid = target != ig
    if not isinstance(criterion, nn.CrossEntropyLoss):
        n = valid.sum().double()
        mean = criterion(logits, target).double()
        return torch.where(n > 0, mean * n, torch.zeros_like(mean)), n
    weight = criterion.weight
    total = F.cross_entropy(logits, target, weight=weight, ignore_index=ig, reduction="sum")
    if weight is None:
        return total.double(), valid.sum().double()
    w = weight.to(logits.device, torch.float64)[torch.where(valid, target, 0)]
    return total.double(), (w * valid).sum()


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
) -> dict:
    """Metrics of `model` over `loader` of (image, mask) batches.

    Returns a dict with `pixel_acc`, `mean_class_acc`, `miou` (floats), `iou` (per-class
    tensor), `confusion` ((K, K) int64, rows = truth), `loss` (the `criterion` loss over
    all non-ignored pixels of the set, class-weighted like `nn.CrossEntropyLoss`; NaN
    without a criterion or without any valid pixel) and `images` (how many were seen). Under
    DDP the counts of all ranks are summed, so every rank returns the same numbers.
    """
    device = pick_device(device)
    dtype = resolve_amp(amp, device)
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)
    # loss summed over non-ignored pixels, number of such pixels, number of images
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    try:
        for X, Y in loader:
            X, Y = X.to(device, non_blocking=True), Y.to(device, non_blocking=True).long()
            if channels_last:
                X = X.contiguous(memory_format=torch.channels_last)
            with autocast(device, dtype):
                logits = main_logits(model(X))
            logits = logits.float()
            if logits.shape[-2:] != Y.shape[-2:]:
                logits = F.interpolate(logits, Y.shape[-2:], mode="bilinear", align_corners=False)
            if logits.shape[1] != num_classes:
                raise ValueError(
                    f"model returns {logits.shape[1]} classes, expected num_classes={num_classes}"
                )
            cm.update(logits, Y)
            if criterion is not None:
                loss_sum, denom = _loss_sum(criterion, logits, Y, ignore_index)
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


def load_model(
    checkpoint: str | os.PathLike, device: str | torch.device | None = None
) -> tuple[nn.Module, Any]:
    """Rebuild the model a `seglib.train` checkpoint was written for, in eval mode.

    Returns `(model, config)` where config is the run's `TrainConfig`. Works for the
    models `seglib.train.build_model` knows (ccnet, refinenet).
    """
    from seglib.train import TrainConfig, build_model  # lazy: train imports this module

    ckpt = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(ckpt["config"])
    model = build_model(
        config.model,
        config.num_classes,
        config.backbone,
        recurrence=config.recurrence,
        features=config.features,
    )
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
    import pandas as pd

    names = list(classes) if classes is not None else [str(k) for k in range(len(iou))]
    if len(names) != len(iou):
        raise ValueError(f"{len(iou)} IoU values but {len(names)} class names")
    return pd.DataFrame({"class": names, "iou": iou.tolist()}).set_index("class")


def main(argv: Sequence[str] | None = None) -> dict:
    """CLI: evaluate a checkpoint on the val or test split and print a per-class table."""
    from torch.utils.data import DataLoader

    from seglib.data import pick_datasets

    p = argparse.ArgumentParser(
        prog="python -m seglib.evaluate", description="Evaluate a seglib.train checkpoint."
    )
    p.add_argument("--checkpoint", required=True, help="last.pt or best.pt from seglib.train")
    p.add_argument("--split", default="val", choices=["val", "test"])
    p.add_argument("--data-dir", default=None, help="CamVid root (default: the run's data)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)

    model, config = load_model(args.checkpoint, args.device)
    device = next(model.parameters()).device
    source = config.data if args.data_dir is None else "camvid"
    root = args.data_dir if args.data_dir is not None else config.data_dir
    choice = pick_datasets(
        root, source=source, crop=config.crop, train_size=config.train_size,
        val_size=config.val_size, synthetic_size=config.synthetic_size, seed=config.seed,
        split=args.split,
    )  # fmt: skip
    dataset = choice.val
    if choice.num_classes != config.num_classes:
        raise ValueError(
            f"the data has {choice.num_classes} classes but the checkpoint {config.num_classes}"
        )
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    res = evaluate(model, loader, config.num_classes, device)
    table = iou_table(res["iou"], choice.classes)
    print(f"{args.checkpoint}: {config.model}/{config.backbone} on {choice.name} {args.split} "
          f"({res['images']} images)")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"mIoU {res['miou']:.4f} | pixel acc {res['pixel_acc']:.4f} | "
          f"mean class acc {res['mean_class_acc']:.4f}")
    return res


if __name__ == "__main__":
    import sys

    try:
        main()
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
