r"""
# Training a segmentation network

The loop d2l's `train_ch13` teaches, and notebook 06 has the learner write by hand:

    for epoch in range(epochs):
        train_one_epoch(...)   # per batch: forward, loss, backward, step, poly lr
        evaluate(...)          # mIoU etc. on the validation set
        save_epoch(...)        # last.pt, and best.pt when val mIoU improved

`fit` is that loop, with what real segmentation training adds:

- **SGD with momentum 0.9 and weight decay** and the **poly** learning-rate schedule of
  DeepLab and CCNet, updated every iteration $t$ of $T$ (see `seglib.engine.optimization`):
  $$\eta_t = \eta_0 \left(1 - \frac{t}{T}\right)^{p},\qquad p = 0.9$$
- **Cross-entropy that ignores void pixels** (label 255), optionally class-weighted,
  plus CCNet's **auxiliary loss** $\mathcal{L} = \mathcal{L}_{main} + 0.4\,
  \mathcal{L}_{aux}$ when the model returns `(main, aux)` in training mode
  (`seglib.models.losses`).
- **mIoU**, not only pixel accuracy, on the validation set every epoch
  (`seglib.engine.scoring.evaluate`).
- **AMP and channels_last** on CUDA, optional gradient clipping, a stop with a clear
  message when the loss becomes NaN/inf.
- **Checkpoints** (`last.pt` each epoch, `best.pt` on the best val mIoU, never from a
  NaN val loss) written atomically, and an exact **resume** (`start_or_resume`; see
  `seglib.engine.checkpoint`); one run per output folder at a time (a lock, see
  `seglib.engine.run_protection`), and a Ctrl-C that says where to continue from.
- **DDP** when launched by `torchrun` (see `seglib.engine.distributed`).

Nothing here is CCNet-specific: any `nn.Module` that maps (B, 3, H, W) images to
(B, K, H, W) logits (or a tuple whose first item is that) can be trained. In a notebook
the curves are drawn live with `d2l.Animator`; elsewhere a tqdm bar and one line per
epoch are printed. Taught in `notebooks/06_training.ipynb`.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from seglib.engine import distributed as ddp
from seglib.engine.config import TrainConfig
from seglib.engine.device import autocast, in_notebook
from seglib.engine.progress import Board
from seglib.engine.run_protection import check_run_folder, run_lock
from seglib.engine.run_state import (
    METRIC_COLUMNS,
    RunSetup,
    RunState,
    save_epoch,
    start_or_resume,
)
from seglib.engine.scoring import evaluate, main_logits
from seglib.models.losses import ccnet_loss

__all__ = ["fit", "train_one_epoch", "validate", "epoch_row", "segmentation_loss",
           "NonFiniteLossError", "TrainingInterrupted", "METRIC_COLUMNS"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (the message names epoch and step)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM under `seglib.cli.run`) stopped `fit`; the message names the
    last epoch saved and how to continue."""


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    config: TrainConfig | None = None,
    *,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callback: Callable[[dict], bool | None] | None = None,
    animate: bool | None = None,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> pd.DataFrame:
    """Train `model` and validate it after every epoch; return the history.

    Args:
        model: any module returning logits (B, K, H, W), or (main, aux) in train mode.
        train_loader, val_loader: DataLoaders of (image, mask) batches. A shuffling
            train loader is re-seeded every epoch from (seed, epoch); under DDP both are
            re-built around a distributed sampler.
        config: a `TrainConfig` (defaults if None); `**overrides` change single fields,
            e.g. `fit(net, tr, va, epochs=2, lr=0.01)`.
        out: folder for `last.pt`, `best.pt` and `metrics.csv` (nothing written if None).
        resume: continue from `out/last.pt` (model, optimizer, schedule, RNG, history).
        overwrite: a fresh run may replace a run already in `out` (its `last.pt`,
            `best.pt` and `metrics.csv` are deleted first). Without it, and without
            `resume`, such a folder is refused before anything is written.
        callback: called with each epoch's row (a dict); returning True stops training.
        animate: draw a live `d2l.Animator` (default: only inside a Jupyter kernel).
        device: overrides `config.device` (default cuda > mps > cpu).

    Returns:
        A DataFrame with one row per epoch and the columns of `METRIC_COLUMNS`.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the checkpoints on disk stay good).
        TrainingInterrupted: a KeyboardInterrupt, re-raised with the last epoch saved.
        ValueError: resuming from a checkpoint written for another model, an
            unreadable checkpoint, both `resume` and `overwrite`, an empty `out`, a
            crop too small for the model (`TrainConfig.check_crop`), or data without
            a single labelled (non-void) pixel.
        RunLockedError: another run is training into `out` (its pid is named).
        RunExistsError: a fresh run into a folder holding a run (see
            `seglib.engine.run_protection`); NotADirectoryError / PermissionError: `out`
            is a file or not writable.
    """
    config = (config or TrainConfig()).replace(**overrides)
    config.check_crop()
    out = _run_folder(out, resume=resume, overwrite=overwrite)
    saved = None  # the last epoch whose last.pt is on disk (or that finished, without out)
    try:
        with run_lock(out) if out is not None and ddp.is_main() else contextlib.nullcontext():
            setup = RunSetup.choose(config, device, out)
            model = setup.place(model)
            train_loader = ddp.distribute_loader(train_loader, train=True, seed=config.seed)
            val_loader = ddp.distribute_loader(val_loader, train=False)
            config = config.replace(num_classes=_num_classes(config, train_loader))
            state = start_or_resume(model, config, setup, len(train_loader), resume, overwrite)
            saved = state.epoch
            net = ddp.wrap_model(model, setup.device, sync_bn=config.sync_bn)
            board = Board(config, in_notebook() if animate is None else animate, state.history)
            images = 0  # trained on by this call, for the closing images/s
            for epoch in range(state.epoch, config.epochs):
                t0, lr = time.perf_counter(), state.lr
                trained = train_one_epoch(net, train_loader, state, setup, board, epoch)
                scores = validate(net, val_loader, state.config, setup, epoch)
                row = epoch_row(epoch, trained, scores, lr, time.perf_counter() - t0)
                state.history.append(row)
                save_epoch(net, state, setup)
                saved, images = state.epoch, images + trained.images
                board.add_epoch(row)
                if callback is not None and callback(dict(row)):
                    break
            if state.history:
                board.summary(state.history[-1], images, setup.device)
            return pd.DataFrame(state.history, columns=METRIC_COLUMNS)
    except KeyboardInterrupt as err:
        if saved is None:  # stopped before training began
            raise
        how = "; continue with --resume (resume=True)" if out is not None else ""
        raise TrainingInterrupted(f"interrupted after epoch {saved}{how}") from err


