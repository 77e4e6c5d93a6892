"""
# seglib.viz: pictures (every notebook)

Top of the library beside the command lines: draws only, never trains.

| file | idea |
|---|---|
| `masks.py` | colour a label map, overlay it, image / prediction / label grids, legend, bars |
| `attention.py` | where one query pixel looks |
| `explorer.py` | RCCA's two passes and their composition, for any query pixel (ipywidgets) |
| `diagrams.py` | architecture diagrams drawn with matplotlib (`seglib.viz.diagrams`) |
"""

from seglib.viz.attention import plot_attention_map
from seglib.viz.explorer import AttentionExplorer, maps_for_pixel, plot_rcca_maps, rcca_attention
from seglib.viz.masks import (
    colorize,
    denormalize,
    overlay,
    palette_legend,
    plot_class_frequencies,
    show_segmentation_grid,
)

__all__ = [
    "AttentionExplorer",
    "colorize",
    "denormalize",
    "overlay",
    "palette_legend",
    "plot_attention_map",
    "plot_class_frequencies",
    "maps_for_pixel",
    "plot_rcca_maps",
    "rcca_attention",
    "show_segmentation_grid",
]
