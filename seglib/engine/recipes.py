"""
# Three ways to train: on a GPU, on a laptop CPU, and a quick check

The notebooks and the command line share three named recipes, so that a run started in
notebook 06 and `python -m seglib.train --recipe camvid-cpu` are the same run:

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
downloads or pretrained weights: CI runs the GPU branch of the notebooks that way on a
CPU, so that a typo in the GPU recipe fails the build.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from seglib.engine.config import TrainConfig

__all__ = ["MODES", "RECIPES", "is_tiny", "pick_mode", "recipe", "tiny"]

MODES = {"gpu": "camvid-gpu", "cpu": "camvid-cpu", "quick": "quick"}

RECIPES: dict[str, dict[str, Any]] = {
    # The CCNet paper's optimiser and poly schedule (Huang et al.) on CamVid's full frames;
    # 80 epochs is this course's choice for CamVid, not a figure from the paper
    "camvid-gpu": dict(
        data="camvid", backbone="resnet101", weights_backbone="IMAGENET1K_V2",
        crop=(360, 480), scale=(0.5, 2.0), batch_size=8, epochs=80, lr=0.01,
        weight_decay=1e-4, amp="auto", workers=2, eval_scale=1.0,
    ),  # fmt: skip
    # From scratch on a laptop: half resolution, strong augmentation, rare classes weighted.
    # Output stride 16 with the stride-4 decoder runs at 1.95x the images/s of output
    # stride 8 (benchmarks/throughput.py --cpu-recipe), so 60 epochs cost what 30 did,
    # and it scored best on val and test of every CPU run (README, benchmarks/camvid_cpu.py)
    "camvid-cpu": dict(
        data="camvid", backbone="resnet18", weights_backbone=None, crop=(180, 240),
        scale=(0.375, 0.75), eval_scale=0.5, batch_size=8, epochs=60, lr=0.05,
        weight_decay=2e-4, class_weighting="median", amp="off", workers=0,
        output_stride=16, decoder=True,
    ),  # fmt: skip
    # The same code in about a minute: CamVid if present (48 crops of 96x128), else synthetic
    "quick": dict(
        data="auto", backbone="resnet18", weights_backbone=None, crop=(96, 128),
        scale=(0.2, 0.4), eval_scale=0.25, batch_size=8, epochs=4, lr=0.05,
        class_weighting="median", train_limit=48, val_limit=24, train_size=120, val_size=24,
        amp="off",
    ),  # fmt: skip
}
# RefineNet's refinement path has no batch normalisation: it needs a smaller learning rate
REFINENET_LR = {"camvid-gpu": 0.005, "camvid-cpu": 0.005, "quick": 0.005}


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def is_tiny() -> bool:
    """Whether `$SEGLIB_TINY` asks for tiny runs (CI's check of every branch): 1, true,
    yes or on; 0, false, no, off or unset/empty for normal runs; anything else is a
    ValueError (a misspelt switch must not silently pick one)."""
    value = os.environ.get("SEGLIB_TINY", "").strip().lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(f"SEGLIB_TINY must be one of {', '.join(_TRUE)} (tiny runs) or "
                         f"{', '.join(_FALSE[1:])} or empty (normal runs), got "
                         f"{os.environ['SEGLIB_TINY']!r}")  # fmt: skip
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
    )  # fmt: skip


def recipe(name: str, model: str = "ccnet", **overrides: Any) -> TrainConfig:
    """The `TrainConfig` of a recipe ("camvid-gpu", "camvid-cpu", "quick") or of a mode
    ("gpu", "cpu", "quick") for `model` ("ccnet" or "refinenet"), with `overrides`;
    shrunk by `tiny` when `$SEGLIB_TINY` is set."""
    name = MODES.get(name, name)
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {sorted(RECIPES)} "
                         f"or a mode {sorted(MODES)}")  # fmt: skip
    fields = dict(RECIPES[name], model=model)
    if model == "refinenet":
        fields["lr"] = REFINENET_LR[name]
        for ccnet_only in ("output_stride", "decoder"):  # RefineNet has its own strides
            fields.pop(ccnet_only, None)
        if name == "quick":  # a narrow refinement path keeps the minute a minute on a CPU
            fields["features"] = 64
    config = TrainConfig(**fields).replace(**overrides)
    return tiny(config) if is_tiny() else config
