"""
# A run's predictions on one frame, epoch by epoch

Draws what `seglib.engine.snapshots.PredictionSnapshots` records: the frame, its label,
then the prediction after each chosen epoch, titled with the share of the frame's
labelled pixels it gets right, so that the picture and the numbers can be read together.
Used in `notebooks/06_training.ipynb`. Only draws: returns the axes, never calls
`plt.show()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from seglib.data.classes import PALETTE
from seglib.viz.masks import as_rgb, colorize, hide_ticks, to_numpy

__all__ = ["frame_accuracy", "plot_snapshots"]


def frame_accuracy(prediction: Any, label: Any, ignore_index: int = 255) -> float:
    """The share of the labelled pixels of one frame that `prediction` gets right (NaN
    when every pixel is void)."""
    pred, true = to_numpy(prediction), to_numpy(label)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and label {true.shape} differ in size")
    labelled = true != ignore_index
    return float((pred == true)[labelled].mean()) if labelled.any() else float("nan")


def plot_snapshots(image: Any, label: Any, predictions: Mapping[int, Any],
                   palette: Any = PALETTE, scale: float = 2.0) -> np.ndarray:
    """One row: the image, the label, then `predictions` {epoch: (H, W) class map} in
    the mapping's order, each titled with its epoch and `frame_accuracy`.

    Returns the axes (1-D array), without ticks.
    """
    if not predictions:
        raise ValueError("no predictions to draw: did the run record snapshots?")
    rgb = as_rgb(image)  # (H, W, 3)
    panels = [("image", rgb), ("label", colorize(label, palette))]
    panels += [(f"epoch {e}: {100 * frame_accuracy(p, label):.0f} % right",
                colorize(p, palette)) for e, p in predictions.items()]
    height, width = rgb.shape[:2]
    fig, axes = plt.subplots(1, len(panels), figsize=(scale * width / height * len(panels),
                                                      scale + 0.3), squeeze=False)
    for ax, (title, picture) in zip(axes[0], panels):
        ax.imshow(picture)
        ax.set_title(title, fontsize=8)
        hide_ticks(ax)
    fig.tight_layout()
    return axes[0]
