r"""
# Training a segmentation network

The loop d2l's `train_ch13` teaches (forward, loss, backward, step, then evaluate),
with what real segmentation training adds:

- **SGD with momentum 0.9 and weight decay** and the **poly** learning-rate schedule of
  DeepLab and CCNet, updated every iteration $t$ of $T$:
  $$\eta_t = \eta_0 \left(1 - \frac{t}{T}\right)^{p},\qquad p = 0.9$$
- **Cross-entropy that ignores void pixels** (label 255), optionally class-weighted,
  plus CCNet's **auxiliary loss** $\mathcal{L} = \mathcal{L}_{main} + 0.4\,
  \mathcal{L}_{aux}$ when the model returns `(main, aux)` in training mode.
- **mIoU**, not only pixel accuracy, on the validation set every epoch.
- **AMP and channels_last** on CUDA, optional gradient clipping, a stop with a clear
  message when the loss becomes NaN/inf.
- **Checkpoints** (`last.pt` each epoch, `best.pt` on the best val mIoU, never from a
  NaN val loss) written atomically, and an exact **resume** (see
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
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

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
from seglib.engine.device import autocast, in_notebook, pick_device, resolve_amp, use_channels_last
from seglib.engine.progress import Board
from seglib.engine.run_protection import check_run_folder, clear_run, run_lock
from seglib.engine.scoring import evaluate, main_logits
from seglib.models.ccnet import ccnet_loss

__all__ = ["fit", "param_groups", "segmentation_loss", "seed_everything", "NonFiniteLossError",
           "TrainingInterrupted", "METRIC_COLUMNS"]  # fmt: skip

METRIC_COLUMNS = [
    "epoch", "train_loss", "val_loss", "val_pixel_acc", "val_miou",
    "val_mean_class_acc", "lr", "seconds", "images_per_s",
]  # fmt: skip


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (the message names epoch and step)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM under `seglib.cli.run`) stopped `fit`; the message names the
    last epoch saved and how to continue."""


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
    model returns another size; the formula itself is `seglib.models.ccnet.ccnet_loss` (0, not
    NaN, for a batch whose pixels are all void).
    """
    heads = list(outputs) if isinstance(outputs, tuple | list) else [outputs]
    if len(heads) not in (1, 2):
        raise ValueError(f"expected logits or a (main, aux) pair, got {len(heads)} outputs")
    size = target.shape[-2:]
    heads = [
        F.interpolate(h.float(), size, mode="bilinear", align_corners=False)
        if h.shape[-2:] != size else h.float()
        for h in heads
    ]  # fmt: skip
    outputs = tuple(heads) if len(heads) == 2 else heads[0]
    return ccnet_loss(outputs, target, aux_weight, weight=weight, ignore_index=ignore_index)


def _poly(total_iters: int, power: float) -> Callable[[int], float]:
    """Poly factor $(1 - t/T)^p$ (a closure, so a resumed run may change T)."""
    return lambda t: max(0.0, 1.0 - t / max(1, total_iters)) ** power


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


def _nothing_to_do(path: Path, done: int, epochs: int) -> str:
    """The line a resumed run prints when its checkpoint has all its epochs already."""
    return (f"nothing to train: {path} has finished {done} epochs and this run asks for "
            f"{epochs}; to train further, resume with more epochs (--epochs N, N > {done})")


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    r"""The optimiser's parameter groups: what weight decay and which learning rate.

    By default one group: every parameter decays, at the base learning rate. Two of the
    standard remedies for an attention gate that stays shut change that:

    - `decay_1d=False`: biases, norm weights and the attention's gate $\gamma$ (every
      parameter with fewer than two dimensions) are not decayed, as in nanoGPT and timm;
      decay would pull $\gamma$ back to its zero start at every step.
    - `gamma_lr_mult`: every parameter named `...gamma` learns at `lr * gamma_lr_mult`.

    Groups that end up empty are dropped; the poly schedule scales each group's own lr.
    """
    if config.decay_1d and config.gamma_lr_mult == 1.0:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_gamma = name.rsplit(".", 1)[-1] == "gamma"
        decays = config.decay_1d or p.dim() >= 2
        groups.setdefault((decays, is_gamma), []).append(p)
    return [
        {"params": params, "weight_decay": config.weight_decay if decays else 0.0,
         "lr": config.lr * (config.gamma_lr_mult if is_gamma else 1.0)}
        for (decays, is_gamma), params in sorted(groups.items())
    ]  # fmt: skip


def _no_labels(split: str, epoch: int, ignore_index: int) -> str:
    """The message for a split whose labels are all void: nothing to learn or score."""
    return (f"the {split} data has no labelled pixel (every label is void, {ignore_index}) "
            f"in epoch {epoch + 1}: check its label files, or the crop")


def _num_classes(config: TrainConfig, loader: DataLoader) -> int | None:
    if config.num_classes is not None:
        return config.num_classes
    k = getattr(getattr(loader, "dataset", None), "num_classes", None)
    return int(k) if k is not None else None


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
    if out is not None and not str(out).strip():  # Path("") would be the working folder
        raise ValueError("out is an empty path: name a folder for the run, e.g. runs/quick")
    out = Path(out).expanduser() if out is not None else None  # as pandas reads "~"
    if resume and out is None:
        raise ValueError("resume=True needs out= (the folder holding last.pt)")
    if out is not None:  # before any work: a run that would lose files stops here
        check_run_folder(out, resume=resume, overwrite=overwrite)
    progress = {"saved": None}  # the last epoch whose last.pt is on disk (or just done)
    lock = run_lock(out) if out is not None and ddp.is_main() else contextlib.nullcontext()
    try:
        with lock:
            return _fit(model, train_loader, val_loader, config, out, resume, overwrite,
                        callback, animate, device, progress)  # fmt: skip
    except KeyboardInterrupt as err:
        if progress["saved"] is None:  # stopped before training began
            raise
        message = f"interrupted after epoch {progress['saved']}"
        if out is not None:
            message += "; continue with --resume (resume=True)"
        raise TrainingInterrupted(message) from err


def _fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    config: TrainConfig,
    out: Path | None,
    resume: bool,
    overwrite: bool,
    callback: Callable[[dict], bool | None] | None,
    animate: bool | None,
    device: str | torch.device | None,
    progress: dict[str, int | None],
) -> pd.DataFrame:
    """`fit` once its arguments are checked and its folder locked; sets
    `progress["saved"]` to the last epoch saved (finished, without `out`)."""
    device = pick_device(device if device is not None else config.device)
    amp_dtype = resolve_amp(config.amp, device)
    channels_last = use_channels_last(config.channels_last, device)
    bare = model.to(device)
    if channels_last:
        bare = bare.to(memory_format=torch.channels_last)
    train_loader = ddp.distribute_loader(train_loader, train=True, seed=config.seed)
    val_loader = ddp.distribute_loader(val_loader, train=False)
    config = config.replace(num_classes=_num_classes(config, train_loader))

    weight = None
    if config.class_weights is not None:
        weight = torch.as_tensor(config.class_weights, dtype=torch.float32, device=device)
    optimizer = torch.optim.SGD(param_groups(bare, config), lr=config.lr,
                                momentum=config.momentum, weight_decay=config.weight_decay)
    steps = len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _poly(config.epochs * steps, config.poly_power)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    history: list[dict] = []
    start, best = 0, -math.inf
    last_path = out / "last.pt" if out is not None else None
    if resume:
        ckpt = load_checkpoint(last_path, map_location=device)
        check_compatible(ckpt, type(bare).__qualname__, config.to_dict(), last_path)
        try:
            bare.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise ValueError(f"checkpoint {last_path} does not fit this model: {err}") from err
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        # A resumed run may be longer than the one that wrote the checkpoint: recompute
        # the current lr from the restored step count and this run's total (else the
        # first epoch of the extension would run at the old schedule's final lr, 0)
        poly = scheduler.lr_lambdas[0]
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = base * poly(scheduler.last_epoch)
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(rng_state_for_rank(ckpt["rng"], ddp.rank()))
        start, best, history = ckpt["epoch"], ckpt["best_miou"], list(ckpt["history"])
        if config.num_classes is None:
            config = config.replace(num_classes=ckpt["config"].get("num_classes"))
        if start >= config.epochs and ddp.is_main():
            print(_nothing_to_do(last_path, start, config.epochs))
    else:  # a fresh run: dropout, augmentation and shuffling follow config.seed (+ rank)
        seed_everything(config.seed)
    if out is not None and ddp.is_main():
        if overwrite:
            clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(history, columns=METRIC_COLUMNS).to_csv(out / "metrics.csv", index=False)

    progress["saved"] = start
    net = ddp.wrap_model(bare, device, sync_bn=config.sync_bn)
    board = Board(config, in_notebook() if animate is None else animate, history)
    val_criterion = nn.CrossEntropyLoss(weight=weight, ignore_index=config.ignore_index)
    seen = 0
    for epoch in range(start, config.epochs):
        _seed_shuffling(train_loader, config.seed, epoch)
        net.train()
        t0, train_time = time.perf_counter(), 0.0
        loss_sum, n_images, lr = 0.0, 0, optimizer.param_groups[0]["lr"]
        labelled = torch.zeros((), dtype=torch.long, device=device)  # non-void pixels seen
        points = {max(1, round(steps * (j + 1) / max(1, config.log_points))) for j in range(
            config.log_points)}  # fmt: skip
        for step, (X, Y) in enumerate(board.bar(train_loader, epoch, config.epochs)):
            if board.timer is not None:
                board.timer.start()
            t_step = time.perf_counter()
            X, Y = X.to(device, non_blocking=True), Y.to(device, non_blocking=True).long()
            labelled += (Y != config.ignore_index).sum()
            if channels_last:
                X = X.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp_dtype):
                outputs = net(X)
            if config.num_classes is None:
                config = config.replace(num_classes=main_logits(outputs).shape[1])
            loss = segmentation_loss(outputs, Y, config.aux_weight, weight, config.ignore_index)
            value = loss.detach().clone()
            if ddp.is_distributed():  # every rank must see the same verdict (and loss)
                torch.distributed.all_reduce(value)
                value /= ddp.world_size()
            value = value.item()
            if not math.isfinite(value):
                good = f"{last_path} (epoch {start if not history else history[-1]['epoch']})"
                raise NonFiniteLossError(
                    f"non-finite training loss ({value}) at epoch {epoch + 1}, step {step + 1}"
                    f"/{steps}; stopping. Last good checkpoint: "
                    + (good if last_path is not None and history else "none written")
                    + ". Try a lower lr, grad_clip, or amp='off'."
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(bare.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += value * X.shape[0]
            n_images += X.shape[0]
            train_time += time.perf_counter() - t_step
            if board.timer is not None:
                board.timer.stop()
            if step + 1 in points:
                board.add_train(epoch + (step + 1) / steps, loss_sum / n_images)
        seen += n_images * ddp.world_size()
        if ddp.is_distributed():
            torch.distributed.all_reduce(labelled)
        if not labelled:
            raise ValueError(_no_labels("training", epoch, config.ignore_index))
        ddp.broadcast_buffers(net)  # rank 0's BatchNorm statistics everywhere, as saved
        res = evaluate(ddp.unwrap(net), val_loader, config.num_classes, device,
                       criterion=val_criterion,
                       amp=config.amp if amp_dtype is not None else "off",
                       channels_last=channels_last, ignore_index=config.ignore_index,
                       input_scale=config.eval_scale)  # fmt: skip
        if not res["confusion"].sum():
            raise ValueError(_no_labels("validation", epoch, config.ignore_index))
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(1, n_images),
            "val_loss": res["loss"],
            "val_pixel_acc": res["pixel_acc"],
            "val_miou": res["miou"],
            "val_mean_class_acc": res["mean_class_acc"],
            "lr": lr,
            "seconds": time.perf_counter() - t0,
            "images_per_s": n_images * ddp.world_size() / max(train_time, 1e-9),
        }
        history.append(row)
        # a NaN val loss means NaN logits (e.g. broken BatchNorm statistics): whatever
        # mIoU their argmax scores, that model is no best.pt
        trusted = math.isfinite(res["loss"])
        if not trusted and ddp.is_main():
            print(f"epoch {epoch + 1}: val loss {res['loss']}, so best.pt is not updated")
        improved = trusted and res["miou"] > best
        best = max(best, res["miou"]) if trusted and not math.isnan(res["miou"]) else best
        rng = _gather_rng() if out is not None else None  # a collective: every rank joins
        if out is not None and ddp.is_main():
            ckpt = {
                "format": FORMAT,
                "model": ddp.unwrap(net).state_dict(),
                "model_class": type(bare).__qualname__,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "epoch": epoch + 1,
                "best_miou": best,
                "history": history,
                "rng": rng,
                "config": config.to_dict(),
            }
            atomic_save(ckpt, last_path)
            if improved:
                atomic_save(ckpt, out / "best.pt")
            pd.DataFrame([row], columns=METRIC_COLUMNS).to_csv(
                out / "metrics.csv", mode="a", header=False, index=False
            )
        ddp.barrier()
        progress["saved"] = epoch + 1
        board.add_epoch(row)
        if callback is not None and callback(dict(row)):
            break
    if history:
        board.summary(history[-1], seen, device)
    return pd.DataFrame(history, columns=METRIC_COLUMNS)
