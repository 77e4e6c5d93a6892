"""
# Evaluate a checkpoint from the command line

    python -m seglib.evaluate --checkpoint runs/quick/best.pt --split val
    python -m seglib.evaluate --checkpoint runs/camvid-cpu/best.pt --split test
    python -m seglib.evaluate --checkpoint runs/camvid-cpu/best.pt --split test \
        --logit-adjustment auto
    python -m seglib.evaluate --checkpoint runs/camvid-cpu/best.pt --split test \
        --logit-adjustment auto --flip
    python -m seglib.evaluate --checkpoint runs/camvid-cpu/best.pt --split test \
        --knockout all

rebuilds the model a `python -m seglib.train` checkpoint was written for, runs it over
the whole split (no random crop or flip) and prints a per-class IoU table with mIoU,
pixel accuracy and mean class accuracy. `--logit-adjustment` undoes part of a run's
class weighting at test time (`seglib.engine.logit_adjustment`): a value of tau, or
`auto` to choose tau on the val split first. `--eval-scale` with several values and
`--flip` average the logits of several views of each image (test-time augmentation).
`--knockout` scores a CCNet twice, intact and with the attention of some passes removed
(`seglib.models.attention_knockout`), and prints what each class loses without it.
The functions it uses live in `seglib.engine.scoring`; taught in
`notebooks/07_evaluation.ipynb`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from torch.utils.data import DataLoader

from seglib import cli
from seglib.data import DataChoice, pick_datasets
from seglib.engine.logit_adjustment import (
    DEFAULT_TAUS,
    best_tau,
    logit_bias,
    sweep_logit_adjustment,
)
from seglib.engine.scoring import evaluate, iou_table, load_model
from seglib.models import attention_knockout

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
                   "several values average the logits of each scale")
    p.add_argument("--flip", action="store_true",
                   help="also run every image mirrored and average (test-time augmentation)")
    p.add_argument("--logit-adjustment", type=_tau, default=None, metavar="TAU|auto",
                   help="subtract TAU * log(class weight) from the logits of a run trained "
                        "with class weights; auto: the TAU best on val")
    p.add_argument("--knockout", type=_passes, default=None, metavar="all|1|2|1,2",
                   help="CCNet: also score with the attention of these passes removed "
                        "(identity instead of the pass) and print the drop per class")
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
        )

    choice = load_split(args.split)
    dataset = choice.val
    if choice.num_classes != config.num_classes:
        raise ValueError(
            f"the data has {choice.num_classes} classes but the checkpoint {config.num_classes}"
        )
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    scale = [config.eval_scale] if args.eval_scale is None else args.eval_scale
    cli.check_eval_scale(scale, tuple(dataset[0][0].shape[-2:]))  # image (3, H, W)
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
                             num_workers=args.workers)
            sweep = sweep_logit_adjustment(model, val, config.class_weights, DEFAULT_TAUS,
                                           device, **views)
            tau = best_tau(sweep)
            scores = ", ".join(f"{t:g}: {v:.4f}" for t, v in sweep["miou"].items())
            print(f"val mIoU by tau: {scores}; chose tau {tau:g}")
        bias = logit_bias(config.class_weights, tau)
    if args.knockout is not None and config.model != "ccnet":
        raise ValueError(f"--knockout: {args.checkpoint} holds a {config.model}, which has no "
                         "criss-cross attention to remove")
    if args.knockout is not None and config.recurrence == 0:
        raise ValueError(f"--knockout: {args.checkpoint} was trained with R = 0: it has no "
                         "attention pass to remove")
    res = evaluate(model, loader, config.num_classes, device, **views, logit_bias=bias)
    res["tau"] = tau
    table = iou_table(res["iou"], choice.classes)
    if args.knockout is not None:
        with attention_knockout(model, args.knockout):
            ko = evaluate(model, loader, config.num_classes, device, **views, logit_bias=bias)
        res["knockout"] = ko
        table = table.rename(columns={"iou": "iou intact"})
        table["iou knocked out"] = iou_table(ko["iou"], choice.classes)["iou"]
        table["drop"] = table["iou intact"] - table["iou knocked out"]
    adjusted = "" if tau is None else f"; logits adjusted by -{tau:g} log(class weight)"
    resized = " and ".join(f"{s:g}" for s in scale)
    mirrored = ", and mirrored" if args.flip else ""
    print(f"{args.checkpoint}: {config.model}/{config.backbone} on {choice.name} {args.split} "
          f"({res['images']} images; inputs resized by {resized}{mirrored}, scored at the "
          f"labels' size{adjusted})")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"mIoU {res['miou']:.4f} | pixel acc {res['pixel_acc']:.4f} | "
          f"mean class acc {res['mean_class_acc']:.4f}")
    if args.knockout is not None:
        which = "both passes" if args.knockout == "all" else "pass " + ", ".join(
            str(r) for r in args.knockout)
        print(f"attention of {which} knocked out: mIoU {res['knockout']['miou']:.4f} "
              f"(drop {res['miou'] - res['knockout']['miou']:+.4f})")
    return res


def _passes(text: str) -> str | list[int]:
    """`all` or pass numbers such as `1`, `2`, `1,2` (argparse type of --knockout)."""
    if text == "all":
        return text
    try:
        passes = sorted({int(v) for v in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected all or pass numbers such as 1,2, got "
                                         f"{text!r}") from None
    if not passes or passes[0] < 1:
        raise argparse.ArgumentTypeError(f"pass numbers count from 1, got {text!r}")
    return passes


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
