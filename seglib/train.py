"""
# Train CCNet or RefineNet from the command line

    python -m seglib.train --data synthetic --out runs/quick        # quick CPU run
    python -m seglib.train --model ccnet --backbone resnet101 --data camvid \\
        --weights-backbone IMAGENET1K_V2 --crop 360x480 --epochs 80 --lr 0.01 --out runs/c101
    torchrun --nproc-per-node 4 -m seglib.train ... --sync-bn       # several GPUs (DDP)
    python -m seglib.train --out runs/quick --resume                # continue a run

The defaults are a quick CPU recipe on the synthetic street scenes (see
`seglib.engine.config.TrainConfig`); `--data camvid` uses CamVid from `--data-dir`,
`$CAMVID_DIR` or `data/CamVid`. Everything lands in `--out`: `metrics.csv`, `last.pt`,
`best.pt`. The training loop itself is `seglib.engine.trainer.fit`, which notebooks call
directly; the model and data factories are `seglib.models.build_model` and
`seglib.engine.builders`. Taught in `notebooks/06_training.ipynb`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd
import torch

from seglib.data import class_weights
from seglib.engine import distributed as ddp
from seglib.engine.builders import build_datasets, build_loaders
from seglib.engine.config import TrainConfig, parse_hw
from seglib.engine.trainer import NonFiniteLossError, fit
from seglib.models import MODELS, build_model
from seglib.paths import runs_root

__all__ = ["DEFAULT_LR", "main", "parse_args"]

# Default SGD learning rate per model for runs from scratch: RefineNet's refinement path
# has no batch normalisation, and at CCNet's 0.1 its loss turns NaN within two epochs.
DEFAULT_LR = {"ccnet": TrainConfig.lr, "refinenet": 0.005}


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
    p.add_argument("--out", default=str(runs_root() / "quick"),
                   help="folder for checkpoints and metrics.csv (default: runs/quick)")  # fmt: skip
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
