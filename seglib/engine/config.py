"""
# The training run's configuration, and the named recipes

One typed dataclass holds every knob of a run (nanoGPT/minGPT style): the trainer reads
it, every checkpoint stores it (`asdict`) so that `seglib.engine.scoring.load_model`
can rebuild the model and a resumed run can refuse a checkpoint written for another
model, and the command line makes its flags from it. Each field carries its meaning
and unit as help text: a field made with `option` is also a flag of
`python -m seglib.train` (`batch_size` becomes `--batch-size`, with that help), one
made with `setting` is set by code or a recipe only. A new option is written once, here.

The defaults are the *quick CPU recipe* on the synthetic street scenes: a randomly
initialised ResNet-18 CCNet, 200 scenes of 96x128, batch 8, lr 0.1, 16 epochs
(`python -m seglib.train --data synthetic`). One run of it, timed by
`benchmarks/quick_train.py` on two cores of the shared build machine, reached val
mIoU 0.808 in 167 s (`benchmarks/results/quick_train.csv`, `benchmarks/README.md`).
The CamVid recipe of the CCNet paper differs mainly in size: ResNet-101 with ImageNet
weights, 769x769 crops (CamVid: 360x480), batch 8, lr 0.01, poly power 0.9,
weight decay 1e-4 (5e-4 in some recipes), auxiliary loss weight 0.4.

## Three ways to train: on a GPU, on a laptop CPU, and a quick check

The notebooks and the command line share three named recipes (`RECIPES`), so that a
run started in notebook 06 and `python -m seglib.train --recipe camvid-cpu` are the
same run:

- `gpu` (recipe `camvid-gpu`): this course's GPU recipe for CamVid, built on the CCNet
  paper's optimiser (SGD lr 0.01, momentum 0.9, weight decay 1e-4, the poly schedule)
  and network (ResNet-101 pretrained on ImageNet, output stride 8), with full 360x480
  crops, 80 epochs and mixed precision. The paper trains on Cityscapes; its TPAMI
  version (Huang et al. 2020) also reports a CamVid experiment, but 80 epochs on
  CamVid is our choice, not the paper's schedule. GPU hours (not measured here).
- `cpu` (`camvid-cpu`): ResNet-18 from scratch at half resolution (180x240 crops of
  frames scaled 0.375-0.75), median-frequency class weights, evaluated against the
  native 360x480 labels. About 50 minutes on 2 idle CPU cores.
- `quick`: the same code in about a minute: CamVid when it is there (a small subset at
  low resolution), else the synthetic scenes; class-weighted like `cpu`.

`pick_mode()` chooses `gpu` on CUDA and `quick` elsewhere; `$SEGLIB_MODE` overrides it.
`$SEGLIB_TINY=1` shrinks any recipe to a few iterations on small crops without
downloads or pretrained weights (`tiny`): CI runs the GPU branch of the notebooks that
way on a CPU, so that a typo in the GPU recipe fails the build. RefineNet trains at its
own learning rate, `REFINENET_LR`, in every recipe and from scratch on the command line.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from seglib.data.transforms import JITTER
from seglib.engine.device import AMP_MODES
from seglib.models import MODELS

__all__ = [
    "CLASS_WEIGHTINGS",
    "DATA_SOURCES",
    "MODES",
    "RECIPES",
    "REFINENET_LR",
    "TrainConfig",
    "is_tiny",
    "min_input_side",
    "option",
    "option_fields",
    "parse_hw",
    "pick_mode",
    "recipe",
    "setting",
    "tiny",
]

CLASS_WEIGHTINGS = ("none", "median")
DATA_SOURCES = ("synthetic", "camvid", "auto")  # what `seglib.data.pick_datasets` reads

# RefineNet's refinement path has no batch normalisation: at CCNet's lr 0.1 its loss
# turns NaN within two epochs. Its learning rate in every recipe and from scratch.
REFINENET_LR = 0.005


def option(default: Any, help: str, **argparse_kwargs: Any) -> Any:
    """A `TrainConfig` field that is also a flag of `python -m seglib.train`.

    `help` gives the meaning and the unit; `seglib.train` adds "(default X)" unless it
    already speaks of the default (as it must when the default is None). The flag is
    `--` + the name with `-` for `_`, its type comes from the annotation (a bool is
    `--x/--no-x`, `tuple[int, int]` is HxW, `tuple[float, float]` is LOW-HIGH), and
    `argparse_kwargs` refine it: `choices`, `nargs`, `const` go to `add_argument` as
    they are; `flag` names the flag otherwise, `at_least=n` asks for an integer >= n and
    `positive=True` for a finite number > 0 (checked when the flags are parsed).
    """
    return field(default=default, metadata={"help": help, "cli": True, **argparse_kwargs})


def setting(default: Any, help: str) -> Any:
    """A `TrainConfig` field that no flag sets (code or a recipe does), with its help."""
    return field(default=default, metadata={"help": help, "cli": False})


def option_fields() -> list[dataclasses.Field]:
    """The fields of `TrainConfig` made with `option`: one flag of the command line each."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli")]


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
    """Hyper-parameters and run options; each field's help gives its meaning and unit
    (`option`: also a flag of `python -m seglib.train`; `setting`: code or recipes only)."""

    # --- model (used by the CLI and by load_model; a label for custom modules) ---
    model: str = option("ccnet", "the network: ccnet or refinenet; any label for a custom "
                        "nn.Module given to fit", choices=MODELS)
    backbone: str = option("resnet18", "the ResNet backbone: resnet18, resnet34, resnet50, "
                           "resnet101 or resnet152")
    num_classes: int | None = setting(None, "K, the number of classes; None: from the dataset "
                                      "or from the model's first output")
    recurrence: int = option(2, "CCNet: R, the passes of the shared criss-cross attention; "
                             "0: none")
    output_stride: int = option(8, "CCNet: the backbone's output stride: 8 as in the paper, "
                                "or 16, coarser and faster on a CPU", choices=(8, 16))
    decoder: bool = option(False, "CCNet: a stride-4 decoder that fuses layer1 before the "
                           "classifier, as DeepLabv3+'s; not in the CCNet paper")
    features: int = option(256, "RefineNet: channels of the refine blocks")
    weights_backbone: str | None = option(None, "pretrained backbone: a torchvision weights "
                                          "name (IMAGENET1K_V1) or a local .pth file "
                                          "(default: none, random initialisation)")
    # --- optimisation ---
    epochs: int = option(16, "passes over the training set", at_least=1)
    batch_size: int = option(8, "images per training step", at_least=1)
    crop: tuple[int, int] | None = option((96, 128), "training crop HxW in pixels (default "
                                          "96x128 on the synthetic scenes; on CamVid none: "
                                          "its full 360x480 frames)")
    scale: tuple[float, float] | None = option(
        None, "CamVid's random scale range LOW-HIGH, factors of the frame size (default: 0.5-2.0)"
    )
    jitter: str = option("light", "CamVid's colour jitter as seglib.data.transforms.JITTER "
                         "defines it: none, light or strong", choices=tuple(JITTER))
    eval_scale: float = option(1.0, "evaluation inputs resized by this factor; the logits are "
                               "resized back to the label size", positive=True)
    lr: float = option(0.1, "base learning rate of SGD (default from scratch: ccnet 0.1, "
                       f"refinenet {REFINENET_LR}; a recipe sets its own; 0.01 suits "
                       "fine-tuning ImageNet weights)")
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = option(1e-4, "SGD weight decay (L2 penalty factor)")
    decay_1d: bool = option(True, "weight decay also on biases, norm weights and the "
                            "attention's gamma (tensors of dim < 2); --no-decay-1d: conv "
                            "weights only, as nanoGPT")
    gamma_lr_mult: float = option(1.0, "lr factor of the attention's gamma: it learns at lr "
                                  "times this")
    head_lr_mult: float = option(1.0, "lr factor of CCNet's head (the attention, its "
                                 "convolutions and the classifier: parameters named head.*); "
                                 "gamma's factors multiply")
    poly_power: float = setting(0.9, "lr = base_lr * (1 - it / max_it) ** power, per iteration")
    aux_weight: float = setting(0.4, "weight of the auxiliary loss when the model returns one")
    class_weights: list[float] | None = setting(
        None, "per-class cross-entropy weights; None: unweighted, or computed by class_weighting"
    )
    class_weighting: str = option("none", "class weights of the loss: none, or median: "
                                  "median-frequency class weights of the training set",
                                  choices=CLASS_WEIGHTINGS, flag="--class-weights")
    ignore_index: int = setting(255, "label value left out of loss and metrics (void)")
    grad_clip: float | None = option(None, "clip the global gradient norm to this maximum "
                                     "(default: no clipping)", positive=True)
    # --- hardware ---
    amp: str = option("auto", "mixed precision: auto (bf16/fp16 on CUDA, off on CPU), bf16, "
                      "fp16 or off; --amp alone means auto", choices=AMP_MODES, nargs="?",
                      const="auto")
    channels_last: bool | None = option(None, "NHWC memory layout (default: on for CUDA only; "
                                        "on a CPU it pays for wide 3x3 convolutions such as "
                                        "RefineNet's)")
    device: str | None = option(None, "cuda, cuda:1, mps or cpu (default: the best there is, "
                                "cuda > mps > cpu)")
    workers: int = option(0, "DataLoader worker processes", at_least=0)
    sync_bn: bool = option(False, "SyncBatchNorm under DDP (torchrun)")
    # --- data (used by the CLI to build the loaders) ---
    data: str = option("synthetic", "the data: synthetic scenes, camvid, or auto (CamVid "
                       "when it is found, else synthetic)", choices=DATA_SOURCES)
    data_dir: str | None = option(
        None, "CamVid root (default: $CAMVID_DIR, else data/CamVid); a --data-dir alone "
        "implies --data camvid"
    )
    synthetic_size: tuple[int, int] | None = option(None, "HxW of the synthetic scenes in "
                                                    "pixels (default: the crop)")
    train_size: int = option(200, "synthetic training scenes", at_least=1)
    val_size: int = option(48, "synthetic validation scenes", at_least=1)
    train_limit: int | None = option(None, "use only the first N training images (default: "
                                     "all)", at_least=1)
    val_limit: int | None = option(None, "use only the first N validation images (default: "
                                   "all)", at_least=1)
    # --- bookkeeping ---
    seed: int = option(0, "seeds initialisation, shuffling and augmentation")
    log_points: int = setting(5, "points per epoch on the live plot")
    verbose: bool = setting(True, "tqdm bar and one log line per epoch (rank 0, no notebook)")

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
        for name in ("gamma_lr_mult", "head_lr_mult"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)}")
        if not 0 < self.eval_scale < math.inf:
            raise ValueError(f"eval_scale must be a finite number > 0, got {self.eval_scale}")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ValueError(f"grad_clip must be a finite number > 0 (a maximum gradient norm) "
                             f"or None, got {self.grad_clip}")
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
        """Inverse of `to_dict`, ignoring fields unknown to this version (such as the
        free-form `extra` dict that checkpoints of older versions hold)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# --- the named recipes (notebooks 06-08 and `--recipe`) ---

MODES = {"gpu": "camvid-gpu", "cpu": "camvid-cpu", "quick": "quick"}

RECIPES: dict[str, dict[str, Any]] = {
    # The CCNet paper's optimiser and poly schedule (Huang et al.) on CamVid's full frames;
    # 80 epochs is this course's choice for CamVid, not a figure from the paper
    "camvid-gpu": dict(
        data="camvid", backbone="resnet101", weights_backbone="IMAGENET1K_V2",
        crop=(360, 480), scale=(0.5, 2.0), batch_size=8, epochs=80, lr=0.01,
        weight_decay=1e-4, amp="auto", workers=2, eval_scale=1.0,
    ),
    # From scratch on a laptop: half resolution, strong augmentation, rare classes weighted.
    # Output stride 16 with the stride-4 decoder runs at 1.95x the images/s of output
    # stride 8 (benchmarks/throughput.py --cpu-recipe), so 60 epochs cost what 30 did,
    # and it scored best on val and test of every CPU run (README, benchmarks/camvid_cpu.py)
    "camvid-cpu": dict(
        data="camvid", backbone="resnet18", weights_backbone=None, crop=(180, 240),
        scale=(0.375, 0.75), eval_scale=0.5, batch_size=8, epochs=60, lr=0.05,
        weight_decay=2e-4, class_weighting="median", amp="off", workers=0,
        output_stride=16, decoder=True,
    ),
    # The same code in about a minute: CamVid if present (48 crops of 96x128), else synthetic
    "quick": dict(
        data="auto", backbone="resnet18", weights_backbone=None, crop=(96, 128),
        scale=(0.2, 0.4), eval_scale=0.25, batch_size=8, epochs=4, lr=0.05,
        class_weighting="median", train_limit=48, val_limit=24, train_size=120, val_size=24,
        amp="off",
    ),
}


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def is_tiny() -> bool:
    """Whether `$SEGLIB_TINY` asks for tiny runs (CI's check of every branch): 1, true,
    yes or on; 0, false, no, off or unset/empty for normal runs; anything else is a
    ValueError (a misspelt switch must not silently pick one)."""
    value = os.environ.get("SEGLIB_TINY", "").strip().lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(f"SEGLIB_TINY must be one of {', '.join(_TRUE)} (tiny runs) or "
                         f"{', '.join(_FALSE[1:])} or empty (normal runs), got "
                         f"{os.environ['SEGLIB_TINY']!r}")
    return value in _TRUE


def pick_mode(mode: str | None = None) -> str:
    """`mode` if given, else `$SEGLIB_MODE`, else "gpu" on CUDA and "quick" elsewhere."""
    default = "gpu" if torch.cuda.is_available() else "quick"
    mode = mode or os.environ.get("SEGLIB_MODE") or default
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    return mode


def tiny(config: TrainConfig) -> TrainConfig:
    """`config` shrunk to seconds on a CPU: one epoch, 64x96 crops, 4+2 images, no downloads.

    The model, backbone, optimiser and code paths stay the recipe's own; only sizes
    change, and pretrained weights are dropped (no network in CI).
    """
    return config.replace(
        epochs=1, crop=(64, 96), batch_size=2, train_limit=4, val_limit=2, train_size=4,
        val_size=2, weights_backbone=None, workers=0, eval_scale=min(config.eval_scale, 0.25),
        data="auto" if config.data == "camvid" else config.data, log_points=1,
    )


def recipe(name: str, model: str = "ccnet", **overrides: Any) -> TrainConfig:
    """The `TrainConfig` of a recipe ("camvid-gpu", "camvid-cpu", "quick") or of a mode
    ("gpu", "cpu", "quick") for `model` ("ccnet" or "refinenet"), with `overrides`;
    shrunk by `tiny` when `$SEGLIB_TINY` is set."""
    name = MODES.get(name, name)
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {sorted(RECIPES)} "
                         f"or a mode {sorted(MODES)}")
    fields = dict(RECIPES[name], model=model)
    if model == "refinenet":
        fields["lr"] = REFINENET_LR
        for ccnet_only in ("output_stride", "decoder"):  # RefineNet has its own strides
            fields.pop(ccnet_only, None)
        if name == "quick":  # a narrow refinement path keeps the minute a minute on a CPU
            fields["features"] = 64
    config = TrainConfig(**fields).replace(**overrides)
    return tiny(config) if is_tiny() else config
