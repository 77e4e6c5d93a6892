"""
# seglib.data: street scenes in, tensors out (notebook 05)

Bottom layer of seglib, beside `seglib.models` (neither imports the other).

| file | idea |
|---|---|
| `classes.py` | the 11 CamVid classes and their palette |
| `transforms.py` | train (random scale/crop/flip/colour) and eval (unchanged) pipelines |
| `dataset.py` | what CamVid and the synthetic scenes share (item format, repr) |
| `camvid.py` | CamVid in the SegNet or the 32-class colour layout |
| `synthetic.py` | procedural street scenes: the no-download fallback |
| `long_range.py` | a cue far from the objects it labels: where attention must work (03) |
| `statistics.py` | class frequencies and median-frequency loss weights |
| `download.py` | fetch and extract the SegNet CamVid archive |
| `source.py` | which data: CamVid when it is there, else the synthetic scenes |
| `ensure.py` | CamVid for sure: downloaded on Colab, a clear error elsewhere |
"""

from seglib.data.camvid import CamVid
from seglib.data.classes import CLASSES, NUM_CLASSES, PALETTE
from seglib.data.download import DEFAULT_URL, has_segnet_layout
from seglib.data.download import download as download_camvid
from seglib.data.ensure import ensure_camvid
from seglib.data.long_range import LongRangeTask
from seglib.data.source import DataChoice, find_camvid, pick_datasets
from seglib.data.statistics import class_frequencies, class_weights
from seglib.data.synthetic import SyntheticStreets
from seglib.data.transforms import (
    IGNORE_INDEX,
    MEAN,
    STD,
    apply_transform,
    eval_transform,
    train_transform,
)

__all__ = [
    "CLASSES",
    "DEFAULT_URL",
    "IGNORE_INDEX",
    "MEAN",
    "NUM_CLASSES",
    "PALETTE",
    "STD",
    "CamVid",
    "DataChoice",
    "LongRangeTask",
    "SyntheticStreets",
    "apply_transform",
    "class_frequencies",
    "class_weights",
    "download_camvid",
    "ensure_camvid",
    "eval_transform",
    "find_camvid",
    "has_segnet_layout",
    "pick_datasets",
    "train_transform",
]
