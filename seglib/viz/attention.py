"""
# Where one query pixel looks

Draws the attention weights of one query pixel (a map the size of the feature map)
stretched over the photograph, with the query marked. Used in notebooks `02` and `07`.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from seglib.viz.masks import _clean, _numpy, _rgb

__all__ = ["plot_attention_map"]


def plot_attention_map(
    image: Any,
    attn_map: Any,
    pixel: tuple[int, int],
    ax: Axes | None = None,
    alpha: float = 0.6,
    cmap: str = "inferno",
) -> np.ndarray | Axes:
    """Where one query pixel looks: the image and the attention heat map over it.

    Args:
        image: the input image (normalised tensor or uint8 array), size (H, W).
        attn_map: (h, w) attention weights of the query pixel, e.g. from
            `seglib.models.attention.attention_to_map`; h, w may be the feature-map size, the
            map is stretched over the whole image.
        pixel: the query `(row, col)` in attention-map coordinates; marked with a cross.
        ax: draw only the overlay into this axes; None makes a figure with two panels
            (image, overlay with colour bar).

    Returns:
        the given `ax`, or the array of the two new axes.
    """
    rgb = _rgb(image)
    att = _numpy(attn_map).astype(np.float32)
    if att.ndim != 2:
        raise ValueError(f"expected an attention map (h, w), got shape {att.shape}")
    r, c = pixel
    if not (0 <= r < att.shape[0] and 0 <= c < att.shape[1]):
        raise ValueError(f"pixel {pixel} is outside the attention map of size {att.shape}")
    big_h, big_w = rgb.shape[:2]
    # centre of the query cell in image coordinates
    y, x = (r + 0.5) * big_h / att.shape[0], (c + 0.5) * big_w / att.shape[1]
    extent = (0, big_w, big_h, 0)

    def draw_overlay(a: Axes):
        a.imshow(rgb, extent=extent)
        im = a.imshow(att, cmap=cmap, alpha=alpha, extent=extent, interpolation="nearest")
        a.plot([x], [y], marker="x", color="cyan", markersize=9, markeredgewidth=2)
        _clean(a)
        return im

    if ax is not None:
        draw_overlay(ax)
        return ax
    fig, axes = plt.subplots(1, 2, figsize=(2 * 2.5 * big_w / big_h + 0.8, 2.5))
    axes[0].imshow(rgb, extent=extent)
    axes[0].plot([x], [y], marker="x", color="cyan", markersize=9, markeredgewidth=2)
    axes[0].set_title(f"query pixel {tuple(pixel)}")
    _clean(axes[0])
    im = draw_overlay(axes[1])
    axes[1].set_title("attention")
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04)
    return axes
