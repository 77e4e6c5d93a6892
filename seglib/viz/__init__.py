"""
# seglib.viz: pictures (every notebook)

Draws only: never trains, never computes what it shows (the attention weights it draws
come from `seglib.models`).

| file | idea |
|---|---|
| `masks.py` | colour a label map, overlay it, image / prediction / label grids, legend, bars |
| `attention.py` | where one query pixel looks, against the uniform level |
| `snapshots.py` | a run's predictions on one frame, epoch by epoch |
"""

from seglib.viz.attention import plot_attention_map
from seglib.viz.masks import (
    colorize,
    denormalize,
    overlay,
    palette_legend,
    plot_class_frequencies,
    show_segmentation_grid,
)

__all__ = [
    "colorize",
    "denormalize",
    "overlay",
    "palette_legend",
    "plot_attention_map",
    "plot_class_frequencies",
    "show_segmentation_grid",
]
