"""seglib.data.statistics: median-frequency class weights against a hand count."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Subset

from seglib.data import (
    CamVid,
    class_frequencies,
    class_weights,
)
from tests.helpers import (
    write_png,
)


def hand_median_frequency(masks: list[np.ndarray], k: int) -> np.ndarray:
    """Reference: loops over classes and images, as the definition reads."""
    freq = {}
    for c in range(k):
        pixels_c = sum(int((m == c).sum()) for m in masks)
        total_where_c = sum(int((m != 255).sum()) for m in masks if (m == c).any())
        if pixels_c:
            freq[c] = pixels_c / total_where_c
    median = float(np.median(list(freq.values())))
    return np.array([median / freq[c] if c in freq else 0.0 for c in range(k)])


def test_class_weights_match_hand_computation(make_camvid):
    root = make_camvid("segnet", split="val", n=4, size=(10, 12), seed=0)
    rng = np.random.default_rng(7)
    masks = []
    for i in range(4):  # skewed labels, class 9 never present
        m = rng.choice([0, 1, 3, 3, 3, 5, 8, 11, 2, 4, 6, 7, 10], size=(10, 12)).astype(np.uint8)
        m[:5] = 3 if i % 2 else 0
        write_png(root / "valannot" / f"frame{i}.png", m)
        masks.append(np.where(m == 11, 255, m))
    ds = CamVid(root, "val")
    w = class_weights(ds)
    assert w.dtype == torch.float32 and w.shape == (11,)
    np.testing.assert_allclose(w.numpy(), hand_median_frequency(masks, 11), rtol=1e-6)
    assert w[9] == 0
    sub = Subset(ds, [1, 3])
    np.testing.assert_allclose(
        class_weights(sub).numpy(), hand_median_frequency([masks[1], masks[3]], 11), rtol=1e-6
    )
    f = class_frequencies(ds)
    labelled = np.concatenate([m[m != 255] for m in masks])
    np.testing.assert_allclose(f, np.bincount(labelled, minlength=11) / labelled.size)
