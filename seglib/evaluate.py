"""
# Evaluate a checkpoint from the command line

    python -m seglib.evaluate --checkpoint runs/quick/best.pt --split val
    python -m seglib.evaluate --checkpoint runs/camvid-cpu/best.pt --split test
    python -m seglib.evaluate --checkpoint runs/camvid-cpu/best.pt --split test \
        --logit-adjustment auto
    python -m seglib.evaluate --checkpoint runs/camvid-cpu/best.pt --split test \
        --logit-adjustment auto --flip

rebuilds the model a `python -m seglib.train` checkpoint was written for, runs it over
the whole split (no random crop or flip) and prints a per-class IoU table with mIoU,
pixel accuracy and mean class accuracy. `--logit-adjustment` undoes part of a run's
class weighting at test time (`seglib.engine.logit_adjustment`): a value of tau, or
`auto` to choose tau on the val split first. `--eval-scale` with several values and
`--flip` average the logits of several views of each image (test-time augmentation).
The functions it uses live in `seglib.engine.evaluation`; taught in
`notebooks/07_evaluation.ipynb`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from torch.utils.data import DataLoader

from seglib import cli
from seglib.data import DataChoice, pick_datasets
from seglib.engine.evaluation import evaluate, iou_table, load_model
from seglib.engine.logit_adjustment import (
    DEFAULT_TAUS,
    best_tau,
    logit_bias,
    sweep_logit_adjustment,
)

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> dict:
    """CLI: evaluate a checkpoint on the val or test split and print a per-class table."""
    p = cli.ArgumentParser(
        prog="python -m seglib.evaluate", description="Evaluate a seglib.train checkpoint."
    )
    p.add_argument("--checkpoint", required=True, help="last.pt or best.pt from seglib.train")
    p.add_argument("--split", default="val", choices=["val", "test"])
    p.add_argument("--data-dir", default=None, help="CamVid root (default: the run's data)")
    p.add_argument("--batch-size", type=cli.at_least(1), default=2)
    p.add_argument("--workers", type=cli.at_least(0), default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--eval-scale", type=cli.positive_float, nargs="+", default=None,
                   metavar="S", help="resize inputs by this (default: the run's eval_scale); "
                   "several values average the logits of each scale")  # fmt: skip
    p.add_argument("--flip", action="store_true",
                   help="also run every image mirrored and average (test-time augmentation)")
    p.add_argument("--logit-adjustment", type=_tau, default=None, metavar="TAU|auto",
                   help="subtract TAU * log(class weight) from the logits of a run trained "
                        "with class weights; auto: the TAU best on val")  # fmt: skip
    args = p.parse_args(argv)

    model, config = load_model(args.checkpoint, args.device)
    device = next(model.parameters()).device
    source = config.data if args.data_dir is None else "camvid"
    root = args.data_dir if args.data_dir is not None else config.data_dir

    def load_split(split: str, verbose: bool = True) -> DataChoice:
        return pick_datasets(
            root, source=source, crop=config.crop, train_size=config.train_size,
            val_size=config.val_size, synthetic_size=config.synthetic_size, seed=config.seed,
            split=split, verbose=verbose,
        )  # fmt: skip

    choice = load_split(args.split)
    dataset = choice.val
    if choice.num_classes != config.num_classes:
        raise ValueError(
            f"the data has {choice.num_classes} classes but the checkpoint {config.num_classes}"
        )
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    scale = [config.eval_scale] if args.eval_scale is None else args.eval_scale
    views = dict(input_scale=scale, flip=args.flip)
    tau, bias = args.logit_adjustment, None
    if tau is not None:
        if config.class_weights is None:
            raise ValueError(
                f"--logit-adjustment: {args.checkpoint} was trained without class weights, "
                "so there is no weighting to undo"
            )
        if tau == "auto":
            val = DataLoader(load_split("val", verbose=False).val, batch_size=args.batch_size,
                             num_workers=args.workers)  # fmt: skip
            sweep = sweep_logit_adjustment(model, val, config.class_weights, DEFAULT_TAUS,
                                           device, **views)  # fmt: skip
            tau = best_tau(sweep)
            scores = ", ".join(f"{t:g}: {v:.4f}" for t, v in sweep["miou"].items())
            print(f"val mIoU by tau: {scores}; chose tau {tau:g}")
        bias = logit_bias(config.class_weights, tau)
    res = evaluate(model, loader, config.num_classes, device, **views, logit_bias=bias)
    res["tau"] = tau
    table = iou_table(res["iou"], choice.classes)
    adjusted = "" if tau is None else f"; logits adjusted by -{tau:g} log(class weight)"
    resized = " and ".join(f"{s:g}" for s in scale)
    mirrored = ", and mirrored" if args.flip else ""
    print(f"{args.checkpoint}: {config.model}/{config.backbone} on {choice.name} {args.split} "
          f"({res['images']} images; inputs resized by {resized}{mirrored}, scored at the "
          f"labels' size{adjusted})")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"mIoU {res['miou']:.4f} | pixel acc {res['pixel_acc']:.4f} | "
          f"mean class acc {res['mean_class_acc']:.4f}")
    return res


def _tau(text: str) -> float | str:
    """`auto` or a number >= 0 (argparse type of --logit-adjustment)."""
    if text == "auto":
        return text
    try:
        tau = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or auto, got {text!r}") from None
    if not tau >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or auto, got {text!r}")
    return tau


if __name__ == "__main__":
    cli.run(main)
