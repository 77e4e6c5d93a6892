"""
# Train CCNet or RefineNet from the command line

    python -m seglib.train --data synthetic --out runs/quick        # quick CPU run
    python -m seglib.train --model ccnet --backbone resnet101 --data camvid \\
        --weights-backbone IMAGENET1K_V2 --crop 360x480 --epochs 80 --lr 0.01 --out runs/c101
    torchrun --nproc-per-node 4 -m seglib.train ... --sync-bn       # several GPUs (DDP)
    python -m seglib.train --recipe camvid-cpu                      # CamVid on a CPU, ~1 h
    python -m seglib.train --out runs/quick --resume                # continue a run
    python -m seglib.train --out runs/quick --overwrite             # replace a run

The defaults are a quick CPU recipe on the synthetic street scenes (see
`seglib.engine.config.TrainConfig`); `--data camvid` uses CamVid from `--data-dir`,
`$CAMVID_DIR` or `data/CamVid` (a `--data-dir` alone means `--data camvid`; a CamVid
that `--data synthetic` leaves unused is named in a printed line). Everything lands in
`--out`: `metrics.csv`, `last.pt`, `best.pt`. A fresh run never replaces an earlier run
in `--out`: it stops with an error unless `--resume` (continue it; on a folder without
a run yet this starts one) or `--overwrite` (replace it) is given, and a second run into
a folder that a run is training into stops at once, naming that run's pid. Errors are
one line `error: ...` on stderr with exit status 2 (`seglib.cli`); Ctrl-C or SIGTERM
ends with `interrupted after epoch N; continue with --resume` (exit status 130 / 143).
The training loop itself is `seglib.engine.training_loop.fit`, which notebooks call
directly; the model and data factories are `seglib.models.build_model` and
`seglib.engine.from_config`. Taught in `notebooks/06_training.ipynb`.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from seglib import cli
from seglib.data import find_camvid
from seglib.engine import distributed as ddp
from seglib.engine.config import CLASS_WEIGHTINGS, TrainConfig, parse_hw
from seglib.engine.device import pick_device
from seglib.engine.from_config import (
    build_datasets,
    build_loaders,
    build_model_for,
    resolve_class_weights,
)
from seglib.engine.recipes import RECIPES, recipe
from seglib.engine.run_protection import check_run_folder, run_files, run_lock
from seglib.engine.training_loop import fit
from seglib.models import MODELS
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


def _scale(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split("-"))
    except ValueError:
        msg = f"--scale expects LOW-HIGH such as 0.5-2.0, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return lo, hi


# flag -> TrainConfig field, for the flags that map one to one
_FIELDS = ("model", "backbone", "data", "data_dir", "epochs", "batch_size", "crop", "scale",
           "jitter", "eval_scale", "lr", "weight_decay", "decay_1d", "gamma_lr_mult", "workers",
           "device", "amp",
           "weights_backbone", "seed", "recurrence", "output_stride", "decoder", "features",
           "grad_clip", "class_weighting", "synthetic_size", "train_size", "val_size",
           "train_limit", "val_limit", "channels_last")  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """Flags -> TrainConfig: a `--recipe`'s values (or the quick synthetic defaults),
    then every flag given on the command line on top."""
    d = TrainConfig()
    p = cli.ArgumentParser(
        prog="python -m seglib.train", description="Train CCNet or RefineNet (see module docs)."
    )
    count, some = cli.at_least(1), cli.at_least(0)
    p.add_argument("--recipe", choices=sorted(RECIPES),
                   help="a named recipe (seglib.engine.recipes); flags override it")  # fmt: skip
    p.add_argument("--model", choices=MODELS, help=f"default {d.model}")
    p.add_argument("--backbone", help=f"resnet18 ... resnet152 (default {d.backbone})")
    p.add_argument("--data", choices=["synthetic", "camvid", "auto"], help=f"default {d.data}")
    p.add_argument("--data-dir", help="CamVid root (else $CAMVID_DIR, data/CamVid); "
                   "implies --data camvid")  # fmt: skip
    p.add_argument("--epochs", type=count, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=count, help=f"default {d.batch_size}")
    p.add_argument("--crop", type=_crop,
                   help="training crop HxW (default 96x128 synthetic, 360x480 CamVid)")  # fmt: skip
    p.add_argument("--scale", type=_scale,
                   help="CamVid's random scale range LOW-HIGH (default 0.5-2.0)")  # fmt: skip
    p.add_argument("--jitter", choices=["none", "light", "strong"],
                   help=f"CamVid's colour jitter (default {d.jitter})")  # fmt: skip
    p.add_argument("--eval-scale", type=cli.positive_float,
                   help="input resize factor at evaluation (logits: label size)")  # fmt: skip
    p.add_argument("--lr", type=float,
                   help="SGD learning rate (default: ccnet 0.1, refinenet 0.005)")  # fmt: skip
    p.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay}")
    p.add_argument("--decay-1d", action=argparse.BooleanOptionalAction,
                   help="weight decay on biases, norm weights and the attention's gamma too "
                        "(default on; --no-decay-1d: conv weights only, as nanoGPT)")  # fmt: skip
    p.add_argument("--gamma-lr-mult", type=float,
                   help=f"lr factor of the attention's gamma (default {d.gamma_lr_mult})")
    p.add_argument("--workers", type=some, help="DataLoader worker processes (default 0)")
    p.add_argument("--device", help="cuda, cuda:1, mps, cpu (default: best)")
    p.add_argument("--amp", nargs="?", const="auto", choices=["auto", "bf16", "fp16", "off"],
                   help="mixed precision (auto: bf16/fp16 on CUDA, off on CPU)")  # fmt: skip
    p.add_argument("--no-amp", dest="amp", action="store_const", const="off")
    p.add_argument("--weights-backbone",
                   help="torchvision weights name (IMAGENET1K_V1) or a local .pth")  # fmt: skip
    p.add_argument("--out", help="folder for checkpoints and metrics.csv "
                   "(default: runs/RECIPE, or runs/quick)")  # fmt: skip
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/last.pt (start a run if OUT holds none yet)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (default: refuse to)")
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--recurrence", type=int, help=f"CCNet: R (default {d.recurrence})")
    p.add_argument("--output-stride", type=int, choices=[8, 16],
                   help=f"CCNet: backbone output stride (default {d.output_stride})")  # fmt: skip
    p.add_argument("--decoder", action=argparse.BooleanOptionalAction,
                   help="CCNet: a stride-4 decoder on layer1 before the classifier "
                        "(DeepLabv3+; not in the paper; default off)")  # fmt: skip
    p.add_argument("--features", type=int, help=f"RefineNet: channels (default {d.features})")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   help="NHWC memory layout (default: on for CUDA only; on a CPU it pays "
                        "for wide 3x3 convolutions such as RefineNet's)")  # fmt: skip
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under torchrun")
    p.add_argument("--grad-clip", type=cli.positive_float,
                   help="clip the global gradient norm to this (default: no clipping)")
    p.add_argument("--class-weights", dest="class_weighting", choices=CLASS_WEIGHTINGS,
                   help="median: median-frequency class weights of the training set")  # fmt: skip
    p.add_argument("--synthetic-size", type=_crop,
                   help="HxW of the synthetic scenes (default: the crop)")  # fmt: skip
    p.add_argument("--train-size", type=count, help="synthetic scenes")
    p.add_argument("--val-size", type=count, help="synthetic scenes")
    p.add_argument("--train-limit", type=count, help="use only the first N training images")
    p.add_argument("--val-limit", type=count, help="use only the first N validation images")
    args = p.parse_args(argv)
    if args.resume and args.overwrite:
        p.error("--resume and --overwrite exclude each other: continue the run in --out "
                "(--resume) or replace it (--overwrite)")  # fmt: skip
    if args.data == "synthetic" and args.data_dir is not None:
        p.error(f"--data-dir {args.data_dir} names a CamVid folder but --data synthetic never "
                "reads it: drop one of the two")  # fmt: skip
    if args.out is not None and not args.out.strip():
        p.error("--out is empty: name a folder for the run, e.g. --out runs/quick")
    for name in ("out", "data_dir"):  # a quoted "~/x" means what the shell would make of it
        if getattr(args, name) is not None:
            setattr(args, name, str(Path(getattr(args, name)).expanduser()))
    given = {k: getattr(args, k) for k in _FIELDS if getattr(args, k) is not None}
    if args.recipe is not None:
        config = recipe(args.recipe, given.get("model", "ccnet"))
    else:  # the quick synthetic defaults; CamVid's own size unless a crop is given
        model = given.get("model", d.model)
        data = given.get("data", "camvid" if args.data_dir is not None else d.data)
        config = d.replace(lr=DEFAULT_LR[model], crop=d.crop if data == "synthetic" else None)
    if args.data_dir is not None and args.data is None and config.data == "synthetic":
        given["data"] = "camvid"  # the README's order: a path you pass comes first
    config = config.replace(sync_bn=args.sync_bn, **given)
    config.check_crop()
    if args.out is None:
        args.out = str(runs_root() / (args.recipe or "quick"))
    return config, args


def _say(line: str) -> None:
    """Print a line once (rank 0 of a DDP run)."""
    if ddp.is_main():
        print(line)


def _resume_or_start(out: Path, resume: bool) -> bool:
    """Whether to resume: `--resume` on a folder without a run yet starts one, and
    says so (one command then serves "start, or continue after an interruption").

    A folder with run files but no `last.pt` is refused: there is nothing to continue
    from, and a fresh run would replace those files.
    """
    if not resume or (out / "last.pt").exists():
        return resume
    found = run_files(out) if out.is_dir() else []
    if found:
        raise FileNotFoundError(
            f"--resume: no {out / 'last.pt'} to continue from, but {out} holds "
            f"{', '.join(found)}; pass --overwrite instead to replace them, or another --out"
        )
    _say(f"--resume: no run in {out} yet (no last.pt): starting a fresh run")
    return False


def _note_unused_camvid(config: TrainConfig) -> None:
    """Name a CamVid that `--data synthetic` leaves unused ($CAMVID_DIR, data/CamVid),
    so that a set `CAMVID_DIR` is never ignored without a word."""
    if config.data != "synthetic":
        return
    path, how = find_camvid(None)
    if path is not None:
        where = f"$CAMVID_DIR is set ({path})" if how == "$CAMVID_DIR" else f"CamVid is in {path}"
        _say(f"note: {where} but --data synthetic: training on the synthetic scenes; "
             "pass --data camvid to use it")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """The CLI: build data and model from flags, train, print where things went.

    What can be checked in a moment (the device, the output folder) is checked before
    the data is read, so that a mistake costs no time; the folder is then locked for
    this run (`seglib.engine.run_protection.run_lock`: a second run into it stops at once).
    """
    config, args = parse_args(argv)
    pick_device(config.device)  # an unknown or absent device: ValueError now
    device = ddp.init_from_env(config.device)
    if device is not None:
        config = config.replace(device=str(device))
    try:
        resume = _resume_or_start(Path(args.out), args.resume)
        check_run_folder(args.out, resume=resume, overwrite=args.overwrite)
        with run_lock(args.out) if ddp.is_main() else contextlib.nullcontext():
            return _train(config, args, resume)
    finally:
        ddp.cleanup()


def _train(config: TrainConfig, args: argparse.Namespace, resume: bool) -> pd.DataFrame:
    """`main` once the run folder is checked and locked: data, model, `fit`."""
    _note_unused_camvid(config)
    choice = build_datasets(config)
    config = config.replace(num_classes=choice.num_classes, data=choice.name,
                            data_dir=str(choice.root) if choice.root else None)  # fmt: skip
    image = choice.val[0][0]  # (3, H, W): the size evaluation resizes by eval_scale
    cli.check_eval_scale(config.eval_scale, tuple(image.shape[-2:]))
    config = resolve_class_weights(config, choice)
    torch.manual_seed(config.seed)
    model = build_model_for(config)
    train_loader, val_loader = build_loaders(config, choice)
    history = fit(model, train_loader, val_loader, config, out=args.out,
                  resume=resume, overwrite=args.overwrite, animate=False)  # fmt: skip
    if ddp.is_main() and len(history):
        best = history["val_miou"].max()
        print(f"done: best val mIoU {best:.4f}; checkpoints and metrics.csv in {args.out}")
    return history


if __name__ == "__main__":
    cli.run(main)
