"""
# Train and score the long-range experiment: does the cue reach the objects?

Notebook 03 and `benchmarks/long_range.py` train `seglib.models.LongRangeNet` with
R = 0, 1 and 2 attention passes on `seglib.data.LongRangeTask` and report the pixel
accuracy separately on the local pixels (background and cue), the objects aligned with
the cue (one pass reaches them) and the far objects (two passes needed). Chance on
object pixels is 50 %: the objects all look alike, only the cue's colour decides.

A small loop of its own (Adam, poly decay, batches drawn from stacked tensors): the
task fits in memory and trains in a few minutes on one CPU core, without the
checkpoints and the CamVid pipeline of `seglib.engine.training_loop.fit`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from seglib.data.long_range import REGIONS, LongRangeTask
from seglib.models.long_range_net import LongRangeNet

__all__ = ["LOSS_WEIGHTS", "region_accuracy", "task_tensors", "train_long_range"]

#: cross-entropy weights of background, cue, object A, object B: the objects are 6 %
#: of the pixels, the background 94 %
LOSS_WEIGHTS: tuple[float, ...] = (0.1, 1.0, 1.0, 1.0)


def task_tensors(n: int, seed: int, split: str) -> tuple[Tensor, Tensor, Tensor]:
    """Images (n, 3, 64, 64), masks (n, 64, 64) and regions (n, 64, 64) of the task."""
    return LongRangeTask(n, seed=seed, split=split).tensors()


@torch.no_grad()
def region_accuracy(net: torch.nn.Module, images: Tensor, masks: Tensor, regions: Tensor,
                    batch_size: int = 100) -> dict[str, float]:
    """Pixel accuracy of `net` on each region ("local", "aligned", "far") and overall.

    `images` (N, 3, H, W), `masks` and `regions` (N, H, W). The network runs in eval mode
    and is put back into its previous mode.
    """
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    hits = torch.zeros(len(REGIONS), dtype=torch.float64)
    counts = torch.zeros(len(REGIONS), dtype=torch.float64)
    for k in range(0, len(images), batch_size):
        X = images[k : k + batch_size].to(device)
        pred = net(X).argmax(1).cpu()  # (b, H, W)
        right = (pred == masks[k : k + batch_size]).double()  # (b, H, W)
        where = regions[k : k + batch_size].flatten()
        hits += torch.bincount(where, right.flatten(), minlength=len(REGIONS))
        counts += torch.bincount(where, minlength=len(REGIONS)).double()
    net.train(was_training)
    out = {name: float(hits[r] / counts[r]) for r, name in enumerate(REGIONS)}
    out["overall"] = float(hits.sum() / counts.sum())
    return out


def train_long_range(
    recurrence: int,
    data: tuple[Tensor, Tensor],
    seed: int = 0,
    steps: int = 1500,
    batch_size: int = 32,
    lr: float = 3e-3,
    gamma_lr_mult: float = 1.0,
    callback: Callable[[int, float], None] | None = None,
    **net_kwargs,
) -> LongRangeNet:
    r"""Train a `LongRangeNet` with `recurrence` attention passes on `data`.

    Args:
        recurrence: R (0, 1 or 2).
        data: training images (N, 3, H, W) and masks (N, H, W), e.g. from `task_tensors`.
        seed: seeds the network's initialisation and the order of the batches.
        steps, batch_size, lr: Adam steps of `batch_size` images drawn at random, the
            learning rate decaying as $(1 - t/T)^{0.9}$ (the poly schedule of CCNet).
        gamma_lr_mult: the attention gate $\gamma$ learns this many times faster. It
            starts at 0, and what the second pass carries from the first grows like
            $\gamma^2$: a faster gate lets the far objects find the cue sooner.
        callback: called as `callback(step, loss)` after every step (e.g. to plot).
        net_kwargs: passed to `LongRangeNet` (width, reduction).

    Returns the trained network, in eval mode, on the CPU.
    """
    images, masks = data
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = LongRangeNet(num_classes=4, recurrence=recurrence, **net_kwargs)
    gate = [net.head.cca.gamma]
    rest = [q for q in net.parameters() if q is not gate[0]]
    opt = torch.optim.Adam([{"params": rest}, {"params": gate, "lr": lr * gamma_lr_mult}], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: (1 - t / steps) ** 0.9)
    weight = torch.tensor(LOSS_WEIGHTS)
    net.train()
    for step in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=gen)
        loss = F.cross_entropy(net(images[idx]), masks[idx], weight=weight)  # (B, K, H, W)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if callback is not None:
            callback(step, loss.item())
    return net.eval()
