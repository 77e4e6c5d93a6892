"""
seglib: attention-based semantic segmentation, built step by step.

The package behind the notebook series, in layers whose imports run one way (each
imports only the layers above it in this list):

1. `seglib.models` and `seglib.data` (independent of each other): the networks, and
   the street scenes (CamVid or synthetic) as tensors;
2. `seglib.engine`: configuration, training loop, metrics, evaluation, checkpoints;
3. `seglib.viz`: figures;
4. `seglib.course`: what the notebooks alone need (diagrams, the attention explorer,
   exercise checks, the GPU memory estimate, Google Drive on Colab, ...);
5. the command lines `python -m seglib.train`, `seglib.evaluate`, `seglib.export`.

Which notebook uses which files:

| notebook | seglib files |
|---|---|
| 01 backbone | `models/backbone.py`, `models/cost.py` |
| 02 criss-cross attention | `models/attention.py`, `viz/attention.py` |
| 03 RCCA and CCNet | `models/ccnet.py`, `models/losses.py`, `models/long_range_net.py`, |
| | `data/long_range.py`, `course/long_range_experiment.py` |
| 04 RefineNet | `models/refinenet.py` |
| 05 CamVid | `data/*` (`camvid.py`, `transforms.py`, `statistics.py`, ...), `viz/masks.py` |
| 06 training | `engine/training_loop.py`, `engine/run_state.py`, `engine/optimization.py`, |
| | `engine/from_config.py`, `engine/config.py`, `engine/snapshots.py`, `viz/snapshots.py`, |
| | `models/factory.py` |
| 07 evaluation | `engine/scoring.py`, `engine/metrics.py`, `engine/logit_adjustment.py`, |
| | `course/resolution_ceiling.py`, `viz/*` |
| 08 attention on CamVid | `models/rcca_probes.py`, `course/explorer.py` |
| 09 appendix: lean backward | `models/attention_lean.py`, `course/saved_bytes.py` |

The public names are re-exported here and by each subpackage, e.g.
`from seglib.models import CCNet` or `seglib.CCNet`; here they load on first use, so that
`import seglib.models` does not load seglib.data's dependencies (OpenCV, albumentations, pandas).
"""

import importlib
from typing import Any

# The public names, each with the subpackage it comes from. They load on first use (PEP 562),
# so `import seglib.models` loads neither OpenCV, albumentations nor pandas (seglib.data's).
_EXPORTS = {
    **dict.fromkeys(["CLASSES", "NUM_CLASSES", "PALETTE", "CamVid", "SyntheticStreets",
                     "class_weights", "download_camvid", "pick_datasets"], "seglib.data"),
    **dict.fromkeys(["TrainConfig", "fit", "load_model"], "seglib.engine"),
    **dict.fromkeys(["CCNet", "CrissCrossAttention", "RefineNet", "build_backbone",
                     "build_model"], "seglib.models"),
}

__version__ = "0.2.0"

__all__ = [
    "CLASSES",
    "NUM_CLASSES",
    "PALETTE",
    "CCNet",
    "CamVid",
    "CrissCrossAttention",
    "RefineNet",
    "SyntheticStreets",
    "TrainConfig",
    "__version__",
    "build_backbone",
    "build_model",
    "class_weights",
    "download_camvid",
    "fit",
    "load_model",
    "pick_datasets",
]


_SUBPACKAGES = ("models", "data", "engine", "viz", "course")


def __getattr__(name: str) -> Any:
    """`seglib.CCNet`, `from seglib import fit`, `seglib.data.ensure_camvid()` after a bare
    `import seglib`: import the name's subpackage on first use."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"seglib.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'seglib' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBPACKAGES})
