"""
# What every seglib dataset shares

CamVid and the synthetic scenes differ only in where a raw `(image, mask)` pair comes
from. Both hand it to the same Albumentations pipeline and print themselves the same
way; this base class holds that part once.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from seglib.data.transforms import apply_transform

__all__ = ["SegmentationDataset"]


class SegmentationDataset(Dataset):
    """A dataset of `(image, mask)` pairs: subclasses implement `raw` and `_repr_fields`.

    Items: image float32 (3, H, W) ImageNet-normalised, mask int64 (H, W) with class
    indices and 255 for void, after `self.transform` (an Albumentations pipeline).
    """

    transform: object

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Item `i` without transform: uint8 image (H, W, 3) and uint8 mask (H, W)."""
        raise NotImplementedError

    def _repr_fields(self) -> dict[str, object]:
        """The fields `repr` shows, in order."""
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.raw(i)  # (H, W, 3) uint8, (H, W) uint8
        return apply_transform(self.transform, image, mask)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._repr_fields().items())
        return f"{type(self).__name__}({fields})"
