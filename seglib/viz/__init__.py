"""
# seglib.viz: pictures (every notebook)

Top of the library beside the command lines: draws only, never trains.

| file | idea |
|---|---|
| `masks.py` | colour a label map, overlay it, image / prediction / label grids, legend, bars |
| `attention.py` | where one query pixel looks |
| `diagrams.py` | architecture diagrams drawn with matplotlib (`seglib.viz.diagrams`) |
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