def _run_folder(out: str | os.PathLike | None, *, resume: bool, overwrite: bool) -> Path | None:
    """`out` as a Path (None: nothing is written), checked before any work so that a run
    that would lose files stops here (see `seglib.engine.run_protection`)."""
    if out is not None and not str(out).strip():  # Path("") would be the working folder
        raise ValueError("out is an empty path: name a folder for the run, e.g. runs/quick")
    out = Path(out).expanduser() if out is not None else None  # as pandas reads "~"
    if resume and out is None:
        raise ValueError("resume=True needs out= (the folder holding last.pt)")
    if out is not None:
        check_run_folder(out, resume=resume, overwrite=overwrite)
    return out


class TrainedEpoch(NamedTuple):
    """What `train_one_epoch` measured."""

    loss: float  # mean training loss per image
    images: int  # images trained on, by all ranks together
    seconds: float  # time in training steps, data loading left out


def train_one_epoch(
    net: nn.Module,
    loader: DataLoader,
    state: RunState,
    setup: RunSetup,
    board: Board,
    epoch: int,
) -> TrainedEpoch:
    """One pass over `loader` (epoch is 0-based), for each batch: forward, loss, backward,
    optimiser step, poly step; the running loss is drawn `config.log_points` times.

    Raises NonFiniteLossError when the loss becomes NaN/inf, ValueError when the epoch
    held no labelled pixel.
    """
    config = state.config
    _seed_shuffling(loader, config.seed, epoch)
    net.train()
    weight = _class_weight(config, setup.device)  # (K,) or None
    steps = len(loader)
    points = {max(1, round(steps * (j + 1) / max(1, config.log_points)))
              for j in range(config.log_points)}  # steps after which the loss is drawn
    loss_sum, n_images, train_time = 0.0, 0, 0.0
    labelled = torch.zeros((), dtype=torch.long, device=setup.device)  # non-void pixels seen
    for step, (X, Y) in enumerate(board.bar(loader, epoch, config.epochs)):
        if board.timer is not None:
            board.timer.start()
        t_step = time.perf_counter()
        X = X.to(setup.device, non_blocking=True)  # (B, 3, H, W)
        Y = Y.to(setup.device, non_blocking=True).long()  # (B, H, W)
        labelled += (Y != config.ignore_index).sum()
        if setup.channels_last:
            X = X.contiguous(memory_format=torch.channels_last)
        with autocast(setup.device, setup.amp_dtype):
            outputs = net(X)  # (B, K, H, W), or a (main, aux) pair of them
        if state.config.num_classes is None:
            state.config = state.config.replace(num_classes=main_logits(outputs).shape[1])
        loss = segmentation_loss(outputs, Y, config.aux_weight, weight, config.ignore_index)
        value = _checked_loss(loss, state, setup, f"epoch {epoch + 1}, step {step + 1}/{steps}")
        _backward_and_step(loss, state, ddp.unwrap(net), config.grad_clip)
        loss_sum += value * X.shape[0]
        n_images += X.shape[0]
        train_time += time.perf_counter() - t_step
        if board.timer is not None:
            board.timer.stop()
        if step + 1 in points:
            board.add_train(epoch + (step + 1) / steps, loss_sum / n_images)
    if ddp.is_distributed():
        torch.distributed.all_reduce(labelled)
    if not labelled:
        raise ValueError(_no_labels("training", epoch, config.ignore_index))
    return TrainedEpoch(loss_sum / max(1, n_images), n_images * ddp.world_size(), train_time)


