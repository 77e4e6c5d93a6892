r"""
# Undoing part of the class weighting at test time (logit adjustment)

Cross-entropy with class weights $w_c$ (the median-frequency weights of the `cpu`
recipe) pulls the softmax of a pixel towards $p(c \mid x)\, w_c / Z(x)$ instead of
$p(c \mid x)$: the argmax favours each class by its weight. That is what the weights
are for in training (a rare class gets gradient at all), but at test time it buys
recall with precision: on the CamVid test split a CCNet trained with these weights
finds 37 % of the Pole pixels, but only 9 % of the pixels it calls Pole are poles.

Adding $-\tau \log w_c$ to the logits divides the factor $w_c^\tau$ out again:
$\tau = 1$ removes the weighting from the decision (the logit adjustment of Menon et
al., *Long-tail learning via logit adjustment*, ICLR 2021), $\tau = 0$ keeps it. IoU
rewards a balance of recall and precision, so $\tau$ is a hyperparameter: choose it on
val, report test. `sweep_logit_adjustment` scores many values of $\tau$ in one pass
over a split (one forward per image, one confusion matrix per $\tau$). Taught in
`notebooks/07_evaluation.ipynb`; `python -m seglib.evaluate --logit-adjustment auto`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from seglib.engine.device import pick_device
from seglib.engine.metrics import ConfusionMatrix
from seglib.engine.scoring import label_size_logits

__all__ = ["DEFAULT_TAUS", "best_tau", "logit_bias", "sweep_logit_adjustment"]

DEFAULT_TAUS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)


def logit_bias(class_weights: Sequence[float] | torch.Tensor, tau: float) -> torch.Tensor:
    r"""The (K,) bias $-\tau \log w_c$ to add to the logits of a model trained with
    cross-entropy weights `class_weights` (finite, >= 0); `tau` >= 0.

    A weight of 0 (`seglib.data.class_weights` gives it to a class absent from the
    training images) weighted nothing, so there is nothing to undo: its bias is 0.
    """
    w = torch.as_tensor(class_weights, dtype=torch.float64)
    if w.ndim != 1 or len(w) == 0:
        raise ValueError(
            f"class_weights must be a 1-D list of K weights, got shape {tuple(w.shape)}"
        )
    if not bool((w >= 0).all()) or not bool(torch.isfinite(w).all()):
        raise ValueError(f"class weights must be finite and >= 0, got {w.tolist()}")
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    return torch.where(w > 0, -tau * w.clamp(min=1e-300).log(), 0.0).float()  # (K,)


@torch.no_grad()
def sweep_logit_adjustment(
    model: nn.Module,
    loader: Iterable,
    class_weights: Sequence[float] | torch.Tensor,
    taus: Sequence[float] = DEFAULT_TAUS,
    device: str | torch.device | None = None,
    *,
    input_scale: float | Sequence[float] = 1.0,
    flip: bool = False,
    ignore_index: int = 255,
    classes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """mIoU, pixel accuracy and per-class IoU of `model` over `loader` for every `tau`.

    One forward pass per batch; each tau's predictions are the argmax of the logits
    plus `logit_bias(class_weights, tau)`, scored at the labels' size exactly as
    `evaluate(..., logit_bias=...)` scores them (with the same `input_scale` and
    `flip` test-time augmentation). Returns one row per tau (index `tau`),
    columns `miou`, `pixel_acc`, `mean_class_acc` and `iou_<class>`.
    """
    device = pick_device(device)
    num_classes = len(class_weights)
    names = list(classes) if classes is not None else [str(k) for k in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{num_classes} class weights but {len(names)} class names")
    biases = {t: logit_bias(class_weights, t).to(device).view(1, -1, 1, 1) for t in taus}
    matrices = {t: ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)
                for t in taus}
    was_training = model.training
    model.eval()
    try:
        for X, Y in loader:
            X, Y = X.to(device), Y.to(device).long()
            logits = label_size_logits(model, X, Y.shape[-2:], num_classes,
                                       input_scale=input_scale, flip=flip)
            for t in taus:
                matrices[t].update(logits + biases[t], Y)
    finally:
        model.train(was_training)
    rows = []
    for t in taus:
        m = matrices[t].compute()
        row = {"tau": t, "miou": m["miou"], "pixel_acc": m["pixel_acc"],
               "mean_class_acc": m["mean_class_acc"]}
        row.update({f"iou_{c}": float(v) for c, v in zip(names, m["iou"].tolist())})
        rows.append(row)
    return pd.DataFrame(rows).set_index("tau")


def best_tau(sweep: pd.DataFrame) -> float:
    """The tau of a `sweep_logit_adjustment` table with the highest mIoU (the smallest
    such tau on a tie: the least change to the trained model)."""
    if sweep.empty:
        raise ValueError("empty sweep: no tau was scored")
    top = sweep["miou"].max()
    return float(min(t for t, v in sweep["miou"].items() if v == top))
