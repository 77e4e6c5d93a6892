"""
# From a TrainConfig to the model, the datasets and the loaders

`build_model_for` builds the network a config describes (`seglib.models.build_model`
with every field that shapes it, so that training and `load_model` cannot disagree),
`build_datasets` picks CamVid or the synthetic scenes as the config says, and
`build_loaders` wraps them in reproducible DataLoaders. Used by `python -m seglib.train`,
`python -m seglib.evaluate` and notebooks 06 and 07.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from seglib.data import CamVid, DataChoice, class_weights, pick_datasets
from seglib.engine import distributed as ddp
from seglib.engine.config import TrainConfig
from seglib.models.factory import build_model

__all__ = ["build_datasets", "build_loaders", "build_model_for", "check_labels",
           "resolve_class_weights"]


def build_model_for(config: TrainConfig, pretrained: bool = True) -> nn.Module:
    """The network `config` describes (model, backbone, classes and every field that
    shapes it), with `config.weights_backbone` unless `pretrained=False` (a checkpoint's
    weights will replace them anyway)."""
    weights = config.weights_backbone if pretrained else None
    return build_model(config.model, config.num_classes, config.backbone,
                       recurrence=config.recurrence, features=config.features,
                       output_stride=config.output_stride, decoder=config.decoder,
                       weights_backbone=weights)


def build_datasets(config: TrainConfig, split: str = "val") -> DataChoice:
    """`seglib.data.pick_datasets` for this config: returns its `DataChoice`.

    `train_limit` / `val_limit` keep only the first images of each split (quick runs).
    CamVid's validation labels are read once here (`check_labels`), so that a corrupt
    one stops the run now rather than after the first training epoch.
    """
    choice = pick_datasets(
        config.data_dir,
        source=config.data,
        crop=config.crop,
        scale=config.scale,
        jitter=config.jitter,
        train_size=config.train_size,
        val_size=config.val_size,
        synthetic_size=config.synthetic_size,
        seed=config.seed,
        split=split,
        verbose=ddp.is_main(),  # one "which data" line, not one per DDP process
    )
    if config.train_limit is not None and config.train_limit < len(choice.train):
        choice.train = Subset(choice.train, range(config.train_limit))
    if config.val_limit is not None and config.val_limit < len(choice.val):
        choice.val = Subset(choice.val, range(config.val_limit))
    check_labels(choice.val)
    return choice


def check_labels(dataset: Dataset) -> None:
    """Read every label map of a CamVid dataset (or a Subset of one) once.

    `CamVid` checks each file's header and size when it is built, but decodes the
    pixels only when an item is loaded; a truncated label or an out-of-range value
    would otherwise surface only when evaluation first reaches it. A ValueError names
    the file. About 0.15 s for CamVid's 101 validation labels on one CPU core; other
    datasets (the synthetic scenes, made in memory) are not checked.
    """
    indices: Sequence[int] = range(len(dataset))
    if isinstance(dataset, Subset):
        dataset, indices = dataset.dataset, dataset.indices
    if isinstance(dataset, CamVid):
        for i in indices:
            dataset.load_mask(i)


def resolve_class_weights(config: TrainConfig, choice: DataChoice) -> TrainConfig:
    """The config with `class_weights` filled in when `class_weighting` asks for them.

    "median": median-frequency balancing over the training images (labels read without
    augmentation, see `seglib.data.class_weights`). Explicit `class_weights` win.
    """
    if config.class_weights is not None or config.class_weighting == "none":
        return config
    return config.replace(class_weights=class_weights(choice.train).tolist())


def build_loaders(config: TrainConfig, choice: DataChoice) -> tuple[DataLoader, DataLoader]:
    """Shuffled training loader (explicit generator: reproducible) and a val loader."""
    g = torch.Generator().manual_seed(config.seed)
    # Not persistent: workers are re-created each epoch and take their seeds from `g`,
    # which `fit` re-seeds from (seed, epoch). Persistent workers would keep the first
    # epoch's seeds, so a resumed run would augment differently from an uninterrupted one.
    kw = {"num_workers": config.workers, "persistent_workers": False,
          "pin_memory": torch.cuda.is_available()}
    drop = len(choice.train) > config.batch_size  # no 1-image batch for BatchNorm
    train = DataLoader(choice.train, batch_size=config.batch_size, shuffle=True,
                       drop_last=drop, generator=g, **kw)
    val = DataLoader(choice.val, batch_size=config.batch_size, **kw)
    return train, val
