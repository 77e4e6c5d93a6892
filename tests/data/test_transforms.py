"""Train/eval pipelines keep image and mask aligned; colour jitter presets act as they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seglib.data import (
    MEAN,
    PALETTE,
    STD,
    eval_transform,
    train_transform,
)
from seglib.data.transforms import apply_transform


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Undo the ImageNet normalisation: (3, H, W) float -> (H, W, 3) float in 0..255."""
    x = x * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    return (x * 255).permute(1, 2, 0).numpy()


def blocky_labels(rng: np.random.Generator, h: int, w: int, cell: int = 8) -> np.ndarray:
    """Random class blocks of `cell` pixels, values 0..10."""
    coarse = rng.integers(0, 11, (h // cell + 1, w // cell + 1))
    return np.kron(coarse, np.ones((cell, cell), dtype=np.int64))[:h, :w].astype(np.uint8)


def test_eval_transform_is_normalise_only():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    mask = rng.integers(0, 11, (7, 9), dtype=np.uint8)
    x, y = apply_transform(eval_transform(), image, mask)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_allclose(to_uint8(x), image, atol=1e-3)
    assert np.array_equal(y.numpy(), mask)


def test_train_crop_pads_mask_with_ignore_index():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    mask = rng.integers(0, 11, (20, 30), dtype=np.uint8)
    t = train_transform(crop=(40, 50), scale=(1.0, 1.0), jitter=False, seed=0)
    for _ in range(4):
        x, y = apply_transform(t, image, mask)
        assert x.shape == (3, 40, 50) and y.shape == (40, 50)
        pad = y == 255
        assert int(pad.sum()) == 40 * 50 - 20 * 30  # labels never contain 255 here
        inner = y[~pad].view(20, 30).numpy()
        assert np.array_equal(inner, mask) or np.array_equal(inner, mask[:, ::-1])
        np.testing.assert_allclose(to_uint8(x)[pad.numpy()], 0, atol=1e-3)  # image fill 0


def test_train_output_has_crop_size_and_int64_mask():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    mask = rng.integers(0, 11, (60, 80), dtype=np.uint8)
    t = train_transform(crop=(32, 48), seed=1)
    for _ in range(5):
        x, y = apply_transform(t, image, mask)
        assert x.shape == (3, 32, 48) and x.dtype == torch.float32
        assert y.shape == (32, 48) and y.dtype == torch.int64
        assert set(y.unique().tolist()) <= set(range(11)) | {255}


def test_train_transform_keeps_colour_encoded_labels_aligned():
    """Pixels whose colour encodes their class must keep that class after augmentation."""
    rng = np.random.default_rng(3)
    labels = blocky_labels(rng, 48, 64)
    image = PALETTE[labels]  # colour = class
    t = train_transform(crop=(40, 56), scale=(0.5, 2.0), jitter=False, seed=5)
    checked = 0
    for _ in range(20):
        x, y = apply_transform(t, image, labels)
        y = y.numpy()
        rgb = to_uint8(x)
        # interior pixels: the label is the same in the 5x5 neighbourhood (no blending),
        # which also leaves out the crop's border (its neighbours were cut off)
        pad = np.pad(y.astype(np.int64), 2, constant_values=-1)
        interior = np.ones_like(y, dtype=bool)
        for dy in range(5):
            for dx in range(5):
                interior &= pad[dy : dy + y.shape[0], dx : dx + y.shape[1]] == y
        interior &= y != 255
        expected = PALETTE[y[interior]].astype(np.float64)
        np.testing.assert_allclose(rgb[interior], expected, atol=1.0)
        checked += int(interior.sum())
    assert checked > 20 * 40 * 56 // 4


def test_train_transform_flips_sometimes_and_rejects_bad_args():
    image = np.zeros((8, 10, 3), np.uint8)
    mask = np.tile(np.arange(10, dtype=np.uint8), (8, 1))
    t = train_transform(crop=(8, 10), scale=(1.0, 1.0), jitter=False, seed=0)
    rows = {tuple(apply_transform(t, image, mask)[1][0].tolist()) for _ in range(20)}
    assert rows == {tuple(range(10)), tuple(range(9, -1, -1))}
    with pytest.raises(ValueError, match="crop"):
        train_transform(crop=(0, 10))
    with pytest.raises(ValueError, match="scale"):
        train_transform(scale=(2.0, 1.0))


def test_worker_like_reseeding_comes_from_torch():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = rng.integers(0, 11, (30, 40), dtype=np.uint8)
    t = train_transform(crop=(24, 32))
    torch.manual_seed(11)
    a = [apply_transform(t, image, mask)[1] for _ in range(4)]
    torch.manual_seed(11)
    b = [apply_transform(train_transform(crop=(24, 32)), image, mask)[1] for _ in range(4)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def brightness_shifts(jitter, n: int = 400) -> np.ndarray:
    """How far the mean of a flat grey crop moves, over n draws of the train pipeline.

    On a flat grey image only brightness changes anything (contrast, saturation and hue
    of a uniform grey are no-ops), so the shifts show how often and how hard the
    colour jitter acts.
    """
    image = np.full((8, 10, 3), 128, dtype=np.uint8)
    mask = np.zeros((8, 10), dtype=np.uint8)
    t = train_transform(crop=(8, 10), scale=(1.0, 1.0), flip=False, jitter=jitter, seed=0)
    return np.array([to_uint8(apply_transform(t, image, mask)[0]).mean() - 128 for _ in range(n)])


@pytest.mark.parametrize(
    ("jitter", "rate", "largest"),
    [("none", 0.0, 0.0), (False, 0.0, 0.0), ("light", 0.5, 0.2 * 128), (True, 0.5, 0.2 * 128),
     ("strong", 0.8, 0.4 * 128)],
)
def test_colour_jitter_presets_act_as_often_and_as_hard_as_they_say(jitter, rate, largest):
    shifts = np.abs(brightness_shifts(jitter))
    assert np.mean(shifts > 0.5) == pytest.approx(rate, abs=0.08)
    assert shifts.max() <= largest + 1  # brightness within +-b
    assert shifts.max() >= 0.75 * largest  # and it reaches near its bound
