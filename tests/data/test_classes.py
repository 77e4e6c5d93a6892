"""seglib.data.classes: the 11 SegNet classes and their palette."""

from __future__ import annotations

import numpy as np

from seglib.data import CLASSES, NUM_CLASSES, PALETTE


def test_constants_match_segnet_classes():
    assert NUM_CLASSES == len(CLASSES) == 11
    assert CLASSES[0] == "Sky" and CLASSES[3] == "Road" and CLASSES[10] == "Bicyclist"
    assert PALETTE.shape == (11, 3) and PALETTE.dtype == np.uint8
    assert len({tuple(c) for c in PALETTE.tolist()}) == 11  # all colours distinct
