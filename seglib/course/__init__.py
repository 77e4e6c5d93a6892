"""
# seglib.course: what exists for the notebooks only

The library (`models`, `data`, `engine`, `viz`) trains and evaluates networks; this
package holds the teaching aids around it, which no training run needs:

| file | idea | notebook |
|---|---|---|
| `diagrams.py` | architecture diagrams drawn with matplotlib | 01-04 |
| `exercises.py` | self-checks for the coding exercises | 01-09 |
| `long_range_experiment.py` | train and score R = 0, 1, 2 on the long-range cue task | 03 |
| `gpu_budget.py` | an estimate of a training step's GPU memory | 06 |
| `colab_drive.py` | runs kept on Google Drive on Colab | 06-08 |
| `resolution_ceiling.py` | the IoU a map at a given stride can reach at all | 07 |
| `explorer.py` | RCCA's two passes and their composition, for any query pixel (ipywidgets) | 08 |
| `saved_bytes.py` | bytes autograd keeps for backward | 09 |

Top layer beside the command lines: it may import every other part of seglib.
"""

from seglib.course.colab_drive import keep_runs_on_drive
from seglib.course.explorer import AttentionExplorer, maps_for_pixel, plot_rcca_maps
from seglib.course.saved_bytes import saved_for_backward_bytes

__all__ = [
    "AttentionExplorer",
    "keep_runs_on_drive",
    "maps_for_pixel",
    "plot_rcca_maps",
    "saved_for_backward_bytes",
]
