r"""
# How much GPU memory will a training step need?

An **estimate**, not a measurement: this project has no GPU. The activation figures
below were measured on a CPU by `benchmarks/gpu_memory.py` (which prints this table to
paste here); the parameter counts are computed exactly from the model, built on the
`meta` device (shapes only, no memory, no weights).

The peak of one SGD training step (forward, loss, backward, step) is modelled as

$$M(b) \approx \underbrace{4P + S_{buf}}_{\text{weights}} + \underbrace{4P}_{\text{grads}}
  + \underbrace{4P}_{\text{momentum}} + A_0 + b\,A_1\,\frac{h\,w}{360 \cdot 480} + C,$$

with $P$ the number of parameters (float32, also under AMP, which keeps float32
master weights), $S_{buf}$ the batch-norm statistics, $b$ the batch size and $h \times w$
the crop. $A_1$ is the measured growth of the peak live memory of a forward + backward
per image at 360x480 (what autograd saves for backward, the gradients flowing back,
the input and target), $A_0$ its batch-independent part beyond the gradients (0 in
every set measured: the peak comes early in backward, before most gradients exist, and
the 16-bit weight copies autocast keeps fit under that). Under AMP most saved activations are
16-bit, so $A_1$ comes from a CPU run under `torch.autocast("cpu", dtype=torch.bfloat16)`
(bf16 and fp16 have the same size; the two autocast op lists differ slightly).
$C$ = 0.75 GiB covers the CUDA context (about 0.3-0.4 GB with the lazy kernel loading
of CUDA >= 11.7: pytorch/pytorch#107667, #109888) and the cuDNN / cuBLAS workspaces;
the caching allocator's fragmentation and the error of a CPU-based estimate are left
to a safety margin (20% of the card by default).

For `notebooks/06_training.ipynb`, to print the budget of its GPU recipe. The whole
table, the method and the measurements: `benchmarks/README.md`, section "GPU memory
budget"; `benchmarks/gpu_memory.py` computes the same formula from its own measurements.
"""

from __future__ import annotations

import math
from functools import cache

import torch

from seglib.models import CCNet, RefineNet

__all__ = [
    "MEASURED",
    "MEASURED_CROP",
    "CUDA_ALLOWANCE_BYTES",
    "T4_BYTES",
    "parameter_count",
    "estimate_training_memory",
    "format_estimate",
]

GIB = 2**30
MEASURED_CROP = (360, 480)  # (h, w) of the CPU measurements (CamVid's full frame)
CUDA_ALLOWANCE_BYTES = int(0.75 * GIB)  # CUDA context (~0.4 GB) + cuDNN/cuBLAS workspaces
T4_BYTES = 15 * GIB  # what a Colab T4 reports (15360 MiB of its 16 GB)
DEFAULT_MARGIN = 0.2  # keep 20% of the card free: fragmentation, estimate error

# Measured by `python benchmarks/gpu_memory.py` (CPU, torch 2.14.1, 360x480, float32 or
# bf16 autocast; num_classes 11, CCNet recurrence 2 with its auxiliary head, RefineNet
# features 256). Bytes: (model, backbone, precision) ->
# (activation_fixed A_0, activation_per_image A_1, saved_fixed, saved_per_image).
# BEGIN MEASURED
MEASURED: dict[tuple[str, str, str], tuple[int, int, int, int]] = {
    ("ccnet", "resnet18", "fp32"): (0, 200634368, 248840, 183190624),
    ("ccnet", "resnet18", "amp"): (0, 121180160, 26127240, 103702112),
    ("ccnet", "resnet50", "fp32"): (0, 794095616, 3079176, 776934496),
    ("ccnet", "resnet50", "amp"): (0, 409800704, 106634632, 400574048),
    ("ccnet", "resnet101", "fp32"): (0, 1358057472, 3496968, 1340953696),
    ("ccnet", "resnet101", "amp"): (0, 691744768, 144932232, 682583648),
    ("refinenet", "resnet18", "fp32"): (0, 543342592, 76804, 500444160),
    ("refinenet", "resnet18", "amp"): (0, 342130688, 153062276, 318113280),
    ("refinenet", "resnet50", "fp32"): (0, 764190720, 424964, 721628160),
    ("refinenet", "resnet50", "amp"): (0, 452681728, 198335364, 428705280),
    ("refinenet", "resnet101", "fp32"): (0, 909721600, 842756, 865766400),
    ("refinenet", "resnet101", "amp"): (0, 524668928, 236632964, 500774400),
}
# END MEASURED


def _precision(amp: bool) -> str:
    return "amp" if amp else "fp32"


@cache
def parameter_count(model_name: str, backbone: str, num_classes: int = 11) -> tuple[int, int]:
    """(number of parameters, bytes of buffers) of the training model, built on `meta`.

    CCNet with recurrence 2 and its auxiliary head (the training recipe), RefineNet with
    features 256. Building on the meta device allocates nothing and takes milliseconds,
    even for a ResNet-101.
    """
    with torch.device("meta"):
        if model_name == "ccnet":
            model = CCNet(num_classes, backbone=backbone, recurrence=2, aux=True)
        elif model_name == "refinenet":
            model = RefineNet(num_classes, backbone=backbone, features=256)
        else:
            raise ValueError(f"unknown model {model_name!r}, expected 'ccnet' or 'refinenet'")
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return params, buffers


