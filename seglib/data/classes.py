"""
# CamVid's 11 classes and their colours

The class names and the palette every dataset, figure and table of seglib shares: the
11-class CamVid of SegNet (void, label 11 on disk, becomes the ignore index 255, see
`seglib.data.transforms.IGNORE_INDEX`). The synthetic scenes use the same classes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLASSES", "NUM_CLASSES", "PALETTE"]

CLASSES: tuple[str, ...] = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)
NUM_CLASSES: int = len(CLASSES)
# the colours of the SegNet tutorial, one RGB row per class in CLASSES order
PALETTE: np.ndarray = np.array(
    [
        [128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128],
        [60, 40, 222], [128, 128, 0], [192, 128, 128], [64, 64, 128],
        [64, 0, 128], [64, 64, 0], [0, 128, 192],
    ],
    dtype=np.uint8,
)
PALETTE.flags.writeable = False
