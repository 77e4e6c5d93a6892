"""
# Where and in which precision we run

Small decisions the trainer and the evaluator share, made once per run:

- **Device**: CUDA if present, else Apple's MPS, else the CPU (no hard-coded CUDA device).
- **Mixed precision** ([AMP](https://pytorch.org/docs/stable/amp.html)): under
  `torch.autocast`, convolutions and matmuls run in 16-bit floats (about 2x faster on
  tensor cores and half the activation memory) while reductions stay in float32.
  bfloat16 has float32's exponent range, so it needs no loss scaling; float16 has a
  narrow range, so small gradients underflow unless the loss is multiplied by a scale
  $s$ before `backward` and the gradients divided by $s$ afterwards (`GradScaler`).
  `"auto"` picks bf16 on GPUs that support it, else fp16, and no AMP on CPU/MPS.
- **channels_last**: NHWC memory layout, what cuDNN's fast convolution kernels want.
- **Notebook or terminal**: live `d2l.Animator` plots in Jupyter, tqdm bars elsewhere.

Used by `seglib.train` and `seglib.evaluate`.
"""

from __future__ import annotations

import contextlib
import sys

import torch

__all__ = ["pick_device", "resolve_amp", "autocast", "use_channels_last", "in_notebook"]

AMP_MODES = ("auto", "bf16", "fp16", "off")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def _check_device(device: str | torch.device) -> torch.device:
    """`torch.device(device)` if this machine has it, else a ValueError that names the
    device and says what to use (checked up front: a missing device would otherwise
    fail on the first `.to()`, with a message that names no option)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"unknown device {str(device)!r}: use cpu, cuda, cuda:N or mps "
            "(or no device, for the best one available)"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {str(device)!r} requested but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 ...)"
        )
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"device {str(device)!r} requested but Apple's MPS is not available; "
                         "use cpu")
    return dev


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device (ValueError if unknown or absent), else cuda > mps > cpu."""
    if device is not None and str(device) != "auto":
        return _check_device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_amp(amp: str | bool | None, device: torch.device) -> torch.dtype | None:
    """Map an AMP mode to the autocast dtype on `device` (None = full float32).

    `"auto"`: bf16 (or fp16 on older GPUs) on CUDA, off elsewhere; `"bf16"` also works
    on CPU (slower on most CPUs, but a faithful preview); `"fp16"` needs CUDA.
    """
    if amp is None or amp is True:
        amp = "auto"
    if amp is False:
        amp = "off"
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    if amp == "off":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        # bf16 only where the tensor cores have it (Ampere and newer); a T4 emulates it
        # slowly, so it gets fp16 with a gradient scaler instead
        native = torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(f"amp='fp16' needs a CUDA device, got {device}; use 'bf16' or 'off'")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> torch.autocast | contextlib.nullcontext:
    """`torch.autocast` for `dtype`, or a do-nothing context when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def use_channels_last(flag: bool | None, device: torch.device) -> bool:
    """None means: on for CUDA (where cuDNN profits), off elsewhere."""
    return device.type == "cuda" if flag is None else bool(flag)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where live plots can be drawn)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - any failure means "not a notebook"
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
