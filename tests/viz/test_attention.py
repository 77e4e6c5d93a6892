"""seglib.viz.attention: one pixel's attention map, its uniform level and the cells above it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.contour import ContourSet
from matplotlib.path import Path

from seglib.data import MEAN, STD
from seglib.models.attention import criss_cross_weights
from seglib.viz import (
    plot_attention_map,
)
from seglib.viz.attention import uniform_level

pytestmark = pytest.mark.usefixtures("close_figures")


def normalised(rgb_uint8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(rgb_uint8).permute(2, 0, 1).float() / 255
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def test_attention_map_figure_marks_the_query_pixel():
    rng = np.random.default_rng(3)
    image = normalised(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    att = torch.zeros(6, 8)
    att[2, :] = 0.05
    att[:, 5] = 0.05
    axes = plot_attention_map(image, att, (2, 5))
    assert len(axes) == 2
    assert len(axes[0].images) == 1 and len(axes[1].images) == 2  # image, image + heat map
    (line,) = axes[1].lines
    np.testing.assert_allclose([line.get_xdata()[0], line.get_ydata()[0]], [22.0, 10.0])
    _, ax = plt.subplots()
    assert plot_attention_map(image, att, (0, 0), ax=ax) is ax
    with pytest.raises(ValueError, match="outside"):
        plot_attention_map(image, att, (6, 0))


def test_uniform_level_is_the_weight_of_a_pixel_that_attends_to_nothing():
    for h, w in [(1, 1), (1, 9), (5, 7), (45, 60)]:
        q = torch.zeros(1, 3, h, w, dtype=torch.float64)  # equal energies everywhere
        weights = criss_cross_weights(q, q)  # (1, h, w, h + w - 1)
        torch.testing.assert_close(weights, torch.full_like(weights, uniform_level(h, w)))
    assert uniform_level(45, 60) == 1 / 104
    with pytest.raises(ValueError, match="1x1"):
        uniform_level(0, 3)


def _outlined_cells(ax, shape, size):
    """The cells of an (h, w) map whose centre lies inside the outline on `ax` (even-odd
    rule over its closed polygons); the map is stretched over an image of `size`."""
    contours = [c for c in ax.collections if isinstance(c, ContourSet)]
    if not contours:
        return set()
    (contour,) = contours
    polygons = [Path(p) for path in contour.get_paths() for p in path.to_polygons()]
    (h, w), (big_h, big_w) = shape, size
    cells = [(r, c) for r in range(h) for c in range(w)]
    centres = np.array([((c + 0.5) * big_w / w, (r + 0.5) * big_h / h) for r, c in cells])
    inside = sum(poly.contains_points(centres).astype(int) for poly in polygons) % 2 == 1
    return {cell for cell, yes in zip(cells, inside) if yes}


def _cross_map(h, w, pixel, above):
    """A distribution over `pixel`'s row and column: the cells of `above` get the weights
    given, every other cell of the cross an equal share of the rest (below uniform)."""
    r, c = pixel
    att = torch.zeros(h, w, dtype=torch.float64)
    att[r, :] = att[:, c] = 1.0
    rest = (1 - sum(above.values())) / (h + w - 1 - len(above))
    att *= rest
    for cell, weight in above.items():
        att[cell] = weight
    return att


def test_attention_map_marks_the_uniform_level_and_outlines_the_cells_above_it():
    rng = np.random.default_rng(4)
    image = normalised(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    level = 1 / 13  # a 6x8 map: 13 positions on the cross
    att = _cross_map(6, 8, (2, 5), {(2, 1): 0.3, (2, 2): 0.25, (4, 5): 0.2})
    assert float(att.sum()) == pytest.approx(1.0) and float(att[0, 5]) < level
    axes = plot_attention_map(image, att, (2, 5))
    bar = axes[1].images[-1].colorbar
    (line,) = bar.ax.lines
    np.testing.assert_allclose(line.get_ydata(), [level, level])
    assert "1/13" in bar.ax.get_ylabel()
    assert _outlined_cells(axes[1], (6, 8), (24, 32)) == {(2, 1), (2, 2), (4, 5)}
    assert "max 3.9x uniform" in axes[1].get_title()  # 0.3 * 13
    assert axes[1].get_xlim() == (0.0, 32.0) and axes[1].get_ylim() == (24.0, 0.0)
    # a map that attends to nothing: every cross weight at the level, no outline
    flat = _cross_map(6, 8, (2, 5), {})
    _, ax = plt.subplots()
    plot_attention_map(image, flat, (2, 5), ax=ax)
    bar = ax.images[-1].colorbar
    np.testing.assert_allclose(bar.ax.lines[0].get_ydata(), [level, level])
    assert bar.ax.get_ylim()[0] <= level <= bar.ax.get_ylim()[1]
    assert _outlined_cells(ax, (6, 8), (24, 32)) == set()
    # a map over all pixels is read against 1 / (h w)
    _, ax = plt.subplots()
    plot_attention_map(image, torch.full((6, 8), 1 / 48), (0, 0), ax=ax, level=1 / 48)
    assert "1/48" in ax.images[-1].colorbar.ax.get_ylabel()
