r"""
# Augmentation pipelines for image + mask pairs

Segmentation augmentation must move the image and its label map *together*: a flip or
crop applied to one and not the other silently teaches the network wrong labels. The
pipelines here are [Albumentations](https://albumentations.ai) 2.x `Compose` objects
that transform both at once, resample the mask with nearest neighbour (a class index
interpolated between 3 = Road and 8 = Car is not a class), and pad the mask with the
ignore index 255 so that padding never counts in the loss or the metrics.

Training sees a random scale $s \sim U(s_{\min}, s_{\max})$, a random crop of fixed
size (padded when the scaled image is smaller), a horizontal flip and a colour jitter
(`JITTER`: "light" by default, "none" or "strong" on request); evaluation sees the
image unchanged, only normalised with the ImageNet statistics the pretrained backbones
expect:

$$\hat{x}_c = \frac{x_c / 255 - \mu_c}{\sigma_c}$$

Notebook `05_camvid_data.ipynb` shows the two pipelines side by side.

Randomness: a pipeline built with `seed=None` is marked so that the datasets of seglib
reseed it from torch's random generator before every item (`apply_transform`). Runs
are then reproducible with `torch.manual_seed`, and DataLoader workers (which torch
seeds differently) do not repeat each other's augmentations.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

__all__ = [
    "IGNORE_INDEX",
    "JITTER",
    "MEAN",
    "STD",
    "apply_transform",
    "eval_transform",
    "train_transform",
]

MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet RGB mean
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)  # ImageNet RGB std
IGNORE_INDEX: int = 255  # label value skipped by the loss and the metrics

#: colour jitter presets: (brightness, contrast, saturation, hue, probability) of
#: `A.ColorJitter`; "none" leaves the colours alone
JITTER: dict[str, tuple[float, float, float, float, float] | None] = {
    "none": None,
    "light": (0.2, 0.2, 0.2, 0.02, 0.5),
    "strong": (0.4, 0.4, 0.4, 0.05, 0.8),
}

# attribute set on pipelines whose randomness should come from torch's generator
_TORCH_SEEDED = "_seglib_torch_seeded"


def _pair(value: Any, name: str, kind: type) -> tuple:
    """Return `value` as a 2-tuple of `kind`, or raise a ValueError naming `name`."""
    try:
        a, b = value
        return kind(a), kind(b)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of {kind.__name__}s, got {value!r}") from None


def train_transform(
    crop: tuple[int, int] = (360, 480),
    scale: tuple[float, float] = (0.5, 2.0),
    *,
    flip: bool = True,
    jitter: bool | str = "light",
    seed: int | None = None,
) -> A.Compose:
    """Random scale, pad, crop, flip and colour jitter, then normalise and make tensors.

    Args:
        crop: output size `(h, w)`; images smaller than this after scaling are padded
            (image with 0, mask with the ignore index 255).
        scale: range `(low, high)` of the random scale factor (1.0 = unchanged).
        flip: random horizontal flip with probability 0.5.
        jitter: colour jitter preset, a key of `JITTER` ("none", "light": brightness,
            contrast and saturation +-20 % half the time, "strong": +-40 % on 80 % of
            the crops); True means "light", False "none".
        seed: fixed seed for a reproducible sequence of its own; `None` (default) lets
            seglib's datasets draw a seed from torch's generator for every item.

    Returns:
        an Albumentations pipeline called as `t(image=uint8 HxWx3, mask=uint8 HxW)`,
        giving `image` float32 (3, h, w) and `mask` uint8 (h, w) tensors.
    """
    jitter_args = _jitter(jitter)
    h, w = _pair(crop, "crop", int)
    lo, hi = _pair(scale, "scale", float)
    if h < 1 or w < 1:
        raise ValueError(f"crop must be positive (h, w), got {crop!r}")
    if not 0 < lo <= hi:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
    steps: list[Any] = []
    if (lo, hi) != (1.0, 1.0):
        # RandomScale samples 1 + U(limit): the limits are offsets from 1
        steps.append(
            A.RandomScale(
                scale_limit=(lo - 1.0, hi - 1.0),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                p=1.0,
            )
        )
    steps += [
        A.PadIfNeeded(
            min_height=h,
            min_width=w,
            position="center",
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=IGNORE_INDEX,
        ),
        A.RandomCrop(height=h, width=w),
    ]
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    if jitter_args is not None:
        brightness, contrast, saturation, hue, p = jitter_args
        steps.append(A.ColorJitter(brightness=brightness, contrast=contrast,
                                   saturation=saturation, hue=hue, p=p))
    steps += [A.Normalize(mean=MEAN, std=STD, max_pixel_value=255.0), ToTensorV2()]
    pipeline = A.Compose(steps, seed=seed)
    setattr(pipeline, _TORCH_SEEDED, seed is None)
    return pipeline


def _jitter(jitter: bool | str) -> tuple[float, float, float, float, float] | None:
    """The `A.ColorJitter` arguments of a `JITTER` preset (True: light, False: none)."""
    name = ("light" if jitter else "none") if isinstance(jitter, bool) else jitter
    if name not in JITTER:
        raise ValueError(f"jitter must be one of {sorted(JITTER)} (or True/False), got {jitter!r}")
    return JITTER[name]


def eval_transform() -> A.Compose:
    """Normalise with the ImageNet mean/std and make tensors; nothing random, native size."""
    return A.Compose([A.Normalize(mean=MEAN, std=STD, max_pixel_value=255.0), ToTensorV2()])


def apply_transform(
    transform: Any, image: np.ndarray, mask: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run an Albumentations-style `transform` on one pair and return `(image, mask)`.

    `image` is uint8 (H, W, 3), `mask` uint8 (H, W) with 255 = ignore. The result is the
    image as float32 (3, H', W') and the mask as int64 (H', W'). Pipelines from
    `train_transform(seed=None)` are first reseeded from torch's generator (see the
    module docstring).
    """
    if getattr(transform, _TORCH_SEEDED, False):
        transform.set_random_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
    out = transform(image=image, mask=mask)
    x, y = out["image"], out["mask"]
    x = torch.as_tensor(x)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"transform must return an image tensor (3, H, W), got {tuple(x.shape)}")
    return x.float(), y.long()
