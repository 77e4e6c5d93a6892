"""
# Train CCNet or RefineNet from the command line

    python -m seglib.train --data synthetic --out runs/quick        # quick CPU run
    python -m seglib.train --model ccnet --backbone resnet101 --data camvid \\
        --weights-backbone IMAGENET1K_V2 --crop 360x480 --epochs 80 --lr 0.01 --out runs/c101
    torchrun --nproc-per-node 4 -m seglib.train ... --sync-bn       # several GPUs (DDP)
    python -m seglib.train --recipe camvid-cpu                      # CamVid on a CPU, ~1 h
    python -m seglib.train --out runs/quick --resume                # continue a run
    python -m seglib.train --out runs/quick --overwrite             # replace a run

Each option flag is made from a field of `seglib.engine.config.TrainConfig`: its name
(`batch_size` -> `--batch-size`), its type and its help text are the field's, so `--help`
lists every option with the config's own words. The defaults are a quick CPU recipe on
the synthetic street scenes; `--data camvid` uses CamVid from `--data-dir`,
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
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch

from seglib import cli
from seglib.data import find_camvid
from seglib.engine import distributed as ddp
from seglib.engine.config import (
    RECIPES,
    REFINENET_LR,
    TrainConfig,
    option_fields,
    parse_hw,
    recipe,
)
from seglib.engine.device import pick_device
from seglib.engine.from_config import (
    build_datasets,
    build_loaders,
    build_model_for,
    resolve_class_weights,
)
from seglib.engine.run_protection import check_run_folder, run_files, run_lock
from seglib.engine.training_loop import fit
from seglib.paths import runs_root

__all__ = ["build_parser", "flag_of", "main", "parse_args"]

_TYPE_HINTS = typing.get_type_hints(TrainConfig)


def _hw(flag: str) -> Callable[[str], tuple[int, int]]:
    """An argparse type: a size HxW such as 96x128 (the error names `flag`)."""

    def parse(text: str) -> tuple[int, int]:
        try:
            return parse_hw(text)
        except ValueError:
            msg = f"{flag} expects HxW such as 96x128, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None

    return parse


def _low_high(flag: str) -> Callable[[str], tuple[float, float]]:
    """An argparse type: a range LOW-HIGH such as 0.5-2.0 (the error names `flag`)."""

    def parse(text: str) -> tuple[float, float]:
        try:
            lo, hi = (float(v) for v in text.split("-"))
        except ValueError:
            msg = f"{flag} expects LOW-HIGH such as 0.5-2.0, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        return lo, hi

    return parse


def flag_of(f: dataclasses.Field) -> str:
    """The command-line flag of an option field: `batch_size` -> `--batch-size`, unless
    the field names its own (`class_weighting` -> `--class-weights`)."""
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def _shown(value: object) -> str:
    """A default as a user would type it: 96x128, 0.5-2.0, on/off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return "x".join(map(str, value))
    if isinstance(value, tuple):
        return "-".join(map(str, value))
    return str(value)


def _add_option(p: argparse.ArgumentParser, f: dataclasses.Field) -> None:
    """One flag for an option field: its help, and a type read off its annotation
    (`None` stripped) refined by its metadata (see `seglib.engine.config.option`)."""
    meta, flag = dict(f.metadata), flag_of(f)
    help_text = meta.pop("help")
    if "default" not in help_text:
        help_text += f" (default {_shown(f.default)})"
    kwargs: dict = {"dest": f.name, "help": help_text, "default": None}
    for key in ("choices", "nargs", "const"):
        if key in meta:
            kwargs[key] = meta[key]
    kind = _TYPE_HINTS[f.name]
    if isinstance(kind, types.UnionType):  # `X | None`: the flag reads an X
        kind = next(t for t in typing.get_args(kind) if t is not type(None))
    if kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif kind == tuple[int, int]:
        kwargs["type"] = _hw(flag)
    elif kind == tuple[float, float]:
        kwargs["type"] = _low_high(flag)
    elif kind is int:
        kwargs["type"] = cli.at_least(meta["at_least"]) if "at_least" in meta else int
    elif kind is float:
        kwargs["type"] = cli.positive_float if meta.get("positive") else float
    elif kind is not str:
        raise TypeError(f"TrainConfig.{f.name}: no flag reads a {kind}; make it a `setting`")
    p.add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The parser: `--recipe`, one flag per `option` field of `TrainConfig` (its help is
    the field's), and the flags of the run itself (`--out`, `--resume`, `--overwrite`)."""
    p = cli.ArgumentParser(
        prog="python -m seglib.train", description="Train CCNet or RefineNet (see module docs)."
    )
    p.add_argument("--recipe", choices=sorted(RECIPES),
                   help="a named recipe (seglib.engine.config.RECIPES); flags override it")
    for f in option_fields():
        _add_option(p, f)
    p.add_argument("--no-amp", dest="amp", action="store_const", const="off",
                   help="the same as --amp off")
    p.add_argument("--out", help="folder for checkpoints and metrics.csv "
                   "(default: runs/RECIPE, or runs/quick)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/last.pt (start a run if OUT holds none yet)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (default: refuse to)")
    return p


def parse_args(argv: Sequence[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """Flags -> TrainConfig: a `--recipe`'s values (or the quick synthetic defaults),
    then every flag given on the command line on top."""
    d = TrainConfig()
    p = build_parser()
    args = p.parse_args(argv)
    if args.resume and args.overwrite:
        p.error("--resume and --overwrite exclude each other: continue the run in --out "
                "(--resume) or replace it (--overwrite)")
    if args.data == "synthetic" and args.data_dir is not None:
        p.error(f"--data-dir {args.data_dir} names a CamVid folder but --data synthetic never "
                "reads it: drop one of the two")
    if args.out is not None and not args.out.strip():
        p.error("--out is empty: name a folder for the run, e.g. --out runs/quick")
    for name in ("out", "data_dir"):  # a quoted "~/x" means what the shell would make of it
        if getattr(args, name) is not None:
            setattr(args, name, str(Path(getattr(args, name)).expanduser()))
    given = {f.name: getattr(args, f.name) for f in option_fields()
             if getattr(args, f.name) is not None}
    if args.recipe is not None:
        config = recipe(args.recipe, given.get("model", "ccnet"))
    else:  # the quick synthetic defaults; CamVid's own size unless a crop is given
        model = given.get("model", d.model)
        data = given.get("data", "camvid" if args.data_dir is not None else d.data)
        lr = REFINENET_LR if model == "refinenet" else d.lr  # from scratch
        config = d.replace(lr=lr, crop=d.crop if data == "synthetic" else None)
    if args.data_dir is not None and args.data is None and config.data == "synthetic":
        given["data"] = "camvid"  # the README's order: a path you pass comes first
    config = config.replace(**given)
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
             "pass --data camvid to use it")


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
                            data_dir=str(choice.root) if choice.root else None)
    image = choice.val[0][0]  # (3, H, W): the size evaluation resizes by eval_scale
    cli.check_eval_scale(config.eval_scale, tuple(image.shape[-2:]))
    config = resolve_class_weights(config, choice)
    torch.manual_seed(config.seed)
    model = build_model_for(config)
    train_loader, val_loader = build_loaders(config, choice)
    history = fit(model, train_loader, val_loader, config, out=args.out,
                  resume=resume, overwrite=args.overwrite, animate=False)
    if ddp.is_main() and len(history):
        best = history["val_miou"].max()
        print(f"done: best val mIoU {best:.4f}; checkpoints and metrics.csv in {args.out}")
    return history


if __name__ == "__main__":
    cli.run(main)
