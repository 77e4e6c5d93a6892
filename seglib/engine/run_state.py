"""
# A run between epochs: its state, saved every epoch, restored on resume

What `seglib.engine.training_loop.fit` carries from one epoch to the next is a
`RunState`: the optimiser, the poly schedule, the AMP gradient scaler, the history of
epoch rows and the best validation mIoU so far (plus the config, whose `num_classes`
may be learned on the way). `start_or_resume` builds it at the start of a run, or
restores it from `last.pt`; `save_epoch` writes it after every epoch: `last.pt`, and
`best.pt` when the validation mIoU improved on a finite validation loss (a NaN loss
means NaN logits, never a best model). With the RNG states of every rank in the
checkpoint, a resumed run repeats exactly what the uninterrupted run would have done.
`RunSetup` holds what stays fixed: device, AMP dtype, memory format, run folder.

The file format is `seglib.engine.checkpoint`'s; taught in `notebooks/06_training.ipynb`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from seglib.engine import distributed as ddp
from seglib.engine.checkpoint import (
    FORMAT,
    atomic_save,
    check_compatible,
    load_checkpoint,
    rng_state,
    rng_state_for_rank,
    set_rng_state,
)
from seglib.engine.config import TrainConfig
from seglib.engine.device import pick_device, resolve_amp, use_channels_last
from seglib.engine.optimization import continue_schedule, make_optimizer
from seglib.engine.run_protection import clear_run

__all__ = ["METRIC_COLUMNS", "RunSetup", "RunState", "save_epoch", "seed_everything",
           "start_or_resume"]

# the columns of a run's history: one row per epoch, returned by `fit` and in metrics.csv
METRIC_COLUMNS = [
    "epoch", "train_loss", "val_loss", "val_pixel_acc", "val_miou",
    "val_mean_class_acc", "lr", "seconds", "images_per_s",
]


@dataclass(frozen=True)
class RunSetup:
    """What stays fixed for a whole run: where and how the model runs, where it is saved."""

    device: torch.device
    amp_dtype: torch.dtype | None  # the autocast dtype; None = plain float32
    channels_last: bool  # the model and its images in NHWC memory format
    out: Path | None  # the run folder (last.pt, best.pt, metrics.csv); None = nothing saved

    @classmethod
    def choose(
        cls, config: TrainConfig, device: str | torch.device | None, out: Path | None
    ) -> RunSetup:
        """The setup `config` asks for; `device` overrides `config.device`."""
        device = pick_device(device if device is not None else config.device)
        return cls(device, resolve_amp(config.amp, device),
                   use_channels_last(config.channels_last, device), out)

    def place(self, model: nn.Module) -> nn.Module:
        """`model` moved to the device (in place), in channels_last memory if asked."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


@dataclass
class RunState:
    """What a run changes as it trains: what `last.pt` stores so that it can resume."""

    config: TrainConfig  # num_classes may be filled in (data, checkpoint or first batch)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR  # poly, stepped after every batch
    scaler: torch.amp.GradScaler  # float16 AMP's loss scaling (disabled otherwise)
    history: list[dict] = field(default_factory=list)  # one METRIC_COLUMNS row per epoch
    epoch: int = 0  # epochs finished
    best: float = -math.inf  # the best val mIoU so far (of epochs with a finite val loss)

    @property
    def lr(self) -> float:
        """The current learning rate of the first parameter group."""
        return self.optimizer.param_groups[0]["lr"]


def start_or_resume(
    model: nn.Module,
    config: TrainConfig,
    setup: RunSetup,
    steps_per_epoch: int,
    resume: bool,
    overwrite: bool,
) -> RunState:
    """The optimiser, its poly schedule and the AMP gradient scaler of a run, at its start.

    When resuming, the model, these three, the RNG states and the history are restored
    from `setup.out / "last.pt"`; a fresh run instead seeds every RNG from `config.seed`
    (+ rank), so that dropout, augmentation and shuffling follow the seed. Then the run
    folder gets a metrics.csv holding the history so far (an earlier run's files are
    deleted first when `overwrite`).
    """
    optimizer, scheduler = make_optimizer(model, config, steps_per_epoch)
    scaler = torch.amp.GradScaler(setup.device.type, enabled=setup.amp_dtype == torch.float16)
    state = RunState(config, optimizer, scheduler, scaler)
    if resume:
        _restore(state, model, setup.out / "last.pt", setup.device)
    else:
        seed_everything(config.seed)
    if setup.out is not None and ddp.is_main():
        if overwrite:
            clear_run(setup.out)
        setup.out.mkdir(parents=True, exist_ok=True)
        metrics = pd.DataFrame(state.history, columns=METRIC_COLUMNS)
        metrics.to_csv(setup.out / "metrics.csv", index=False)
    return state