def estimate_training_memory(
    model_name: str,
    backbone: str,
    batch_size: int,
    crop: tuple[int, int] = (360, 480),
    amp: bool = True,
    *,
    num_classes: int = 11,
    gpu_bytes: int = T4_BYTES,
    margin: float = DEFAULT_MARGIN,
) -> dict:
    """Estimated peak GPU memory (bytes) of one SGD-with-momentum training step.

    Args:
        model_name: "ccnet" or "refinenet".
        backbone: a backbone in `MEASURED` ("resnet18", "resnet50", "resnet101").
        batch_size: images per step (per GPU).
        crop: (h, w) of the training images; activations scale with h * w.
        amp: mixed precision (bf16/fp16 autocast) or float32.
        num_classes: classes of the classifier (changes the parameter count only).
        gpu_bytes: memory of the card (default: a 15 GB Colab T4).
        margin: fraction of the card kept free; `fits` compares with the rest.

    Returns a dict: the parts (`weights_bytes`, `grads_bytes`, `momentum_bytes`,
    `activation_bytes`, `allowance_bytes`), their sum `total_bytes`, `saved_bytes`
    (what autograd alone keeps for backward: a lower bound of the activations),
    `budget_bytes` = (1 - margin) * gpu_bytes, `fits` and `max_batch` (the largest
    batch under the budget at this crop; 0 if none), plus the inputs.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    h, w = (int(v) for v in crop)
    if h < 1 or w < 1:
        raise ValueError(f"crop must be two positive sizes (h, w), got {crop}")
    key = (model_name, backbone, _precision(amp))
    if key not in MEASURED:
        known = sorted({(m, b) for m, b, _ in MEASURED})
        raise ValueError(f"no measurement for {key}; measured (model, backbone): {known} "
                         "(run benchmarks/gpu_memory.py to add one)")
    act_fixed, act_image, saved_fixed, saved_image = MEASURED[key]
    params, buffers = parameter_count(model_name, backbone, num_classes)
    area = h * w / (MEASURED_CROP[0] * MEASURED_CROP[1])
    per_image = act_image * area
    weights = 4 * params + buffers
    fixed = weights + 4 * params + 4 * params + act_fixed + CUDA_ALLOWANCE_BYTES
    activations = act_fixed + batch_size * per_image
    total = weights + 8 * params + activations + CUDA_ALLOWANCE_BYTES
    budget = (1 - margin) * gpu_bytes
    max_batch = max(0, math.floor((budget - fixed) / per_image)) if budget > fixed else 0
    return {
        "model": model_name, "backbone": backbone, "batch_size": batch_size, "crop": (h, w),
        "amp": amp, "precision": "amp (bf16/fp16)" if amp else "fp32", "params": params,
        "weights_bytes": weights, "grads_bytes": 4 * params, "momentum_bytes": 4 * params,
        "activation_bytes": round(activations), "allowance_bytes": CUDA_ALLOWANCE_BYTES,
        "total_bytes": round(total),
        "saved_bytes": round(saved_fixed + batch_size * saved_image * area),
        "gpu_bytes": gpu_bytes, "margin": margin, "budget_bytes": round(budget),
        "fits": total <= budget, "max_batch": max_batch,
    }


def format_estimate(estimate: dict) -> str:
    """One paragraph that explains an `estimate_training_memory` result."""
    e = estimate

    def gb(key: str) -> str:
        return f"{e[key] / GIB:.2f} GB"

    name = {"ccnet": "CCNet", "refinenet": "RefineNet"}.get(e["model"], e["model"])
    backbone = e["backbone"].replace("resnet", "ResNet-")
    verdict = "fits" if e["fits"] else "does NOT fit"
    return (
        f"{name} ({backbone}), batch {e['batch_size']}, {e['crop'][0]}x{e['crop'][1]} "
        f"crops, {e['precision']}: about {gb('total_bytes')} of GPU memory at the peak of "
        f"a training step ({e['params'] / 1e6:.1f} M parameters: weights "
        f"{gb('weights_bytes')}, gradients {gb('grads_bytes')}, SGD momentum "
        f"{gb('momentum_bytes')}; activations {gb('activation_bytes')}; CUDA context and "
        f"workspaces {gb('allowance_bytes')}). It {verdict} a {e['gpu_bytes'] / GIB:.0f} GB "
        f"card with a {e['margin']:.0%} margin ({gb('budget_bytes')}); the largest batch "
        f"that does is {e['max_batch']}. GB = 2^30 bytes. This is an estimate from CPU "
        "measurements (benchmarks/gpu_memory.py), not a GPU measurement: check "
        "torch.cuda.max_memory_allocated() after the first steps."
    )
