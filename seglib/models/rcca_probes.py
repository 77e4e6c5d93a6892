r"""
# What a trained RCCA head does: its weights, and the network without it

Two probes of a CCNet's recurrent criss-cross attention, used by notebook 08, the
explorer, `python -m seglib.evaluate --knockout` and `benchmarks/attention_seeds.py`:

- `rcca_attention(model, image)` runs the network once and records, per pass, the
  softmax weights of every pixel, the share the pass adds to its input
  ($\|\gamma\,\mathrm{CCA}(x)\| / \|x\|$) and its entropy against the uniform level
  $\log(h + w - 1)$;
- `attention_knockout(model, passes)` removes the attention's contribution within a
  `with` block, so that the same checkpoint can be scored with and without it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from seglib.models.ccnet import RCCAModule

__all__ = ["attention_knockout", "rcca_attention"]


def _split_model(model: nn.Module) -> tuple[nn.Module | None, RCCAModule]:
    """(backbone or None, RCCA head) of a CCNet-like model or of a bare RCCAModule."""
    if isinstance(model, RCCAModule):
        return None, model
    head = getattr(model, "head", None)
    if isinstance(head, RCCAModule) and hasattr(model, "backbone"):
        return model.backbone, head
    raise TypeError(
        f"expected a CCNet (with .backbone and an RCCAModule .head) or an RCCAModule, "
        f"got {type(model).__name__}"
    )


@torch.no_grad()
def rcca_attention(model_or_rcca: nn.Module, image: Tensor) -> dict[str, Any]:
    """Run the network on one image and record the attention weights of every RCCA pass.

    Args:
        model_or_rcca: a CCNet (its `.backbone` and `.head`, an `RCCAModule`, are used), or
            an `RCCAModule` alone, in which case `image` is the head's input feature.
        image: one normalised image (1, 3, H, W) or (3, H, W) for a CCNet; the backbone
            feature (1, C, h, w) or (C, h, w) for an RCCAModule. Moved to the model's
            device and dtype.

    Returns:
        a dict with
        `"weights"`: list of R tensors (h, w, h + w - 1) on the CPU, pass r's softmax
        weights in `criss_cross_weights`' order (pass 1 on `conva`'s output, pass r + 1
        on pass r's output; all from the one shared `head.cca`),
        `"size"`: the feature size (h, w), `"gamma"`: the shared gate as a float,
        `"recurrence"`: R, `"shares"`: list of R floats, how much each pass adds to its
        input, ||gamma * CCA(x)|| / ||x|| (a small share: the network leans on its
        convolutions more than on the attention), `"entropies"`: list of R floats, each
        pass's entropy averaged over the pixels, as a fraction of the uniform
        distribution's log(h + w - 1) (1.0: the pass attends to nothing in particular).

    The model runs in eval mode (batch norm with running statistics, as at test time)
    and is put back into its previous mode afterwards; no gradients are kept.
    """
    backbone, head = _split_model(model_or_rcca)
    if image.dim() == 3:
        image = image.unsqueeze(0)  # (1, C, H, W)
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"expected one image (1, C, H, W) or (C, H, W), got {tuple(image.shape)}")
    param = next(head.parameters())
    x = image.to(device=param.device, dtype=param.dtype)  # (1, C, H, W)
    was_training = model_or_rcca.training
    model_or_rcca.eval()
    try:
        if backbone is not None:
            x = backbone(x)[-1]  # (1, C4, h, w): the last stage, as CCNet.forward
        out = head.conva(x)  # (1, C4/4, h, w)
        weights, shares = [], []
        for _ in range(head.recurrence):
            # the same module each time, exactly as RCCAModule.forward applies it
            weights.append(head.cca.attention_weights(out)[0].cpu())  # (h, w, h+w-1)
            new = head.cca(out)  # (1, C4/4, h, w): out + gamma * CCA(out)
            shares.append(float((new - out).norm() / out.norm()))
            out = new
    finally:
        model_or_rcca.train(was_training)
    h, w = out.shape[-2:]
    uniform = math.log(h + w - 1) if h + w > 2 else 1.0  # a 1x1 map: one position
    entropies = [
        float(-(a.double() * a.double().clamp_min(1e-300).log()).sum(-1).mean() / uniform)
        for a in weights  # (h, w, h + w - 1) each
    ]
    return {
        "weights": weights,
        "size": (int(h), int(w)),
        "gamma": float(head.cca.gamma),
        "recurrence": head.recurrence,
        "shares": shares,
        "entropies": entropies,
    }


@contextmanager
def attention_knockout(model: nn.Module, passes: Iterable[int] | str = "all") -> Iterator[None]:
    r"""Within the block, remove the attention's contribution from `model`'s RCCA head(s).

    A knocked-out pass $r$ becomes the identity, $H^{(r)} = H^{(r-1)}$, which is what
    $\gamma = 0$ would give for that pass alone (the other passes keep their $\gamma$;
    the shared module is not changed). Evaluating a trained network inside the block
    measures what its attention contributes: the drop in mIoU is the attention's share
    of the result. `passes` is "all" or pass numbers counted from 1 (e.g. `[2]`).
    """
    heads = [m for m in model.modules() if isinstance(m, RCCAModule)]
    if not heads:
        raise ValueError(f"{type(model).__name__} has no RCCA head: nothing to knock out")
    saved = [h.knocked_out for h in heads]
    try:
        for h in heads:
            chosen = range(1, h.recurrence + 1) if passes == "all" else list(passes)  # type: ignore[arg-type]
            bad = [r for r in chosen if not 1 <= int(r) <= h.recurrence]
            if bad:
                raise ValueError(f"passes must lie in 1..{h.recurrence} (R = "
                                 f"{h.recurrence}), got {bad}")
            h.knocked_out = frozenset(int(r) for r in chosen)
        yield
    finally:
        for h, old in zip(heads, saved):
            h.knocked_out = old