def _checked_loss(loss: torch.Tensor, state: RunState, setup: RunSetup, where: str) -> float:
    """The batch's loss as a float (averaged over the ranks under DDP, so that every rank
    reaches the same verdict); NonFiniteLossError, naming `where`, if it is NaN/inf."""
    value = loss.detach().clone()
    if ddp.is_distributed():
        torch.distributed.all_reduce(value)
        value /= ddp.world_size()
    value = value.item()
    if not math.isfinite(value):
        last_path = setup.out / "last.pt" if setup.out is not None else None
        good = (f"{last_path} (epoch {state.history[-1]['epoch']})"
                if last_path is not None and state.history else "none written")
        raise NonFiniteLossError(
            f"non-finite training loss ({value}) at {where}; stopping. Last good checkpoint: "
            f"{good}. Try a lower lr, grad_clip, or amp='off'."
        )
    return value


def _backward_and_step(
    loss: torch.Tensor, state: RunState, model: nn.Module, grad_clip: float | None
) -> None:
    """Backward through the (AMP-scaled) loss, clip the gradients' norm if asked, take
    the optimiser step, then the poly schedule's step."""
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if grad_clip is not None:
        state.scaler.unscale_(state.optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()


def validate(
    net: nn.Module, loader: DataLoader, config: TrainConfig, setup: RunSetup, epoch: int
) -> dict:
    """`seglib.engine.scoring.evaluate` on the validation set after an epoch, with the
    training's class weights in the loss and its precision, memory format and
    `eval_scale`; ValueError when the set held no labelled pixel."""
    ddp.broadcast_buffers(net)  # rank 0's BatchNorm statistics everywhere, as saved
    criterion = nn.CrossEntropyLoss(weight=_class_weight(config, setup.device),
                                    ignore_index=config.ignore_index)
    scores = evaluate(ddp.unwrap(net), loader, config.num_classes, setup.device,
                      criterion=criterion,
                      amp=config.amp if setup.amp_dtype is not None else "off",
                      channels_last=setup.channels_last, ignore_index=config.ignore_index,
                      input_scale=config.eval_scale)
    if not scores["confusion"].sum():
        raise ValueError(_no_labels("validation", epoch, config.ignore_index))
    return scores


def epoch_row(
    epoch: int, trained: TrainedEpoch, scores: dict, lr: float, seconds: float
) -> dict[str, Any]:
    """The history's (and metrics.csv's) row of 0-based `epoch`: `METRIC_COLUMNS`."""
    return {
        "epoch": epoch + 1,
        "train_loss": trained.loss,
        "val_loss": scores["loss"],
        "val_pixel_acc": scores["pixel_acc"],
        "val_miou": scores["miou"],
        "val_mean_class_acc": scores["mean_class_acc"],
        "lr": lr,
        "seconds": seconds,
        "images_per_s": trained.images / max(trained.seconds, 1e-9),
    }


def segmentation_loss(
    outputs: Any,
    target: torch.Tensor,
    aux_weight: float = 0.4,
    weight: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    r"""Cross-entropy over non-ignored pixels, plus `aux_weight` times the auxiliary
    loss when `outputs` is a `(main, aux)` tuple: $\mathcal{L}_{main} + 0.4\,\mathcal{L}_{aux}$.

    Logits are computed in float32 (safe under autocast) and resized to the target if a
    model returns another size; the formula itself is `seglib.models.losses.ccnet_loss`
    (0, not NaN, for a batch whose pixels are all void).
    """
    heads = list(outputs) if isinstance(outputs, tuple | list) else [outputs]
    if len(heads) not in (1, 2):
        raise ValueError(f"expected logits or a (main, aux) pair, got {len(heads)} outputs")
    size = target.shape[-2:]
    heads = [
        F.interpolate(h.float(), size, mode="bilinear", align_corners=False)
        if h.shape[-2:] != size else h.float()
        for h in heads
    ]
    outputs = tuple(heads) if len(heads) == 2 else heads[0]
    return ccnet_loss(outputs, target, aux_weight, weight=weight, ignore_index=ignore_index)


def _seed_shuffling(loader: DataLoader, seed: int, epoch: int) -> None:
    """Make this epoch's shuffling a function of (seed, epoch) only, so resume replays it.

    Under DDP the sampler's permutation is shared by all ranks (`set_epoch`), while the
    loader's own generator (worker seeds) also depends on the rank.
    """
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
        if getattr(loader, "generator", None) is not None:
            loader.generator.manual_seed(seed * 100_003 + epoch + (ddp.rank() << 32))
    elif isinstance(sampler, RandomSampler):
        if sampler.generator is None:
            sampler.generator = torch.Generator()
        sampler.generator.manual_seed(seed * 100_003 + epoch)


def _no_labels(split: str, epoch: int, ignore_index: int) -> str:
    """The message for a split whose labels are all void: nothing to learn or score."""
    return (f"the {split} data has no labelled pixel (every label is void, {ignore_index}) "
            f"in epoch {epoch + 1}: check its label files, or the crop")


def _num_classes(config: TrainConfig, loader: DataLoader) -> int | None:
    if config.num_classes is not None:
        return config.num_classes
    k = getattr(getattr(loader, "dataset", None), "num_classes", None)
    return int(k) if k is not None else None


def _class_weight(config: TrainConfig, device: torch.device) -> torch.Tensor | None:
    """`config.class_weights` as a float32 (K,) tensor on `device`, or None."""
    if config.class_weights is None:
        return None
    return torch.as_tensor(config.class_weights, dtype=torch.float32, device=device)
