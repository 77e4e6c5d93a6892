"""seglib.viz.masks: colours, overlays and figures (headless, Agg backend from conftest)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seglib.data import CLASSES, MEAN, PALETTE, STD
from seglib.viz import (
    colorize,
    denormalize,
    overlay,
    palette_legend,
    plot_class_frequencies,
    show_segmentation_grid,
)

pytestmark = pytest.mark.usefixtures("close_figures")


def normalised(rgb_uint8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(rgb_uint8).permute(2, 0, 1).float() / 255
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def test_colorize_maps_each_class_to_its_colour_and_void_to_black():
    mask = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 255]])
    out = colorize(torch.from_numpy(mask))
    assert out.dtype == np.uint8 and out.shape == (3, 4, 3)
    for (i, j), c in np.ndenumerate(mask):
        expected = (0, 0, 0) if c == 255 else tuple(PALETTE[c])
        assert tuple(out[i, j]) == expected
    with pytest.raises(ValueError, match="0..10"):
        colorize(np.array([[11]]))


def test_denormalize_inverts_the_normalisation():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    out = denormalize(normalised(rgb))
    assert out.shape == (5, 6, 3)
    np.testing.assert_allclose(out, rgb / 255, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        denormalize(torch.zeros(1, 3, 5, 6))


def test_overlay_shape_dtype_and_alpha_limits():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    mask = rng.integers(0, 11, (6, 8))
    mask[0, 0] = 255
    out = overlay(normalised(rgb), mask, alpha=0.5)
    assert out.shape == (6, 8, 3) and out.dtype == np.float32
    np.testing.assert_allclose(overlay(rgb, mask, alpha=0.0), rgb / 255, atol=1e-6)
    full = overlay(rgb, mask, alpha=1.0)
    np.testing.assert_allclose(full[1:, :], PALETTE[mask[1:, :]] / 255, atol=1e-6)
    np.testing.assert_allclose(full[0, 0], rgb[0, 0] / 255, atol=1e-6)  # void keeps the image
    np.testing.assert_allclose(out[2, 3], 0.5 * rgb[2, 3] / 255 + 0.5 * PALETTE[mask[2, 3]] / 255,
                               atol=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        overlay(rgb, mask[:, :4])


def test_segmentation_grid_has_one_image_per_panel_and_no_ticks():
    rng = np.random.default_rng(2)
    images = [normalised(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)) for _ in range(3)]
    preds = [torch.from_numpy(rng.integers(0, 11, (12, 16))) for _ in range(3)]
    labels = [rng.integers(0, 11, (12, 16)) for _ in range(3)]
    axes = show_segmentation_grid(images, [preds, labels], ["image", "prediction", "label"])
    assert axes.shape == (3, 3)
    assert all(len(ax.images) == 1 for ax in axes.flat)
    assert all(not ax.get_xticks().size and not ax.get_yticks().size for ax in axes.flat)
    assert [ax.get_title() for ax in axes[0]] == ["image", "prediction", "label"]
    np.testing.assert_array_equal(axes[1, 2].images[0].get_array(), colorize(labels[1]))
    with pytest.raises(ValueError, match="titles"):
        show_segmentation_grid(images, [preds], ["image"])


def test_palette_legend_and_class_frequencies():
    ax = palette_legend(CLASSES, PALETTE)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == list(CLASSES)
    freqs = np.linspace(0.01, 0.2, 11)
    ax = plot_class_frequencies(freqs, CLASSES, PALETTE)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, freqs)
    np.testing.assert_allclose(ax.patches[3].get_facecolor()[:3], PALETTE[3] / 255)
    with pytest.raises(ValueError, match="one per class"):
        plot_class_frequencies(freqs[:5], CLASSES)
