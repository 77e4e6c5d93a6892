r"""
# Looking at segmentations: colours, overlays and grids

A label map is a grid of class indices; to see it we paint class $c$ with the palette
colour $P_c$ (CamVid's fixed palette by default, the ignore index 255 in black), and to
judge it we blend it over the photograph,

$$O = (1 - \alpha)\, I + \alpha\, P_{Y},$$

leaving void pixels untouched. The figure helpers draw the grids of image / prediction /
label used from notebook `05_camvid_data.ipynb` on, the palette legend, the class
frequency bar chart. Attention maps are drawn by `seglib.viz.attention`.

All functions only draw: they return the axes (or arrays) and never call `plt.show()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from seglib.data.classes import PALETTE
from seglib.data.transforms import MEAN, STD

__all__ = [
    "as_rgb",
    "colorize",
    "denormalize",
    "hide_ticks",
    "overlay",
    "palette_legend",
    "plot_class_frequencies",
    "show_segmentation_grid",
    "to_numpy",
]


def to_numpy(x: Any) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def denormalize(image: Any) -> np.ndarray:
    """Undo the ImageNet normalisation: (3, H, W) tensor/array -> (H, W, 3) float in [0, 1]."""
    x = to_numpy(image).astype(np.float32)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a normalised image of shape (3, H, W), got {x.shape}")
    x = x * np.array(STD, np.float32)[:, None, None] + np.array(MEAN, np.float32)[:, None, None]
    return np.clip(x.transpose(1, 2, 0), 0.0, 1.0)


def as_rgb(image: Any) -> np.ndarray:
    """Any displayable image as (H, W, 3) float in [0, 1].

    Accepts a normalised (3, H, W) tensor/array, a uint8 (H, W, 3) array, or an
    (H, W, 3) float array already in [0, 1].
    """
    x = to_numpy(image)
    if x.ndim == 3 and x.shape[0] == 3 and x.shape[-1] != 3:
        return denormalize(x)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"expected an image (3, H, W) or (H, W, 3), got shape {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    return np.clip(x.astype(np.float32), 0.0, 1.0)


def colorize(mask: Any, palette: Any = PALETTE) -> np.ndarray:
    """Paint a label map: (H, W) class indices -> (H, W, 3) uint8, 255 (ignore) in black."""
    m = to_numpy(mask)
    if m.ndim != 2:
        raise ValueError(f"expected a mask of shape (H, W), got {m.shape}")
    pal = np.asarray(palette, dtype=np.uint8)
    k = len(pal)
    m = m.astype(np.int64)
    bad = (m != 255) & ((m < 0) | (m >= k))
    if bad.any():
        raise ValueError(f"mask values must be in 0..{k - 1} or 255, found {int(m[bad][0])}")
    lut = np.zeros((256, 3), dtype=np.uint8)  # 255 and unused entries stay black
    lut[:k] = pal
    return lut[m]


def overlay(image: Any, mask: Any, palette: Any = PALETTE, alpha: float = 0.5) -> np.ndarray:
    """Blend the colourised `mask` over `image`: (H, W, 3) float32 in [0, 1].

    `alpha` = 0 gives the image, 1 the colours; void (255) pixels keep the image.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = as_rgb(image)
    m = to_numpy(mask)
    if m.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {m.shape} does not match image size {rgb.shape[:2]}")
    colours = colorize(m, palette).astype(np.float32) / 255.0
    # O = (1 - alpha) I + alpha P_Y, except on void pixels
    blend = (1.0 - alpha) * rgb + alpha * colours
    return np.where((m == 255)[..., None], rgb, blend).astype(np.float32)


def hide_ticks(ax: Axes) -> None:
    """Remove the x and y ticks of `ax`: images and maps need no axis numbers."""
    ax.set_xticks([])
    ax.set_yticks([])


def show_segmentation_grid(
    images: Sequence[Any],
    masks_list: Sequence[Sequence[Any]],
    titles: Sequence[str],
    palette: Any = PALETTE,
    scale: float = 2.0,
) -> np.ndarray:
    """One row per example: the image, then one column per list of masks.

    Args:
        images: N images (normalised tensors or uint8 arrays).
        masks_list: columns of N masks each, e.g. `[predictions, labels]`.
        titles: column titles, `1 + len(masks_list)` of them (e.g. "image", "prediction",
            "label").
        palette: (K, 3) colours of the classes.
        scale: inches per panel row.

    Returns:
        the (N, 1 + len(masks_list)) array of axes, without ticks.
    """
    n, cols = len(images), 1 + len(masks_list)
    if len(titles) != cols:
        raise ValueError(f"need {cols} titles (image + {cols - 1} mask columns), got {len(titles)}")
    for j, masks in enumerate(masks_list):
        if len(masks) != n:
            raise ValueError(f"mask column {j} has {len(masks)} masks for {n} images")
    first = as_rgb(images[0])
    aspect = first.shape[1] / first.shape[0]
    fig, axes = plt.subplots(n, cols, figsize=(scale * aspect * cols, scale * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(as_rgb(images[i]))
        for j, masks in enumerate(masks_list, start=1):
            axes[i, j].imshow(colorize(masks[i], palette), interpolation="nearest")
        for ax in axes[i]:
            hide_ticks(ax)
    for ax, title in zip(axes[0], titles):
        ax.set_title(title)
    fig.tight_layout()
    return axes


def palette_legend(classes: Sequence[str], palette: Any = PALETTE, ax: Axes | None = None) -> Axes:
    """A legend of coloured patches, one per class name."""
    pal = np.asarray(palette, dtype=np.float32) / 255.0
    if len(classes) != len(pal):
        raise ValueError(f"{len(classes)} class names for {len(pal)} palette colours")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.35 * ((len(classes) + 3) // 4) + 0.3))
    handles = [Patch(facecolor=c, edgecolor="black", label=n) for n, c in zip(classes, pal)]
    ax.legend(handles=handles, loc="center", ncol=min(4, len(classes)), frameon=False)
    ax.axis("off")
    return ax


def plot_class_frequencies(
    freqs: Any, classes: Sequence[str], palette: Any = PALETTE, ax: Axes | None = None
) -> Axes:
    """Bar chart of per-class values (pixel shares, weights...) in the class colours."""
    values = to_numpy(freqs).astype(np.float64)
    if values.shape != (len(classes),):
        raise ValueError(f"expected {len(classes)} values, one per class, got shape {values.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.5))
    pal = np.asarray(palette, dtype=np.float32) / 255.0
    ax.bar(np.arange(len(classes)), values, color=pal, edgecolor="black", linewidth=0.5)
    ax.set_xticks(np.arange(len(classes)), list(classes), rotation=45, ha="right")
    ax.set_xlim(-0.6, len(classes) - 0.4)
    return ax