def _restore(state: RunState, model: nn.Module, path: Path, device: torch.device) -> None:
    """Load checkpoint `path` into `model` and `state`: weights, optimiser, schedule (on
    this run's number of epochs), scaler, this rank's RNG states, history, best mIoU."""
    ckpt = load_checkpoint(path, map_location=device)
    check_compatible(ckpt, type(model).__qualname__, state.config.to_dict(), path)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not fit this model: {err}") from err
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    continue_schedule(state.optimizer, state.scheduler)  # a resumed run may be longer
    if ckpt.get("scaler"):
        state.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(rng_state_for_rank(ckpt["rng"], ddp.rank()))
    state.epoch, state.best, state.history = ckpt["epoch"], ckpt["best_miou"], list(ckpt["history"])
    if state.config.num_classes is None:
        state.config = state.config.replace(num_classes=ckpt["config"].get("num_classes"))
    if state.epoch >= state.config.epochs and ddp.is_main():
        print(_nothing_to_do(path, state.epoch, state.config.epochs))


def save_epoch(net: nn.Module, state: RunState, setup: RunSetup) -> None:
    """Record the epoch whose row was just appended to `state.history`: `last.pt` every
    epoch, `best.pt` too when its val mIoU beats the best so far and its val loss is
    finite, and the row appended to metrics.csv (without `setup.out`, only `state`).

    Every rank must call it (the RNG states are gathered); rank 0 writes the files.
    """
    row = state.history[-1]
    # a NaN val loss means NaN logits (e.g. broken BatchNorm statistics): whatever
    # mIoU their argmax scores, that model is no best.pt
    trusted = math.isfinite(row["val_loss"])
    if not trusted and ddp.is_main():
        print(f"epoch {row['epoch']}: val loss {row['val_loss']}, so best.pt is not updated")
    improved = trusted and row["val_miou"] > state.best
    if trusted and not math.isnan(row["val_miou"]):
        state.best = max(state.best, row["val_miou"])
    state.epoch = row["epoch"]
    rng = _gather_rng() if setup.out is not None else None  # a collective: every rank joins
    if setup.out is not None and ddp.is_main():
        ckpt = _checkpoint(net, state, rng)
        atomic_save(ckpt, setup.out / "last.pt")
        if improved:
            atomic_save(ckpt, setup.out / "best.pt")
        pd.DataFrame([row], columns=METRIC_COLUMNS).to_csv(
            setup.out / "metrics.csv", mode="a", header=False, index=False
        )
    ddp.barrier()


def _checkpoint(net: nn.Module, state: RunState, rng: dict | list[dict] | None) -> dict:
    """The checkpoint of the run as it stands (the format `seglib.engine.checkpoint` reads)."""
    model = ddp.unwrap(net)
    return {
        "format": FORMAT,
        "model": model.state_dict(),
        "model_class": type(model).__qualname__,
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "scaler": state.scaler.state_dict() if state.scaler.is_enabled() else None,
        "epoch": state.epoch,
        "best_miou": state.best,
        "history": state.history,
        "rng": rng,
        "config": state.config.to_dict(),
    }


def seed_everything(seed: int) -> int:
    """Seed torch, numpy and Python's RNGs with `seed + rank` and return that value.

    Under DDP each rank must draw different dropout masks and augmentations (the
    weights themselves are broadcast from rank 0 by DDP); without DDP the rank is 0.
    """
    value = seed + ddp.rank()
    torch.manual_seed(value)
    np.random.seed(value)  # noqa: NPY002 - code that uses the global RNG
    random.seed(value)
    return value


def _gather_rng() -> dict | list[dict]:
    """This process's RNG state, or every rank's (a list indexed by rank) under DDP."""
    state = rng_state()
    if not ddp.is_distributed():
        return state
    states: list[Any] = [None] * ddp.world_size()
    torch.distributed.all_gather_object(states, state)
    return states


def _nothing_to_do(path: Path, done: int, epochs: int) -> str:
    """The line a resumed run prints when its checkpoint has all its epochs already."""
    return (f"nothing to train: {path} has finished {done} epochs and this run asks for "
            f"{epochs}; to train further, resume with more epochs (--epochs N, N > {done})")
