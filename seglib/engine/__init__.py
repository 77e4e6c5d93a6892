"""
# seglib.engine: training and evaluation (notebooks 06-07)

Middle layer: imports `seglib.models` and `seglib.data`, never the command lines.

| file | idea |
|---|---|
| `config.py` | `TrainConfig`: every knob of a run, stored in each checkpoint |
| `runtime.py` | device choice, AMP dtype, channels_last, notebook detection |
| `distributed.py` | DDP helpers (torchrun, rank-0 work, sharded loaders) |
| `checkpoint.py` | atomic checkpoints with RNG state, compatibility checks |
| `metrics.py` | confusion matrix, IoU, mIoU, pixel and class accuracy |
| `evaluation.py` | evaluate a model over a split, rebuild a model from a checkpoint |
| `logit_adjustment.py` | undo part of the class weighting at test time, tau chosen on val |
| `resolution.py` | the IoU a map at a given stride can reach at all (resolution ceiling) |
| `progress.py` | d2l Animator in notebooks, tqdm bar and log lines elsewhere |
| `builders.py` | datasets and loaders from a `TrainConfig` |
| `run_folder.py` | a fresh run never replaces an earlier run's files without being asked |
| `trainer.py` | `fit`: the training loop with poly LR, AMP, checkpoints, resume, DDP |
| `memory.py` | bytes autograd keeps for backward (notebooks 02, 08, benchmarks) |
| `storage.py` | runs on Google Drive on Colab, so that `resume` outlives the VM |
| `long_range.py` | training and per-region accuracy on the long-range cue task (notebook 03) |
"""

from seglib.engine.builders import build_datasets, build_loaders
from seglib.engine.checkpoint import load_checkpoint
from seglib.engine.config import TrainConfig
from seglib.engine.evaluation import evaluate, iou_table, load_model, main_logits
from seglib.engine.memory import saved_for_backward_bytes
from seglib.engine.metrics import ConfusionMatrix
from seglib.engine.run_folder import RunExistsError
from seglib.engine.runtime import pick_device
from seglib.engine.storage import keep_runs_on_drive
from seglib.engine.trainer import METRIC_COLUMNS, NonFiniteLossError, fit, segmentation_loss

__all__ = [
    "METRIC_COLUMNS",
    "ConfusionMatrix",
    "NonFiniteLossError",
    "RunExistsError",
    "TrainConfig",
    "build_datasets",
    "build_loaders",
    "evaluate",
    "fit",
    "iou_table",
    "keep_runs_on_drive",
    "load_checkpoint",
    "load_model",
    "main_logits",
    "pick_device",
    "saved_for_backward_bytes",
    "segmentation_loss",
]
