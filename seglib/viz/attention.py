r"""
# Where one query pixel looks, against the uniform level

Draws the attention weights of one query pixel (a map the size of the feature map)
stretched over the photograph, with the query marked. Used in notebook `02`; the
explorer (`seglib.course.explorer`, notebook `07`) marks the same level.

A map only means something next to what a pixel that attends to nothing would give:
criss-cross attention spreads a weight of one over the $H + W - 1$ positions of the
query's row and column, so with equal energies every position gets

$$\frac{1}{H + W - 1} \qquad (\text{e.g. } 1/104 \text{ on a } 45 \times 60 \text{ map}).$$

Every figure here marks that level twice: a dashed line across the colour bar, and a
dashed outline around the cells that get more than it. A map that attends has a few
outlined cells far above the line; a map with no outline, or whose largest weight sits
just above the line, attends to nothing in particular.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colorbar import Colorbar
from matplotlib.contour import QuadContourSet
from matplotlib.lines import Line2D

from seglib.viz.masks import as_rgb, hide_ticks, to_numpy

__all__ = ["mark_uniform", "outline_above", "plot_attention_map", "uniform_level"]

UNIFORM_STYLE = dict(color="lime", linestyle="--", linewidth=1.0)  # line and outline alike


def uniform_level(h: int, w: int) -> float:
    """$1 / (h + w - 1)$: each weight of a criss-cross map that attends to nothing.

    The softmax of equal energies over the query's row and column (the centre counted
    once) on an (h, w) feature map. For a map over all $hw$ pixels (dense attention, or
    two passes composed) the level is `1 / (h * w)` instead.
    """
    if h < 1 or w < 1:
        raise ValueError(f"feature map size must be at least 1x1, got {h}x{w}")
    return 1.0 / (h + w - 1)


def mark_uniform(colorbar: Colorbar, level: float, text: str = "1/(H+W-1)") -> Line2D:
    """A dashed line across `colorbar` at weight `level`, named in the colour bar's label.

    Works on linear and log colour bars alike (the colour bar's axis is in weights).
    """
    vertical = colorbar.orientation == "vertical"
    style = {**UNIFORM_STYLE, "linewidth": 2.0}  # thicker: the bar is narrow
    line = (colorbar.ax.axhline if vertical else colorbar.ax.axvline)(level, **style)
    colorbar.set_label(f"weight; dashed: uniform {text}", fontsize=8)
    return line


def outline_above(
    ax: Axes, att: np.ndarray, level: float, extent: tuple[float, float, float, float]
) -> QuadContourSet | None:
    """Dashed outline, on `ax`, of the cells of map `att` (h, w) whose weight exceeds `level`.

    "Exceeds" means by more than 0.1 %, so that rounding in a uniform map outlines
    nothing. `extent` is the imshow extent `(0, width, height, 0)` the map is stretched
    over. None when no cell is above the level (nothing to outline) or the map is a
    single row or column (too thin for a contour). The axes keep their limits.
    """
    above = np.asarray(att) > level * (1 + 1e-3)  # (h, w)
    if not above.any() or min(above.shape) < 2:
        return None
    h, w = above.shape
    x0, x1, y1, y0 = extent  # imshow order: left, right, bottom, top
    cw, ch = (x1 - x0) / w, (y1 - y0) / h
    # a border of "below" cells, so that outlines at the image's edge close
    padded = np.pad(above.astype(float), 1)  # (h + 2, w + 2)
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    contour = ax.contour(padded, levels=[0.5], origin="upper",
                         extent=(x0 - cw, x1 + cw, y1 + ch, y0 - ch), colors=UNIFORM_STYLE["color"],
                         linestyles=UNIFORM_STYLE["linestyle"], linewidths=0.7)
    ax.set_xlim(xlim), ax.set_ylim(ylim)
    return contour


def plot_attention_map(
    image: Any,
    attn_map: Any,
    pixel: tuple[int, int],
    ax: Axes | None = None,
    alpha: float = 0.6,
    cmap: str = "inferno",
    *,
    level: float | None = None,
    colorbar: bool = True,
) -> np.ndarray | Axes:
    """Where one query pixel looks: the image and the attention heat map over it, with
    the uniform level marked on the colour bar and around the cells above it.

    Args:
        image: the input image (normalised tensor or uint8 array), size (H, W).
        attn_map: (h, w) attention weights of the query pixel, e.g. from
            `seglib.models.attention.attention_to_map`; h, w may be the feature-map size, the
            map is stretched over the whole image.
        pixel: the query `(row, col)` in attention-map coordinates; marked with a cross.
        ax: draw only the overlay (and its colour bar) into this axes; None makes a
            figure with two panels (image, overlay with colour bar).
        alpha: opacity of the heat map over the photograph.
        cmap: matplotlib colour map of the weights (linear, from 0).
        level: the uniform level to mark; None is `uniform_level(h, w)`, right for a
            criss-cross map (pass `1 / (h * w)` for a map over all pixels).
        colorbar: draw the colour bar (with the level's dashed line).

    Returns:
        the given `ax`, or the array of the two new axes.
    """
    rgb = as_rgb(image)
    att = to_numpy(attn_map).astype(np.float32)
    if att.ndim != 2:
        raise ValueError(f"expected an attention map (h, w), got shape {att.shape}")
    r, c = pixel
    if not (0 <= r < att.shape[0] and 0 <= c < att.shape[1]):
        raise ValueError(f"pixel {pixel} is outside the attention map of size {att.shape}")
    level = uniform_level(*att.shape) if level is None else float(level)
    big_h, big_w = rgb.shape[:2]
    # centre of the query cell in image coordinates
    y, x = (r + 0.5) * big_h / att.shape[0], (c + 0.5) * big_w / att.shape[1]
    extent = (0, big_w, big_h, 0)
    text = (f"1/{round(1 / level)}" if abs(1 / level - round(1 / level)) < 1e-6
            else f"{level:.2g}")

    def draw_overlay(a: Axes) -> None:
        a.imshow(rgb, extent=extent)
        # linear from 0, and high enough that the uniform level is on the colour bar
        im = a.imshow(att, cmap=cmap, alpha=alpha, extent=extent, interpolation="nearest",
                      vmin=0.0, vmax=max(float(att.max()), level))
        outline_above(a, att, level, extent)
        a.plot([x], [y], marker="x", color="cyan", markersize=9, markeredgewidth=2)
        hide_ticks(a)
        if colorbar:
            bar = a.figure.colorbar(im, ax=a, fraction=0.046, pad=0.04)
            mark_uniform(bar, level, text)

    if ax is not None:
        draw_overlay(ax)
        return ax
    fig, axes = plt.subplots(1, 2, figsize=(2 * 2.5 * big_w / big_h + 0.8, 2.5))
    axes[0].imshow(rgb, extent=extent)
    axes[0].plot([x], [y], marker="x", color="cyan", markersize=9, markeredgewidth=2)
    axes[0].set_title(f"query pixel {tuple(pixel)}")
    hide_ticks(axes[0])
    draw_overlay(axes[1])
    axes[1].set_title(f"attention: max {att.max() / level:.1f}x uniform")
    return axes
