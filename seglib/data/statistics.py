r"""
# How often each class appears, and loss weights that balance them

Rare classes (poles, signs, bicyclists) cover a tiny fraction of the pixels, so the loss
may weight each class by *median frequency balancing* (Eigen & Fergus, 2015):

$$w_c = \frac{\operatorname{median}_k f_k}{f_c},\qquad
  f_c = \frac{\#\text{pixels of class } c}{\#\text{pixels of the images where } c
  \text{ appears}}$$

The masks are read without augmentation (`load_mask`) when the dataset offers it.
Notebook `05_camvid_data.ipynb` shows both for CamVid beside SegNet's published weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from seglib.data.transforms import IGNORE_INDEX

__all__ = ["class_frequencies", "class_weights"]


def _masks(dataset: Dataset):
    """Yield every label map of `dataset` as an integer array, cheaply when possible."""
    if isinstance(dataset, Subset):
        base = dataset.dataset
        if hasattr(base, "load_mask"):
            for i in dataset.indices:
                yield base.load_mask(int(i))
            return
    if hasattr(dataset, "load_mask"):
        for i in range(len(dataset)):
            yield dataset.load_mask(i)
        return
    for i in range(len(dataset)):
        yield np.asarray(dataset[i][1])


def _num_classes(dataset: Dataset) -> int:
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    if not hasattr(base, "num_classes"):
        raise ValueError(f"dataset must have a num_classes attribute, got {type(base).__name__}")
    return int(base.num_classes)


def _count(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per class, and pixels of the images in which each class appears."""
    k = _num_classes(dataset)
    pixels = np.zeros(k, dtype=np.int64)
    present_total = np.zeros(k, dtype=np.int64)
    for mask in _masks(dataset):
        m = np.asarray(mask).ravel()
        m = m[m != IGNORE_INDEX].astype(np.int64)
        if m.size and (m.min() < 0 or m.max() >= k):
            raise ValueError(f"mask values must be in 0..{k - 1} or 255, found {m.max()}")
        counts = np.bincount(m, minlength=k)
        pixels += counts
        present_total[counts > 0] += m.size
    return pixels, present_total


def class_frequencies(dataset: Dataset) -> np.ndarray:
    """Share of each class among the labelled (non-void) pixels: float64 (K,) summing to 1."""
    pixels, _ = _count(dataset)
    total = pixels.sum()
    return pixels / total if total else pixels.astype(np.float64)


def class_weights(dataset: Dataset) -> torch.Tensor:
    r"""Loss weights per class, float32 (K,), by median frequency balancing.

    $w_c = \operatorname{median}_k f_k / f_c$ with $f_c$ the pixels of class $c$ divided by
    the (non-void) pixels of the images where $c$ appears; the median runs over the
    classes that appear. A class that never appears gets weight 0 (it cannot be
    learned from this data, and 0 keeps the weights finite). Masks are read directly
    (`load_mask`), without augmentation, when the dataset offers it.
    """
    pixels, present_total = _count(dataset)
    seen = pixels > 0
    weights = np.zeros(len(pixels), dtype=np.float64)
    if seen.any():
        freq = pixels[seen] / present_total[seen]
        weights[seen] = np.median(freq) / freq
    return torch.tensor(weights, dtype=torch.float32)
