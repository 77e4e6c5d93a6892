"""seglib.data.classes: the 11 SegNet classes and their palette."""

from __future__ import annotations

from collections import Counter
import numpy as np
import pytest
import torch
from PIL import Image
from seglib.data import CLASSES, MEAN, NUM_CLASSES, PALETTE, STD, CamVid, eval_transform
from tests.helpers import (
    RUN_ARGS,
    RUN_FILES,
    copy_run,
    snapshot,
    run_module,
    assert_one_line_error,
    cli_exit,
    bad_files,
    Tiny,
    tiny_loaders,
    TINY_CFG,
    StopsIn,
    K,
    TinyNet,
    make_data,
    loaders,
    FIT_CFG,
    Exploding,
    tiny_ccnet,
    dense_attention,
    CLI_ARGS,
    CLASS_DICT,
    write_png,
)


def test_constants_match_segnet_classes():
    assert NUM_CLASSES == len(CLASSES) == 11
    assert CLASSES[0] == "Sky" and CLASSES[3] == "Road" and CLASSES[10] == "Bicyclist"
    assert PALETTE.shape == (11, 3) and PALETTE.dtype == np.uint8
    assert len({tuple(c) for c in PALETTE.tolist()}) == 11  # all colours distinct
