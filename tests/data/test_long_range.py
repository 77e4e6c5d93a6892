"""The long-range cue task: deterministic, the geometry it promises, labels from the cue."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from scipy import ndimage

from seglib.data import LongRangeTask
from seglib.data.long_range import LONG_RANGE_CLASSES, REACH, REGIONS
from seglib.models.long_range_net import RECEPTIVE_FIELD

N = 120  # images per split checked below


def digest(ds: LongRangeTask) -> str:
    h = hashlib.sha256()
    for i in range(len(ds)):
        image, mask = ds.raw(i)
        h.update(image.tobytes())
        h.update(mask.tobytes())
        h.update(ds.regions(i).tobytes())
    return h.hexdigest()


def axis_gap(a: np.ndarray, b: np.ndarray) -> int:
    """Smallest |i - j| over the coordinates i in a, j in b, by brute force."""
    return int(np.abs(a[:, None] - b[None, :]).min())


def scene(ds: LongRangeTask, i: int):
    """Read the cue and the objects back from the label map alone."""
    image, mask = ds.raw(i)
    cue_r, cue_c = np.nonzero(mask == 1)
    labelled, n = ndimage.label(mask >= 2)
    objects = [np.nonzero(labelled == k) for k in range(1, n + 1)]
    return image, mask, (cue_r, cue_c), labelled, objects


def test_same_seed_same_bytes_other_seed_or_split_differs():
    a = digest(LongRangeTask(6, seed=3, split="val"))
    assert a == digest(LongRangeTask(6, seed=3, split="val"))
    assert a != digest(LongRangeTask(6, seed=4, split="val"))
    assert a != digest(LongRangeTask(6, seed=3, split="train"))
    big, small = LongRangeTask(9, seed=3), LongRangeTask(4, seed=3)
    assert np.array_equal(big.raw(3)[0], small.raw(3)[0])  # item i does not depend on n


def test_items_are_tensors_like_the_other_datasets():
    ds = LongRangeTask(3, seed=0)
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.shape == (3, 64, 64)
    assert y.dtype == torch.int64 and y.shape == (64, 64)
    assert set(y.unique().tolist()) <= set(range(len(LONG_RANGE_CLASSES)))
    images, masks, regions = ds.tensors()
    assert images.shape == (3, 3, 64, 64) and torch.equal(masks[0], y)
    assert torch.equal(regions[1], torch.from_numpy(ds.regions(1)).long())
    with pytest.raises(ValueError, match="split"):
        LongRangeTask(3, split="dev")


@pytest.mark.parametrize("split", ["train", "test"])
def test_aligned_and_far_recomputed_from_the_label_map(split):
    ds = LongRangeTask(N, seed=1, split=split)
    for i in range(N):
        _, mask, (cue_r, cue_c), labelled, objects = scene(ds, i)
        assert len(cue_r) == 16 and len(objects) == 4  # one 4x4 cue, four objects
        expected = np.zeros_like(mask)  # 0 = local: background and cue
        kinds = []
        for rows, cols in objects:
            assert len(rows) == 64  # an 8x8 square, apart from the others
            rows_in = set(cue_r) <= set(rows)  # the cue's rows lie within the object's
            cols_in = set(cue_c) <= set(cols)
            dr, dc = axis_gap(rows, cue_r), axis_gap(cols, cue_c)
            if (rows_in and dc > REACH) or (cols_in and dr > REACH):
                kind = "aligned"
            elif dr > REACH and dc > REACH:
                kind = "far"
            else:
                kind = "neither"
            kinds.append(kind)
            expected[rows, cols] = REGIONS.index(kind) if kind != "neither" else 255
        assert sorted(kinds) == ["aligned", "aligned", "far", "far"], (i, kinds)
        assert np.array_equal(ds.regions(i), expected), i


def test_every_object_pixel_is_beyond_the_receptive_field_of_the_local_network():
    assert REACH > RECEPTIVE_FIELD
    ds = LongRangeTask(N, seed=2)
    for i in range(N):
        _, mask, (cue_r, cue_c), _, objects = scene(ds, i)
        cue = np.stack([cue_r, cue_c], 1)  # (16, 2)
        for rows, cols in objects:
            pix = np.stack([rows, cols], 1)  # (64, 2)
            chebyshev = np.abs(pix[:, None, :] - cue[None, :, :]).max(-1)  # (64, 16)
            assert chebyshev.min() > REACH


def test_object_labels_follow_the_cue_colour_and_objects_look_alike():
    ds = LongRangeTask(2 * N, seed=5)
    kinds, object_means = [], {2: [], 3: []}
    for i in range(len(ds)):
        image, mask, (cue_r, cue_c), _, objects = scene(ds, i)
        red, _, blue = image[cue_r, cue_c].astype(float).mean(0)
        labels = np.unique(mask[mask >= 2])
        assert len(labels) == 1  # all objects of an image share the kind
        assert labels[0] == (2 if red > blue else 3)  # red cue: object A, blue: object B
        kinds.append(int(labels[0]))
        obj = image[mask >= 2].astype(float)  # (n, 3)
        assert np.abs(obj - obj.mean(1, keepdims=True)).max() < 1e-9  # grey
        object_means[int(labels[0])].append(obj.mean())
    assert 0.35 < np.mean(np.array(kinds) == 2) < 0.65  # both kinds, about equally often
    # the objects of the two kinds are painted alike: no local clue to the label
    assert abs(np.mean(object_means[2]) - np.mean(object_means[3])) < 1.0


def test_every_layout_fits():
    ds = LongRangeTask(1500, seed=7, split="val")
    for i in range(len(ds)):  # a cue in a corner still leaves room for four objects
        placed = ds.placement(i)
        assert [w for _, w in placed["objects"]] == ["aligned", "aligned", "far", "far"]
