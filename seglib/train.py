"""
# Train CCNet or RefineNet from the command line

    python -m seglib.train --data synthetic --out runs/quick        # quick CPU run
    python -m seglib.train --model ccnet --backbone resnet101 --data camvid \\
        --weights-backbone IMAGENET1K_V2 --crop 360x480 --epochs 80 --lr 0.01 --out runs/c101
    torchrun --nproc-per-node 4 -m seglib.train ... --sync-bn       # several GPUs (DDP)
    python -m seglib.train --out runs/quick --resume                # continue a run

The defaults are a quick CPU recipe on the synthetic street scenes (see
`seglib.config.TrainConfig`); `--data camvid` uses CamVid from `--data-dir`,
`$CAMVID_DIR` or `data/CamVid`. Everything lands in `--out`: `metrics.csv`, `last.pt`,
`best.pt`. The training loop itself is `seglib.trainer.fit` (re-exported here), which
notebooks call directly. Taught in `notebooks/06_training.ipynb`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from seglib import distributed as ddp
from seglib.config import TrainConfig, parse_hw
from seglib.trainer import METRIC_COLUMNS, NonFiniteLossError, fit, segmentation_loss

if TYPE_CHECKING:
    from seglib.data import DataChoice

__all__ = [
    "TrainConfig",
    "fit",
    "build_model",
    "build_loaders",
    "segmentation_loss",
    "NonFiniteLossError",
    "METRIC_COLUMNS",
    "parse_args",
    "main",
]

MODELS = ("ccnet", "refinenet")
# Default SGD learning rate per model for runs from scratch: RefineNet's refinement path
# has no batch normalisation, and at CCNet's 0.1 its loss turns NaN within two epochs.
DEFAULT_LR = {"ccnet": TrainConfig.lr, "refinenet": 0.005}


def build_model(
    name: str,
    num_classes: int,
    backbone: str = "resnet18",
    *,
    recurrence: int = 2,
    features: int = 256,
    weights_backbone: Any = None,
    aux: bool = True,
) -> nn.Module:
    """Build `ccnet` (with its auxiliary head unless `aux=False`) or `refinenet`."""
    if name == "ccnet":
        from seglib.ccnet import CCNet

        return CCNet(num_classes, backbone=backbone, recurrence=recurrence, aux=aux,
                     weights_backbone=weights_backbone)  # fmt: skip
    if name == "refinenet":
        from seglib.refinenet import RefineNet

        return RefineNet(num_classes, backbone=backbone, features=features,
                         weights_backbone=weights_backbone)  # fmt: skip
    raise ValueError(f"unknown model {name!r}, expected one of {MODELS}")


def build_datasets(config: TrainConfig, split: str = "val") -> DataChoice:
    """`seglib.data.pick_datasets` for this config: returns its `DataChoice`."""
    from seglib.data import pick_datasets

    return pick_datasets(
        config.data_dir,
        source=config.data,
        crop=config.crop,
        train_size=config.train_size,
        val_size=config.val_size,
        synthetic_size=config.synthetic_size,
        seed=config.seed,
        split=split,
        verbose=ddp.is_main(),  # one "which data" line, not one per DDP process
    )


def build_loaders(config: TrainConfig, choice: Any) -> tuple[DataLoader, DataLoader]:
    """Shuffled training loader (explicit generator: reproducible) and a val loader."""
    g = torch.Generator().manual_seed(config.seed)
    # Not persistent: workers are re-created each epoch and take their seeds from `g`,
    # which `fit` re-seeds from (seed, epoch). Persistent workers would keep the first
    # epoch's seeds, so a resumed run would augment differently from an uninterrupted one.
    kw = {"num_workers": config.workers, "persistent_workers": False,
          "pin_memory": torch.cuda.is_available()}  # fmt: skip
    drop = len(choice.train) > config.batch_size  # no 1-image batch for BatchNorm
    train = DataLoader(choice.train, batch_size=config.batch_size, shuffle=True,
                       drop_last=drop, generator=g, **kw)  # fmt: skip
    val = DataLoader(choice.val, batch_size=config.batch_size, **kw)
    return train, val


def _crop(text: str) -> tuple[int, int]:
    try:
        return parse_hw(text)
    except ValueError:
        msg = f"--crop expects HxW such as 96x128, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def parse_args(argv: Sequence[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """Flags -> TrainConfig (unset flags keep the dataclass defaults)."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m seglib.train", description="Train CCNet or RefineNet (see module docs)."
    )
    p.add_argument("--model", choices=MODELS, default=d.model)
    p.add_argument("--backbone", default=d.backbone, help="resnet18 ... resnet152")
    p.add_argument("--data", choices=["synthetic", "camvid", "auto"], default=d.data)
    p.add_argument("--data-dir", default=None, help="CamVid root (else $CAMVID_DIR, data/CamVid)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--crop", type=_crop, default=None,
                   help="training crop HxW (default 96x128 synthetic, 360x480 CamVid)")  # fmt: skip
    p.add_argument("--lr", type=float, default=None,
                   help="SGD learning rate (default: ccnet 0.1, refinenet 0.005)")  # fmt: skip
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--device", default=None, help="cuda, cuda:1, mps, cpu (default: best)")
    p.add_argument("--amp", nargs="?", const="auto", default=d.amp,
                   choices=["auto", "bf16", "fp16", "off"],
                   help="mixed precision (auto: bf16/fp16 on CUDA, off on CPU)")  # fmt: skip
    p.add_argument("--no-amp", dest="amp", action="store_const", const="off")
    p.add_argument("--weights-backbone", default=None,
                   help="torchvision weights name (IMAGENET1K_V1) or a local .pth")  # fmt: skip
    p.add_argument("--out", default="runs/quick", help="folder for checkpoints and metrics.csv")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--recurrence", type=int, default=d.recurrence, help="CCNet: R")
    p.add_argument("--features", type=int, default=d.features, help="RefineNet: channels")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under torchrun")
    p.add_argument("--grad-clip", type=float, default=None)
    p.add_argument("--class-weights", choices=["none", "median"], default="none",
                   help="median-frequency class weights computed on the training set")  # fmt: skip
    p.add_argument("--synthetic-size", type=_crop, default=d.synthetic_size,
                   help="HxW of the synthetic scenes (default: the crop)")  # fmt: skip
    p.add_argument("--train-size", type=int, default=d.train_size, help="synthetic scenes")
    p.add_argument("--val-size", type=int, default=d.val_size, help="synthetic scenes")
    args = p.parse_args(argv)
    if args.lr is None:
        args.lr = DEFAULT_LR[args.model]
    if args.crop is None:  # the quick recipe's size for synthetic scenes, else CamVid's own
        args.crop = d.crop if args.data == "synthetic" else None
    config = TrainConfig(
        model=args.model, backbone=args.backbone, recurrence=args.recurrence,
        features=args.features, weights_backbone=args.weights_backbone, epochs=args.epochs,
        batch_size=args.batch_size, crop=args.crop, lr=args.lr,
        weight_decay=args.weight_decay, grad_clip=args.grad_clip, amp=args.amp,
        device=args.device, workers=args.workers, sync_bn=args.sync_bn, data=args.data,
        data_dir=args.data_dir, synthetic_size=args.synthetic_size,
        train_size=args.train_size, val_size=args.val_size,
        seed=args.seed,
    )  # fmt: skip
    return config, args


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """The CLI: build data and model from flags, train, print where things went."""
    config, args = parse_args(argv)
    device = ddp.init_from_env(config.device)
    if device is not None:
        config = config.replace(device=str(device))
    try:
        choice = build_datasets(config)
        config = config.replace(num_classes=choice.num_classes, data=choice.name,
                                data_dir=str(choice.root) if choice.root else None)  # fmt: skip
        if args.class_weights == "median":
            from seglib.camvid import class_weights

            config = config.replace(class_weights=class_weights(choice.train).tolist())
        torch.manual_seed(config.seed)
        model = build_model(config.model, config.num_classes, config.backbone,
                            recurrence=config.recurrence, features=config.features,
                            weights_backbone=config.weights_backbone)  # fmt: skip
        train_loader, val_loader = build_loaders(config, choice)
        history = fit(model, train_loader, val_loader, config, out=args.out,
                      resume=args.resume, animate=False)  # fmt: skip
        if ddp.is_main() and len(history):
            best = history["val_miou"].max()
            print(f"done: best val mIoU {best:.4f}; checkpoints and metrics.csv in {args.out}")
        return history
    finally:
        ddp.cleanup()


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError, NonFiniteLossError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
