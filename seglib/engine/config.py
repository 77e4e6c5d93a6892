"""
# The training run's configuration

One typed dataclass holds every knob of a run (nanoGPT/minGPT style): the trainer reads
it, the CLI fills it from flags, and every checkpoint stores it (`asdict`) so that
`seglib.engine.scoring.load_model` can rebuild the model and a resumed run can refuse a
checkpoint written for another model.

The defaults are the *quick CPU recipe* on the synthetic street scenes: a randomly
initialised ResNet-18 CCNet, 200 scenes of 96x128, batch 8, lr 0.1, 16 epochs, which
reaches val mIoU 0.80 in about 2.5 minutes on two CPU cores
(`benchmarks/README_training.md`). The
CamVid recipe of the CCNet paper differs mainly in size: ResNet-101 with ImageNet
weights, 769x769 crops (CamVid: 360x480), batch 8, lr 0.01, poly power 0.9,
weight decay 1e-4 (5e-4 in some recipes), auxiliary loss weight 0.4.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from seglib.data.transforms import JITTER
from seglib.engine.device import AMP_MODES

__all__ = ["CLASS_WEIGHTINGS", "TrainConfig", "min_input_side", "parse_hw"]

CLASS_WEIGHTINGS = ("none", "median")


def parse_hw(text: str) -> tuple[int, int]:
    """Parse an image size written `HxW` (e.g. "360x480") into `(h, w)`, both >= 1.

    Shared by the command lines (`--crop`, `--size`); raises ValueError otherwise.
    """
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"expected a size HxW such as 360x480, got {text!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"expected a size HxW with H, W >= 1, got {text!r}")
    return h, w


def min_input_side(model: str, output_stride: int = 8) -> int | None:
    """The smallest height and width `model` trains on: twice the stride of its deepest
    feature map (CCNet: its output stride; RefineNet: 32), so that this map keeps at
    least 2x2 pixels. On a 1x1 map BatchNorm's statistics describe nothing the full-size
    validation images look like (the val loss grows to NaN), and `torch.export` fixes
    the size. None for a model seglib does not build (no known stride)."""
    stride = {"ccnet": output_stride, "refinenet": 32}.get(model)
    return None if stride is None else 2 * stride


@dataclass
class TrainConfig:
    """Hyper-parameters and run options (comments give the meaning and the unit)."""

    # --- model (used by the CLI and by load_model; a label for custom modules) ---
    model: str = "ccnet"  # ccnet | refinenet | any label for a custom nn.Module
    backbone: str = "resnet18"  # resnet18/34/50/101/152
    num_classes: int | None = None  # K; None = from the dataset or the first output
    recurrence: int = 2  # CCNet: R passes of the shared criss-cross attention
    output_stride: int = 8  # CCNet: 8 (the paper) or 16 (2.5x faster on a CPU)
    decoder: bool = False  # CCNet: fuse layer1 (stride 4) before the classifier (DeepLabv3+)
    features: int = 256  # RefineNet: channels of the refine blocks
    weights_backbone: str | None = None  # torchvision weights name or a local .pth file
    # --- optimisation ---
    epochs: int = 16
    batch_size: int = 8
    crop: tuple[int, int] | None = (96, 128)  # (h, w) training crop (None: CamVid 360x480)
    scale: tuple[float, float] | None = None  # CamVid random scale range (None: 0.5-2.0)
    jitter: str = "light"  # CamVid colour jitter: none | light | strong (data.transforms.JITTER)
    eval_scale: float = 1.0  # evaluation input resized by this; logits back to label size
    lr: float = 0.1  # base learning rate of SGD (0.01 when fine-tuning ImageNet weights)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    decay_1d: bool = True  # weight decay also on biases, norm weights and gamma (dim < 2)
    gamma_lr_mult: float = 1.0  # the attention gate gamma learns at lr times this
    poly_power: float = 0.9  # lr = base_lr * (1 - it / max_it) ** power, per iteration
    aux_weight: float = 0.4  # weight of the auxiliary loss when the model returns one
    class_weights: list[float] | None = None  # per-class cross-entropy weights
    class_weighting: str = "none"  # none | median: compute class_weights from train set
    ignore_index: int = 255  # label value left out of loss and metrics (void)
    grad_clip: float | None = None  # max global gradient norm; None = no clipping
    # --- hardware ---
    amp: str = "auto"  # auto | bf16 | fp16 | off (auto: bf16/fp16 on CUDA, off on CPU)
    channels_last: bool | None = None  # None = on for CUDA
    device: str | None = None  # None = cuda > mps > cpu
    workers: int = 0  # DataLoader worker processes
    sync_bn: bool = False  # SyncBatchNorm under DDP
    # --- data (used by the CLI to build the loaders) ---
    data: str = "synthetic"  # synthetic | camvid | auto
    data_dir: str | None = None  # CamVid root (else $CAMVID_DIR, data/CamVid)
    synthetic_size: tuple[int, int] | None = None  # (h, w) of synthetic scenes; None = crop
    train_size: int = 200  # synthetic training scenes
    val_size: int = 48  # synthetic validation scenes
    train_limit: int | None = None  # use only the first N training images (None: all)
    val_limit: int | None = None  # use only the first N validation images (None: all)
    # --- bookkeeping ---
    seed: int = 0  # seeds init, shuffling and augmentation
    log_points: int = 5  # points per epoch on the live plot
    verbose: bool = True  # tqdm bar and one log line per epoch (rank 0, no notebook)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept in the checkpoint

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {self.output_stride}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.crop is not None:
            if len(tuple(self.crop)) != 2:
                raise ValueError(f"crop must be (h, w), got {self.crop}")
            self.crop = (int(self.crop[0]), int(self.crop[1]))
        if self.scale is not None:
            lo, hi = (float(v) for v in self.scale)
            if not 0 < lo <= hi:
                raise ValueError(f"scale must be (low, high), 0 < low <= high, got {self.scale}")
            self.scale = (lo, hi)
        if self.jitter not in JITTER:
            raise ValueError(f"jitter must be one of {sorted(JITTER)}, got {self.jitter!r}")
        if not (self.gamma_lr_mult > 0 and self.gamma_lr_mult != float("inf")):
            raise ValueError(f"gamma_lr_mult must be a finite number > 0, got {self.gamma_lr_mult}")
        if not 0 < self.eval_scale < math.inf:
            raise ValueError(f"eval_scale must be a finite number > 0, got {self.eval_scale}")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ValueError(f"grad_clip must be a finite number > 0 (a maximum gradient norm) "
                             f"or None, got {self.grad_clip}")  # fmt: skip
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(
                f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {self.class_weighting!r}"
            )
        for name in ("train_limit", "val_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)}")
        if self.synthetic_size is not None:
            self.synthetic_size = (int(self.synthetic_size[0]), int(self.synthetic_size[1]))
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")

    def check_crop(self) -> None:
        """Raise a ValueError naming `--crop` if the crop is below `min_input_side`.

        Checked by `fit` and the command line before any work, not when a config is
        built, so that the checkpoint of an older run still loads."""
        side = min_input_side(self.model, self.output_stride)
        if self.crop is not None and side is not None and min(self.crop) < side:
            h, w = self.crop
            raise ValueError(
                f"crop (--crop) {h}x{w} is too small for {self.model} at output stride "
                f"{side // 2}: use at least {side}x{side}, so that its deepest feature map "
                "keeps 2x2 pixels"
            )

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with some fields changed; unknown names are an error."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; valid: {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`, ignoring fields unknown to this version."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
