r"""
# The optimiser: SGD, parameter groups and the poly schedule

What DeepLab and CCNet train with, and what `seglib.engine.training_loop.fit` builds:

- **SGD with momentum 0.9 and weight decay**, over parameter groups that may exempt
  biases, norm weights and the attention's gate $\gamma$ from decay, or give $\gamma$
  or the whole head its own learning rate (`param_groups`);
- the **poly** learning-rate schedule, updated every iteration $t$ of $T$:
  $$\eta_t = \eta_0 \left(1 - \frac{t}{T}\right)^{p},\qquad p = 0.9$$

A resumed run may ask for more epochs than the run that wrote its checkpoint:
`continue_schedule` puts every group's learning rate on the new, longer schedule.
Taught in `notebooks/06_training.ipynb` (where the learner writes SGD + poly by hand).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from seglib.engine.config import TrainConfig

__all__ = ["continue_schedule", "make_optimizer", "param_groups", "poly_factor"]


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    r"""The optimiser's parameter groups: what weight decay and which learning rate.

    By default one group: every parameter decays, at the base learning rate. Three of the
    standard remedies for an attention gate that stays shut change that:

    - `decay_1d=False`: biases, norm weights and the attention's gate $\gamma$ (every
      parameter with fewer than two dimensions) are not decayed, as in nanoGPT and timm;
      decay would pull $\gamma$ back to its zero start at every step.
    - `gamma_lr_mult`: every parameter named `...gamma` learns at `lr * gamma_lr_mult`.
    - `head_lr_mult`: every parameter named `head.*` (CCNet's attention head and
      classifier) learns at `lr * head_lr_mult`, as DeepLab's and PSPNet's reference
      code gives a new head 10x the rate of a pretrained backbone; a gamma inside the
      head gets both factors.

    Groups that end up empty are dropped; the poly schedule scales each group's own lr.
    """
    if config.decay_1d and config.gamma_lr_mult == 1.0 and config.head_lr_mult == 1.0:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        factor = config.head_lr_mult if name.startswith("head.") else 1.0
        if name.rsplit(".", 1)[-1] == "gamma":
            factor *= config.gamma_lr_mult
        decays = config.decay_1d or p.dim() >= 2
        groups.setdefault((decays, factor), []).append(p)
    return [
        {"params": params, "weight_decay": config.weight_decay if decays else 0.0,
         "lr": config.lr * factor}
        for (decays, factor), params in sorted(groups.items())
    ]


def poly_factor(total_iters: int, power: float) -> Callable[[int], float]:
    """The poly factor $(1 - t/T)^p$ as a function of the step t (0 once t >= T).

    A closure, not a state: a checkpoint does not store it, so a resumed run brings its
    own T (see `continue_schedule`).
    """
    return lambda t: max(0.0, 1.0 - t / max(1, total_iters)) ** power


def make_optimizer(
    model: nn.Module, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LambdaLR]:
    """SGD over `param_groups(model, config)` and its poly schedule over all the run's
    steps (`config.epochs * steps_per_epoch`); step the scheduler after every step."""
    optimizer = torch.optim.SGD(param_groups(model, config), lr=config.lr,
                                momentum=config.momentum, weight_decay=config.weight_decay)
    total = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_factor(total, config.poly_power))
    return optimizer, scheduler


def continue_schedule(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR
) -> None:
    """After loading a checkpoint's optimiser and scheduler states: set each group's lr
    from the restored step count on THIS run's schedule.

    A resumed run may be longer than the one that wrote the checkpoint; the restored lr
    is the old schedule's (its final 0 when that run had finished), so the first epoch
    of the extension would otherwise not learn.
    """
    poly = scheduler.lr_lambdas[0]
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base * poly(scheduler.last_epoch)
