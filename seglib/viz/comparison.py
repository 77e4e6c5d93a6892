r"""
# Comparing trained runs: per-class IoU side by side, and their learning curves

The ablation of notebook `07_evaluation.ipynb` asks how much each attention pass adds.
One number (mIoU) hides *where* it adds: the large classes (Sky, Road) are easy for
every model, while the thin and rare ones (Pole, SignSymbol, Pedestrian, Bicyclist)
need context from far away. So the runs are drawn as grouped bars, one group per class
and one bar per run, with each run's mIoU in its legend entry,

$$\operatorname{mIoU}_r = \frac{1}{K} \sum_{c=1}^{K} \operatorname{IoU}_{r,c},$$

and, beside them, the validation mIoU per epoch of every run.

The input is the table written by `benchmarks/camvid_cpu.py` (one row per run, columns
`iou_<class>` and `test_miou`) and its per-run `metrics.csv` copies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

__all__ = ["plot_class_iou_comparison", "plot_val_curves"]


def plot_class_iou_comparison(
    table: pd.DataFrame,
    classes: Sequence[str],
    runs: Sequence[str] | None = None,
    ax: Axes | None = None,
    score: str = "test_miou",
) -> Axes:
    """Grouped bars of per-class IoU: one group per class, one bar per run.

    `table` has a `run` column (or index), `iou_<class>` columns and `score` (the mIoU
    quoted in the legend). `runs` picks and orders the runs (default: all, in order).
    """
    table = table.set_index("run") if "run" in table.columns else table
    runs = list(runs) if runs is not None else list(table.index)
    missing = [r for r in runs if r not in table.index]
    if missing:
        raise KeyError(f"runs not in the table: {missing}; it has {list(table.index)}")
    columns = [f"iou_{c}" for c in classes]
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise KeyError(f"no per-class IoU columns {absent} in the table")
    ax = ax or plt.subplots(figsize=(10, 3.4))[1]
    width = 0.8 / len(runs)
    x = np.arange(len(classes))
    for i, run in enumerate(runs):
        values = table.loc[run, columns].to_numpy(dtype=float)  # (K,)
        label = f"{run} ({100 * table.loc[run, score]:.1f})" if score in table else run
        ax.bar(x + (i - (len(runs) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set(ylabel="IoU", ylim=(0, 1))
    ax.grid(axis="y", alpha=0.3)
    title = "run (" + score.replace("_", " ").replace("miou", "mIoU") + ", %)"
    ax.legend(fontsize=8, ncols=min(len(runs), 4), title=title, title_fontsize=8)
    return ax


def plot_val_curves(
    curves: Mapping[str, pd.DataFrame], ax: Axes | None = None, column: str = "val_miou"
) -> Axes:
    """One line per run: `column` (default val mIoU) against the epoch."""
    ax = ax or plt.subplots(figsize=(4, 3.4))[1]
    for run, metrics in curves.items():
        ax.plot(metrics["epoch"], metrics[column], label=run)
    ax.set(xlabel="epoch", ylabel=column.replace("_", " ").replace("miou", "mIoU"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
