"""Synthetic street scenes: deterministic bytes, all classes, CamVid's item format."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from seglib.data import CLASSES, MEAN, PALETTE, STD, class_weights
from seglib.data.synthetic import SyntheticStreets

HASH_SCRIPT = """
import hashlib
from numpy._core._multiarray_umath import __cpu_features__
assert not __cpu_features__.get("X86_V3", False), "AVX2 dispatch still enabled"
from seglib.data.synthetic import SyntheticStreets
ds = SyntheticStreets(4, size=(64, 96), seed=7, split="val")
h = hashlib.sha256()
for i in range(4):
    image, mask = ds.raw(i)
    h.update(image.tobytes()); h.update(mask.tobytes())
print(h.hexdigest())
"""


def digest(ds: SyntheticStreets) -> str:
    h = hashlib.sha256()
    for i in range(len(ds)):
        image, mask = ds.raw(i)
        h.update(image.tobytes())
        h.update(mask.tobytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_or_split_differs():
    a = digest(SyntheticStreets(4, size=(64, 96), seed=7, split="val"))
    assert a == digest(SyntheticStreets(4, size=(64, 96), seed=7, split="val"))
    assert a != digest(SyntheticStreets(4, size=(64, 96), seed=8, split="val"))
    assert a != digest(SyntheticStreets(4, size=(64, 96), seed=7, split="train"))
    # item i does not depend on n or on the order of access
    big = SyntheticStreets(9, size=(64, 96), seed=7, split="val")
    small = SyntheticStreets(4, size=(64, 96), seed=7, split="val")
    late, early = big.raw(3), small.raw(3)
    assert np.array_equal(late[0], early[0]) and np.array_equal(late[1], early[1])


@pytest.mark.slow
def test_bytes_do_not_depend_on_simd_dispatch():
    """A fresh process with numpy's AVX2/AVX512 kernels disabled renders the same bytes."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        pytest.skip("numpy < 2: no numpy._core")
    if not __cpu_features__.get("X86_V3", False):
        pytest.skip("this CPU has no AVX2 dispatch to disable (numpy >= 2.4 feature names)")
    here = digest(SyntheticStreets(4, size=(64, 96), seed=7, split="val"))
    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES="X86_V4 X86_V3 AVX512_ICL")
    out = subprocess.run(
        [sys.executable, "-c", HASH_SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == here


def test_item_format_matches_camvid():
    ds = SyntheticStreets(3, size=(48, 64), split="val")
    assert ds.classes == list(CLASSES) and ds.num_classes == 11
    assert np.array_equal(ds.palette, PALETTE)
    image, mask = ds.raw(0)
    assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
    assert mask.dtype == np.uint8 and mask.shape == (48, 64)
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.shape == (3, 48, 64)
    assert y.dtype == torch.int64 and y.shape == (48, 64)
    ref = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    ref = (ref - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    torch.testing.assert_close(x, ref)  # val: no augmentation
    assert torch.equal(y, torch.from_numpy(mask).long())
    x2, y2 = ds[0]
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_train_split_augments_but_keeps_labels_valid():
    ds = SyntheticStreets(2, size=(48, 64), split="train")
    torch.manual_seed(0)
    outs = [ds[1] for _ in range(6)]
    assert all(x.shape == (3, 48, 64) and y.shape == (48, 64) for x, y in outs)
    assert any(not torch.equal(outs[0][1], y) for _, y in outs[1:])
    values = set(torch.cat([y.flatten() for _, y in outs]).unique().tolist())
    assert values <= set(range(11)) | {255}


def test_every_class_present_in_most_scenes_at_a_reasonable_size():
    ds = SyntheticStreets(16, seed=1, split="train")
    h, w = ds.size
    present = np.zeros(11)
    for i in range(len(ds)):
        counts = np.bincount(ds.load_mask(i).ravel(), minlength=11)
        assert counts.size == 11  # only 0..10, never 255 or more
        present += counts >= 0.002 * h * w  # at least ~25 pixels at 96x128
    assert (present >= 0.75 * len(ds)).all(), dict(zip(CLASSES, present.tolist()))


def test_scenes_are_rendered_once_then_served_from_the_cache(monkeypatch):
    """Behaviour, not timing: a second access renders nothing and returns equal arrays,
    and mutating a returned array does not corrupt the cached scene."""
    import seglib.data.synthetic as synthetic

    calls = []
    real = synthetic.render_scene

    def counting(rng, size):
        calls.append(size)
        return real(rng, size)

    monkeypatch.setattr(synthetic, "render_scene", counting)
    ds = SyntheticStreets(3, size=(48, 64), seed=3, split="val")
    first = ds.raw(1)
    assert len(calls) == 1
    first[0][:] = 0  # the caller's copy only
    first[1][:] = 0
    again, mask_only = ds.raw(1), ds.load_mask(-2)  # same scene, negative index
    x, y = ds[1]
    assert len(calls) == 1  # served from the cache each time
    fresh = SyntheticStreets(3, size=(48, 64), seed=3, split="val").raw(1)
    assert len(calls) == 2  # a new dataset renders again...
    assert np.array_equal(again[0], fresh[0]) and np.array_equal(again[1], fresh[1])
    assert np.array_equal(mask_only, fresh[1])
    assert again[0].any()  # ...and the cached scene was not zeroed through the copy
    assert torch.equal(y, torch.from_numpy(fresh[1]).long())


def test_class_weights_on_synthetic():
    w = class_weights(SyntheticStreets(6, seed=4))
    assert w.shape == (11,) and (w > 0).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n must be"),
        ({"n": 2, "size": (16, 64)}, "at least"),
        ({"n": 2, "size": 64}, r"\(h, w\)"),
        ({"n": 2, "split": "dev"}, "split"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticStreets(**kwargs)
    with pytest.raises(IndexError):
        SyntheticStreets(2).raw(5)
