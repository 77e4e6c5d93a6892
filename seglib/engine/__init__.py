"""
# seglib.engine: training and evaluation (notebooks 06-08)

Middle layer: imports `seglib.models` and `seglib.data`, never the command lines.

| file | idea |
|---|---|
| `config.py` | `TrainConfig`: every knob of a run and its help (the CLI's flags); recipes |
| `device.py` | device choice, AMP dtype, channels_last, notebook detection |
| `from_config.py` | the model, datasets and loaders a `TrainConfig` describes |
| `training_loop.py` | `fit`: the epoch loop, `train_one_epoch`, validation, Ctrl-C, DDP |
| `run_state.py` | what a run carries between epochs: `start_or_resume`, `save_epoch` |
| `optimization.py` | SGD, parameter groups (decay, gamma's and the head's lr), the poly schedule |
| `progress.py` | d2l Animator in notebooks, tqdm bar and log lines elsewhere |
| `checkpoint.py` | atomic checkpoints with RNG state, compatibility checks |
| `run_protection.py` | a fresh run never replaces an earlier run's files; one run per folder |
| `distributed.py` | DDP helpers (torchrun, rank-0 work, sharded loaders) |
| `metrics.py` | confusion matrix, IoU, mIoU, pixel and class accuracy |
| `scoring.py` | score a model over a split (`evaluate`), per-class tables |
| `logit_adjustment.py` | undo part of the class weighting at test time, tau chosen on val |
| `snapshots.py` | a `fit` callback that keeps one frame's prediction after every epoch |
"""

from seglib.engine.checkpoint import load_checkpoint
from seglib.engine.config import (
    MODES,
    RECIPES,
    REFINENET_LR,
    TrainConfig,
    is_tiny,
    pick_mode,
    recipe,
    tiny,
)
from seglib.engine.device import pick_device
from seglib.engine.from_config import build_datasets, build_loaders
from seglib.engine.metrics import ConfusionMatrix
from seglib.engine.run_protection import RunExistsError
from seglib.engine.scoring import evaluate, iou_table, load_model, main_logits
from seglib.engine.training_loop import METRIC_COLUMNS, NonFiniteLossError, fit, segmentation_loss

__all__ = [
    "METRIC_COLUMNS",
    "MODES",
    "RECIPES",
    "REFINENET_LR",
    "ConfusionMatrix",
    "NonFiniteLossError",
    "RunExistsError",
    "TrainConfig",
    "build_datasets",
    "build_loaders",
    "evaluate",
    "fit",
    "iou_table",
    "is_tiny",
    "load_checkpoint",
    "load_model",
    "main_logits",
    "pick_device",
    "pick_mode",
    "recipe",
    "segmentation_loss",
    "tiny",
]
